//! `--sort end` without sorting: otel-run appends each rank's spans as they end, so every rank
//! file is already (nearly) in end-time order and a k-way merge of all files at once streams the
//! whole job in order, holding only a small window per file. The window (a heap) absorbs the
//! small inversions of batched exporters; a file that is out of order beyond it is reported.

use super::record::{Ids, Record};
use super::Reading;
use crate::format::Lines;
use crate::input::{self, Input};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::BufRead;

/// Read buffer per open file (two for gzip): a few lines ahead is all a merge needs.
const READ_BUFFER: usize = 32 * 1024;

struct FileStream {
    lines: Lines<Box<dyn BufRead>>,
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
    heads: BinaryHeap<Reverse<(Record, usize)>>,
    window_budget: usize,
    started: bool,
}

impl Merge {
    /// Opens every input at once; `added` (already sorted) joins as one more source.
    pub fn open(
        inputs: &[Input],
        window_budget: usize,
        added: Vec<Record>,
    ) -> anyhow::Result<Self> {
        let mut files = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            files.push(FileStream {
                lines: input::open_lines(input, READ_BUFFER)?,
                file: i as u32,
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
        }
        let Some(Reverse((record, i))) = self.heads.pop() else {
            return Ok(None);
        };
        let next = if i == usize::MAX {
            self.added.next()
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
                lines,
                window,
                bytes,
                ..
            } = &mut *f;
            let next = lines.next_line(|line| {
                reading.raw_line(file, line, &mut |r| {
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
                Err(e) => input::handle_bad_line(e, reading.skip_invalid, &mut reading.counts)?,
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
                    f.lines.name(),
                    budget / 1024
                );
            }
            f.out_of_order += 1;
        } else {
            f.last = Some(key);
        }
        Ok(Some(r))
    }

    /// Spans that came out later than their end time allowed.
    pub fn out_of_order(&self) -> u64 {
        self.files.iter().map(|f| f.out_of_order).sum()
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
