//! `--sort end` without sorting: otel-run appends each rank's spans as they end, so every rank
//! file is already (nearly) in end-time order and a k-way merge of all files at once streams the
//! whole job in order, holding only a small window per file. The window (a heap) absorbs the
//! small inversions of batched exporters; a file that is out of order beyond it is reported.

use super::record::{Ids, Record};
use super::scan::{LineReader, ResourceCache};
use super::Reading;
use crate::input::{self, Input};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Read buffer per open file (two for gzip): a few lines ahead is all a merge needs.
const READ_BUFFER: usize = 32 * 1024;

struct FileStream {
    reader: LineReader,
    cache: ResourceCache,
    file: u32,
    /// Read ahead, in order: files come (nearly) sorted, so a record almost always goes at the
    /// back, found from there (a heap would pay log n moves per record in and out).
    window: VecDeque<Record>,
    bytes: usize,
    eof: bool,
    last: Option<(u64, Ids)>,
    out_of_order: u64,
}

/// Records of several sources in order, each source in order (or nearly: see `out_of_order`).
pub struct Merge {
    files: Vec<FileStream>,
    added: std::vec::IntoIter<Record>,
    /// The other half of the files, merged on a thread of its own.
    helper: Option<Helper>,
    heads: BinaryHeap<Reverse<(Record, usize)>>,
    window_budget: usize,
    started: bool,
}

impl Merge {
    /// Opens every input at once; `added` (already sorted) joins as one more source. With
    /// `reading` given and more than one file, every other file is read, scanned and merged on a
    /// second thread (its own `Reading`, forked from this one), whose stream joins as one more
    /// source: scanning lines is most of the work, and there are two cores.
    pub fn open(
        inputs: &[Input],
        window_budget: usize,
        added: Vec<Record>,
        split: Option<&Reading>,
    ) -> anyhow::Result<Self> {
        let numbered: Vec<(u32, Input)> = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| (i as u32, input.clone()))
            .collect();
        match split {
            Some(reading) if inputs.len() > 1 => {
                let (mine, theirs): (Vec<_>, Vec<_>) =
                    numbered.into_iter().partition(|(i, _)| i % 2 == 0);
                let mut merge = Merge::open_numbered(&mine, window_budget, added)?;
                let other = Merge::open_numbered(&theirs, window_budget, Vec::new())?;
                merge.helper = Some(Helper::start(other, reading.fork()));
                Ok(merge)
            }
            _ => Merge::open_numbered(&numbered, window_budget, added),
        }
    }

    fn open_numbered(
        inputs: &[(u32, Input)],
        window_budget: usize,
        added: Vec<Record>,
    ) -> anyhow::Result<Self> {
        let mut files = Vec::with_capacity(inputs.len());
        for (i, input) in inputs {
            files.push(FileStream {
                reader: LineReader::open(input, READ_BUFFER)?,
                cache: ResourceCache::default(),
                file: *i,
                window: VecDeque::new(),
                bytes: 0,
                eof: false,
                last: None,
                out_of_order: 0,
            });
        }
        Ok(Merge {
            files,
            added: added.into_iter(),
            helper: None,
            heads: BinaryHeap::new(),
            window_budget,
            started: false,
        })
    }

    /// The next record in order, reading lines as needed.
    pub fn next(&mut self, reading: &mut Reading) -> anyhow::Result<Option<Record>> {
        if !self.started {
            self.started = true;
            for i in 0..self.files.len() {
                if let Some(r) = self.pop(i, reading)? {
                    self.heads.push(Reverse((r, i)));
                }
            }
            if let Some(r) = self.added.next() {
                self.heads.push(Reverse((r, usize::MAX)));
            }
            if let Some(r) = self.helper_next()? {
                self.heads.push(Reverse((r, HELPER)));
            }
        }
        let Some(Reverse((record, i))) = self.heads.pop() else {
            return Ok(None);
        };
        let next = if i == usize::MAX {
            self.added.next()
        } else if i == HELPER {
            self.helper_next()?
        } else {
            self.pop(i, reading)?
        };
        if let Some(r) = next {
            self.heads.push(Reverse((r, i)));
        }
        Ok(Some(record))
    }

    fn pop(&mut self, i: usize, reading: &mut Reading) -> anyhow::Result<Option<Record>> {
        let budget = self.window_budget;
        let f = &mut self.files[i];
        while !f.eof && (f.bytes < budget || f.window.is_empty()) {
            let file = f.file;
            let FileStream {
                reader,
                cache,
                window,
                bytes,
                ..
            } = &mut *f;
            let next = reader.next_line(|line| {
                reading.raw_line(file, line, cache, &mut |r| {
                    *bytes += r.footprint();
                    insert_sorted(window, r);
                    Ok(())
                })
            });
            match next {
                Ok(None) => {
                    f.eof = true;
                    reading.counts.files += 1;
                    reading.progress.file_done();
                }
                Ok(Some(done)) => done?,
                Err(e) => input::handle_bad_line(
                    super::read_error(f.reader.name(), f.reader.line_no() + 1, e),
                    reading.skip_invalid,
                    &mut reading.counts,
                )?,
            }
        }
        let Some(r) = f.window.pop_front() else {
            return Ok(None);
        };
        f.bytes -= r.footprint();
        let key = (r.time, r.ids);
        if f.last.is_some_and(|last| key < last) {
            if f.out_of_order == 0 {
                tracing::warn!(
                    "{}: spans are not in end-time order beyond the {} KiB reorder window: the \
                     output is not fully sorted (use --sort start, which sorts everything)",
                    f.reader.name(),
                    budget / 1024
                );
            }
            f.out_of_order += 1;
        } else {
            f.last = Some(key);
        }
        Ok(Some(r))
    }

    fn helper_next(&mut self) -> anyhow::Result<Option<Record>> {
        match &mut self.helper {
            None => Ok(None),
            Some(h) => h.next(),
        }
    }

    /// Spans that came out later than their end time allowed.
    pub fn out_of_order(&self) -> u64 {
        self.files.iter().map(|f| f.out_of_order).sum::<u64>()
            + self.helper.as_ref().map_or(0, |h| h.out_of_order)
    }

    /// Ends the merge (read to its end): the helper thread's counts and facts join `reading`.
    pub fn finish(mut self, reading: &mut Reading) -> anyhow::Result<u64> {
        if let Some(mut h) = self.helper.take() {
            let (theirs, out_of_order) = h.join()?;
            h.out_of_order = out_of_order;
            reading.absorb(theirs)?;
            self.helper = Some(h);
        }
        Ok(self.out_of_order())
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

/// Heads index of the helper thread's stream.
const HELPER: usize = usize::MAX - 1;
/// Records per batch from the helper thread; two batches in flight at most.
const HELPER_BATCH: usize = 256;

type HelperResult = anyhow::Result<(Reading, u64)>;

/// A [`Merge`] of some of the files on a thread of its own, as a stream of records.
struct Helper {
    rx: Option<std::sync::mpsc::Receiver<Vec<Record>>>,
    batch: std::vec::IntoIter<Record>,
    thread: Option<std::thread::JoinHandle<HelperResult>>,
    /// What the thread returned, once its stream ended.
    done: Option<(Reading, u64)>,
    out_of_order: u64,
}

impl Helper {
    fn start(mut merge: Merge, mut reading: Reading) -> Helper {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(2);
        let thread = std::thread::spawn(move || -> HelperResult {
            let mut batch = Vec::with_capacity(HELPER_BATCH);
            while let Some(r) = merge.next(&mut reading)? {
                batch.push(r);
                if batch.len() >= HELPER_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(HELPER_BATCH));
                    if tx.send(full).is_err() {
                        // The main thread stopped (on an error of its own).
                        anyhow::bail!("merge stopped");
                    }
                }
            }
            if !batch.is_empty() && tx.send(batch).is_err() {
                anyhow::bail!("merge stopped");
            }
            Ok((reading, merge.out_of_order()))
        });
        Helper {
            rx: Some(rx),
            batch: Vec::new().into_iter(),
            thread: Some(thread),
            done: None,
            out_of_order: 0,
        }
    }

    fn next(&mut self) -> anyhow::Result<Option<Record>> {
        loop {
            if let Some(r) = self.batch.next() {
                return Ok(Some(r));
            }
            let Some(rx) = &self.rx else {
                return Ok(None);
            };
            match rx.recv() {
                Ok(batch) => self.batch = batch.into_iter(),
                Err(_) => {
                    // The stream ended: the thread's own error (a bad line) is reported here.
                    self.rx = None;
                    self.done = Some(self.wait()?);
                    return Ok(None);
                }
            }
        }
    }

    fn wait(&mut self) -> HelperResult {
        self.rx = None;
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("a merge thread panicked"))?,
            None => Err(anyhow::anyhow!("internal: merge thread already joined")),
        }
    }

    /// The thread's `Reading` and out-of-order count.
    fn join(&mut self) -> HelperResult {
        match self.done.take() {
            Some(done) => Ok(done),
            None => self.wait(),
        }
    }
}

impl Drop for Helper {
    /// Stopped early (an error): the thread's next send fails and it ends.
    fn drop(&mut self) {
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
