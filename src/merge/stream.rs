//! `--sort end` without sorting: otel-run appends each rank's spans as they end, so every rank
//! file is already (nearly) in end-time order and a k-way merge of the files streams the whole
//! job in order, holding only a small window per file. The window absorbs the small inversions of
//! batched exporters; a file that is out of order beyond it is reported.
//!
//! Memory and descriptors are bounded by the plan, not by the number of files: the read buffers
//! and windows of the files merged at once share one budget, and at most `fan_in` files are open
//! at once. More files than that are merged in passes, like GNU `sort -m --batch-size`: each group
//! of `fan_in` files is merged into a sorted run (an unlinked temporary file), and the runs are
//! merged at the end. Each group's records come out in the same total order as a single merge
//! would give, so the output is the same (for files in order within their window).

use super::extsort::{merge_runs, RunMerge, RunWriter};
use super::record::{self, Ids, Record};
use super::tree::Tournament;
use super::whole_lines::WholeLines;
use super::Reading;
use crate::export::fragment::Parts;
use crate::export::Render;
use crate::format::Lines;
use crate::input::{self, Input};
use anyhow::Context;
use std::collections::VecDeque;
use std::fs::File;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender};

/// Read buffers and reorder windows of all the files merged at once, together: 8 KiB a file at
/// [`FAN_IN_RENDERING`] files.
pub const BUDGET: usize = 8 << 20;
/// Files merged at once at most, even when descriptors and memory allow more. A merge of
/// thousands of files at once spends its time on cache misses (each record comes from another
/// file's buffer): merging groups into sorted runs, then the runs, costs less CPU — but nothing is
/// written until the last group's run is done. So it depends on what the output thread does
/// (scripts/bench-merge.sh, 1,024 files, 256 MB): when it only copies python lines, groups of 256
/// were 8% faster than one 1,024-way merge; when it decodes and renders each span (otlp), one
/// pass let it work beside the reading and was 1.4x as fast. At 4,096 files, groups of 256 or
/// 1,024 measured the same, and faster than one 4,096-way merge.
pub const FAN_IN_COPYING: usize = 256;
pub const FAN_IN_RENDERING: usize = 1024;
/// Per file: a read buffer of a few lines at least (the read is one system call per buffer), at
/// most what keeps a few files fast; the window in the same way.
const READ_MIN: usize = 4 << 10;
const READ_MAX: usize = 256 << 10;
const WINDOW_MIN: usize = 2 << 10;
const WINDOW_MAX: usize = 256 << 10;

/// How the merge uses memory and descriptors.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Bytes for the read buffers and windows of the files open at once.
    pub budget: usize,
    /// Files (or runs) merged at once, so open at once.
    pub fan_in: usize,
    pub temp_dir: PathBuf,
}

impl Plan {
    /// At most `max_fan_in` files at once ([`FAN_IN_COPYING`] or [`FAN_IN_RENDERING`]), at most
    /// `max_open`, and no more than `budget` gives each its minimum.
    pub fn new(budget: usize, max_open: usize, max_fan_in: usize, temp_dir: PathBuf) -> Plan {
        let by_memory = budget / (READ_MIN + WINDOW_MIN);
        Plan {
            budget,
            fan_in: by_memory.min(max_open).min(max_fan_in).max(2),
            temp_dir,
        }
    }

    /// Passes over the data: 1 when every file fits in one merge.
    pub fn groups(&self, files: usize) -> usize {
        files.div_ceil(self.fan_in).max(1)
    }

    /// (read buffer, window) per file when `files` are merged at once: a quarter of each file's
    /// share is read buffer, the rest window.
    fn sizes(&self, files: usize) -> (usize, usize) {
        let share = self.budget / files.max(1);
        let read = (share / 4).clamp(READ_MIN, READ_MAX);
        let window = share.saturating_sub(read).clamp(WINDOW_MIN, WINDOW_MAX);
        (read, window)
    }
}

/// What the merge saw.
#[derive(Debug, Default)]
pub struct Stats {
    /// Spans that came out later than their end time allowed.
    pub out_of_order: u64,
    /// Intermediate runs written (0: one merge over all files).
    pub runs: usize,
}

/// Merges the records of every input, and `added` (already sorted), into `emit` in order.
/// `render`: the output's renderer, if it renders spans: merging in groups, the groups' python
/// lines are rendered as their runs are written ([`RunThread`]).
pub fn merge(
    inputs: &[Input],
    plan: &Plan,
    added: Vec<Record>,
    render: Option<Render>,
    reading: &mut Reading,
    emit: &mut dyn FnMut(Record) -> anyhow::Result<()>,
) -> anyhow::Result<Stats> {
    let mut stats = Stats::default();
    let mut added = added.into_iter();
    if inputs.len() <= plan.fan_in {
        let files = open(inputs, 0, plan)?;
        merge_files(files, Some(&mut added), reading, emit, &mut stats)?;
        return Ok(stats);
    }
    let mut runs = Vec::new();
    for (g, group) in inputs.chunks(plan.fan_in).enumerate() {
        let files = open(group, g * plan.fan_in, plan)?;
        let mut run = RunThread::start(RunWriter::create(&plan.temp_dir)?, render)?;
        merge_files(files, None, reading, &mut |r| run.push(r), &mut stats)?;
        runs.push(run.finish()?);
        stats.runs += 1;
        if runs.len() == plan.fan_in {
            // More groups than descriptors for their runs: merge what is there into one run.
            let merged =
                merge_runs::<Record>(std::mem::take(&mut runs), &plan.temp_dir, plan.budget)?;
            runs.push(merged);
        }
    }
    let mut runs = RunMerge::new(runs, plan.budget);
    let mut tournament = Tournament::new(2);
    while let Some(r) = tournament.next(|i| match i {
        0 => runs.next_record(),
        _ => Ok(added.next()),
    })? {
        emit(r)?;
    }
    Ok(stats)
}

/// Writes a group's run on a thread of its own, rendering its python lines for an output that
/// renders spans (otlp, chrome): nothing is written until the last group's run is done, so the
/// output thread has nothing to do meanwhile, and this gives its work to that core. The records
/// go back to the merge's thread to be freed there, where they were allocated (see
/// read_ahead.rs); memory is a few batches in flight.
struct RunThread {
    tx: Option<SyncSender<Vec<Record>>>,
    back: Receiver<Vec<Record>>,
    batch: Vec<Record>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<File>>>,
}

const RUN_BATCH: usize = 512;

impl RunThread {
    fn start(mut run: RunWriter, render: Option<Render>) -> anyhow::Result<RunThread> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(4);
        let (back_tx, back) = std::sync::mpsc::sync_channel(6);
        let thread = std::thread::Builder::new()
            .name("merge-run".into())
            .spawn(move || {
                let mut fragment = Vec::new();
                let mut data = Vec::new();
                for batch in rx {
                    for r in &batch {
                        match (render, r.python_line()) {
                            (Some(render), Some(_)) => {
                                fragment.clear();
                                render(&mut fragment, Parts::of(&r.decode()?));
                                record::fragment_data(&fragment, &mut data);
                                run.write_with_data(r, &data)?;
                            }
                            _ => run.write(r)?,
                        }
                    }
                    let _ = back_tx.try_send(batch);
                }
                run.finish()
            })
            .context("cannot start a merge thread")?;
        Ok(RunThread {
            tx: Some(tx),
            back,
            batch: Vec::with_capacity(RUN_BATCH),
            thread: Some(thread),
        })
    }

    fn push(&mut self, r: Record) -> anyhow::Result<()> {
        self.batch.push(r);
        if self.batch.len() >= RUN_BATCH {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> anyhow::Result<()> {
        let mut next = Vec::new();
        while let Ok(mut done) = self.back.try_recv() {
            done.clear();
            next = done;
        }
        if next.capacity() < RUN_BATCH {
            next = Vec::with_capacity(RUN_BATCH);
        }
        let batch = std::mem::replace(&mut self.batch, next);
        let sent = self.tx.as_ref().map(|tx| tx.send(batch).is_ok());
        if sent != Some(true) {
            // The thread stopped on an error: finishing reports it.
            return self.join().map(|_| ());
        }
        Ok(())
    }

    fn join(&mut self) -> anyhow::Result<File> {
        self.tx = None;
        super::join_worker(self.thread.take(), "merge")
    }

    fn finish(mut self) -> anyhow::Result<File> {
        if !self.batch.is_empty() {
            self.send()?;
        }
        self.join()
    }
}

struct FileStream {
    lines: Lines<Box<dyn BufRead>>,
    file: u32,
    /// Read ahead, in order: files come (nearly) sorted, so a record almost always goes at the
    /// back, found from there.
    window: VecDeque<Record>,
    bytes: usize,
    eof: bool,
    last: Option<(u64, Ids)>,
    out_of_order: u64,
}

/// Opens `inputs`, the first of which is input number `first`, with their share of the budget.
fn open(inputs: &[Input], first: usize, plan: &Plan) -> anyhow::Result<(Vec<FileStream>, usize)> {
    let (read, window) = plan.sizes(inputs.len());
    let mut files = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        files.push(FileStream {
            lines: input::open_lines_with(input, |raw| WholeLines::with_capacity(read, raw))?,
            file: (first + i) as u32,
            window: VecDeque::new(),
            bytes: 0,
            eof: false,
            last: None,
            out_of_order: 0,
        });
    }
    Ok((files, window))
}

/// One merge over open files (and `added`).
fn merge_files(
    (mut files, window): (Vec<FileStream>, usize),
    mut added: Option<&mut std::vec::IntoIter<Record>>,
    reading: &mut Reading,
    emit: &mut dyn FnMut(Record) -> anyhow::Result<()>,
    stats: &mut Stats,
) -> anyhow::Result<()> {
    let n = files.len();
    let mut tournament = Tournament::new(n + added.is_some() as usize);
    while let Some(r) = tournament.next(|i| match files.get_mut(i) {
        Some(f) => f.pop(window, reading),
        None => Ok(added.as_mut().and_then(|a| a.next())),
    })? {
        emit(r)?;
    }
    stats.out_of_order += files.iter().map(|f| f.out_of_order).sum::<u64>();
    Ok(())
}

impl FileStream {
    /// The file's next record in order, reading ahead up to `budget` bytes of records.
    fn pop(&mut self, budget: usize, reading: &mut Reading) -> anyhow::Result<Option<Record>> {
        while !self.eof && (self.bytes < budget || self.window.is_empty()) {
            let file = self.file;
            let FileStream {
                lines,
                window,
                bytes,
                ..
            } = &mut *self;
            let next = lines.next_line(|line| {
                reading.raw_line(file, line, &mut |r| {
                    *bytes += r.footprint();
                    insert_sorted(window, r);
                    Ok(())
                })
            });
            match next {
                Ok(None) => {
                    self.eof = true;
                    reading.counts.files += 1;
                    reading.progress.file_done();
                }
                Ok(Some(done)) => done?,
                Err(e) => input::handle_bad_line(e, reading.skip_invalid, &mut reading.counts)?,
            }
        }
        let Some(r) = self.window.pop_front() else {
            return Ok(None);
        };
        self.bytes -= r.footprint();
        let key = (r.time, r.ids);
        if self.last.is_some_and(|last| key < last) {
            if self.out_of_order == 0 {
                tracing::warn!(
                    "{}: spans are not in end-time order beyond the {} KiB reorder window: the \
                     output is not fully sorted (use --sort start, which sorts everything)",
                    self.lines.name(),
                    budget / 1024
                );
            }
            self.out_of_order += 1;
        } else {
            self.last = Some(key);
        }
        Ok(Some(r))
    }
}

/// Inserts `r` after every record not greater than it: at the back for a file in order.
fn insert_sorted(window: &mut VecDeque<Record>, r: Record) {
    if window.back().is_none_or(|last| *last <= r) {
        window.push_back(r);
    } else {
        let at = window.partition_point(|x| *x <= r);
        window.insert(at, r);
    }
}
