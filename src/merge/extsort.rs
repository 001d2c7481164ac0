//! External sort with bounded memory: records collect in a buffer of at most `budget` bytes,
//! which is sorted and spilled to an anonymous temporary file (a "run") when full; reading back is
//! a k-way merge of the runs through a heap, one buffered record per run.

use super::record::Record;
use anyhow::Context;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, Write};
use std::path::PathBuf;

/// Read buffer per run while merging: the merge phase needs `runs × RUN_BUFFER` bytes.
const RUN_BUFFER: usize = 64 * 1024;

pub struct ExtSorter {
    buffer: Vec<Record>,
    bytes: usize,
    budget: usize,
    temp_dir: PathBuf,
    runs: Vec<File>,
}

impl ExtSorter {
    pub fn new(budget: usize, temp_dir: PathBuf) -> Self {
        ExtSorter {
            buffer: Vec::new(),
            bytes: 0,
            budget: budget.max(1),
            temp_dir,
            runs: Vec::new(),
        }
    }

    pub fn push(&mut self, record: Record) -> anyhow::Result<()> {
        self.bytes += record.footprint();
        self.buffer.push(record);
        if self.bytes >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> anyhow::Result<()> {
        self.buffer.sort_unstable();
        // Unlinked at creation: nothing is left behind, whatever way the process ends.
        let file = tempfile::tempfile_in(&self.temp_dir).with_context(|| {
            format!(
                "cannot create a temporary sort file in {} (choose another with --temp-dir)",
                self.temp_dir.display()
            )
        })?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        for r in self.buffer.drain(..) {
            r.write_to(&mut out).with_context(|| {
                format!("cannot write a sort run in {}", self.temp_dir.display())
            })?;
        }
        out.flush()
            .with_context(|| format!("cannot write a sort run in {}", self.temp_dir.display()))?;
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        self.runs.push(file);
        self.bytes = 0;
        // Give the memory back: the next run may be much smaller (e.g. the repair facts).
        self.buffer.shrink_to(self.buffer.len());
        Ok(())
    }

    /// Number of runs spilled so far (0: everything fits in memory).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// All records in order.
    pub fn finish(mut self) -> anyhow::Result<Sorted> {
        if self.runs.is_empty() {
            self.buffer.sort_unstable();
            return Ok(Sorted::Memory(self.buffer.into_iter()));
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        let mut readers: Vec<BufReader<File>> = self
            .runs
            .into_iter()
            .map(|f| BufReader::with_capacity(RUN_BUFFER, f))
            .collect();
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(rec) = Record::read_from(r)? {
                heap.push(Reverse((rec, i)));
            }
        }
        Ok(Sorted::Runs { readers, heap })
    }
}

pub enum Sorted {
    Memory(std::vec::IntoIter<Record>),
    Runs {
        readers: Vec<BufReader<File>>,
        heap: BinaryHeap<Reverse<(Record, usize)>>,
    },
}

impl Iterator for Sorted {
    type Item = anyhow::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Sorted::Memory(it) => it.next().map(Ok),
            Sorted::Runs { readers, heap } => {
                let Reverse((rec, i)) = heap.pop()?;
                match Record::read_from(&mut readers[i]) {
                    Ok(Some(next)) => heap.push(Reverse((next, i))),
                    Ok(None) => {}
                    Err(e) => {
                        return Some(Err(anyhow::Error::new(e).context("reading a sort run")))
                    }
                }
                Some(Ok(rec))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(time: u64) -> Record {
        Record {
            time,
            ids: [0; 24],
            hash: 0,
            data: time.to_le_bytes().to_vec(),
            file: 0,
        }
    }

    #[test]
    fn spills_and_merges_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // A budget of ~3 records forces many runs.
        let mut s = ExtSorter::new(3 * rec(0).footprint(), dir.path().to_path_buf());
        let times: Vec<u64> = (0..200).map(|i| (i * 7919) % 211).collect();
        for t in &times {
            s.push(rec(*t)).unwrap();
        }
        assert!(s.runs() > 10);
        let out: Vec<u64> = s.finish().unwrap().map(|r| r.unwrap().time).collect();
        let mut want = times.clone();
        want.sort();
        assert_eq!(out, want);
    }

    #[test]
    fn small_input_stays_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExtSorter::new(1 << 20, dir.path().to_path_buf());
        for t in [3, 1, 2] {
            s.push(rec(t)).unwrap();
        }
        assert_eq!(s.runs(), 0);
        let out: Vec<u64> = s.finish().unwrap().map(|r| r.unwrap().time).collect();
        assert_eq!(out, [1, 2, 3]);
    }
}
