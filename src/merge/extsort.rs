//! External sort with bounded memory and a bounded number of open files: records collect in a
//! buffer of at most `budget` bytes, which is sorted and spilled to an anonymous temporary file
//! (a "run") when full; reading back is a k-way merge of the runs ([`Tournament`]).
//!
//! A full buffer is sorted, then written on a thread of its own that frees each record once
//! written, while the next buffer fills in the memory freed (together they stay within the
//! budget). So the reading waits for the sort, not for the disk: a spill on the reading thread
//! stopped `merge --sort start` for a third of a second at 256 MB. (Two buffers of half the budget
//! each overlapped the sort too, but spilled input that fits the budget, measured slower.) The
//! last buffer is never spilled: it is merged from memory with the runs, as one more source.
//!
//! Runs are merged in tiers, like GNU sort's `--batch-size`: whenever `fan_in` runs of the same
//! tier exist they are merged into one run of the next tier, and `finish` merges the last ones
//! down to `fan_in`. So at most about `fan_in × tiers` runs are open at once, however large the
//! input, and the final merge's read buffers (what the last buffer leaves of the budget, shared
//! by the runs) stay within the budget.
//!
//! Run files are created unlinked (`tempfile::tempfile_in`): nothing is left behind whatever way
//! the process ends, SIGKILL included.

use super::record::Record;
use super::tree::Tournament;
use anyhow::Context;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// What the external sort sorts: spans ([`Record`]) and the parent check's facts
/// (`repair::FactRecord`), which are small and of fixed size, so they are neither allocated one by
/// one nor compared as bytes.
pub trait Sortable: Ord + Send + Sized + 'static {
    /// The memory one takes in the sort buffer: its size, and what it holds on the heap with
    /// malloc's bookkeeping.
    fn held(&self) -> usize;
    fn write_to(&self, out: &mut impl Write) -> io::Result<()>;
    /// One written by `write_to`; `None` at a clean end of file.
    fn read_from(input: &mut impl Read) -> io::Result<Option<Self>>;
    /// The slab this one's bytes share with others ([`super::slab`]), if any: which one, and
    /// the memory it takes. `held` leaves it out: the buffer counts each slab once.
    fn slab(&self) -> Option<(usize, usize)> {
        None
    }
    /// Asks the CPU to start loading what is read of this one when it is written out.
    fn prefetch(&self) {}
}

impl Sortable for Record {
    /// Its footprint and malloc's 16 bytes for its data if that is its own. (Only here: `--sort
    /// end`'s windows count footprints alone, and their size decides where a file out of order
    /// beyond them is written.)
    fn held(&self) -> usize {
        match self.data.slab() {
            None => self.footprint() + 16,
            Some(_) => self.footprint(),
        }
    }

    /// Sorted in memory, spans are written in an order unrelated to where their bytes are:
    /// each line's first access missed the cache and the TLB (a third of the merge thread's work
    /// after the reading, `--sort start` at 4,096 files).
    fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint: it never faults and changes no memory.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.data.as_ptr().cast());
        }
    }

    /// The slab and the `Arc` around it.
    fn slab(&self) -> Option<(usize, usize)> {
        let slab = self.data.slab()?;
        Some((slab.id(), slab.size() + 64))
    }

    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        Record::write_to(self, out)
    }

    fn read_from(input: &mut impl Read) -> io::Result<Option<Self>> {
        Record::read_from(input)
    }
}

/// Fills `head` with the start of the next thing a run holds: `false` at a clean end of the run
/// (nothing more), an error if the run ends inside `head`. Every `Sortable::read_from` starts here.
pub fn read_head(input: &mut impl Read, head: &mut [u8]) -> io::Result<bool> {
    match input.read_exact(&mut head[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    input.read_exact(&mut head[1..])?;
    Ok(true)
}

/// Read buffer per run while merging, at most; less when many runs share the budget.
const RUN_BUFFER_MAX: usize = 1 << 20;
const RUN_BUFFER_MIN: usize = 16 << 10;
/// Write buffer of a run being written.
const RUN_WRITE_BUFFER: usize = 1 << 20;

pub struct ExtSorter<T: Sortable = Record> {
    buffer: Vec<T>,
    bytes: usize,
    budget: usize,
    temp_dir: PathBuf,
    /// (tier, file): tier 0 runs are spilled buffers, tier t+1 runs merge `fan_in` of tier t.
    runs: Vec<(u32, File)>,
    fan_in: usize,
    spilled: usize,
    /// The previous buffer, sorted, being written on a thread of its own ...
    spilling: Option<std::thread::JoinHandle<anyhow::Result<File>>>,
    /// ... and the bytes of it not written yet: they count against the budget until freed
    /// (its records' slabs until it is all written).
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The slabs of the last records pushed, counted already (at most [`RECENT_SLABS`]; one
    /// forgotten too early is counted again, never too little).
    slabs: Vec<usize>,
}

/// Slabs remembered as counted: two per reading thread (see `read_ahead::MAX_WORKERS`).
const RECENT_SLABS: usize = 8;

impl<T: Sortable> ExtSorter<T> {
    /// `fan_in` (at least 2): how many runs are merged at once, so at most about that many per
    /// tier are open.
    pub fn new(budget: usize, temp_dir: PathBuf, fan_in: usize) -> Self {
        ExtSorter {
            buffer: Vec::new(),
            bytes: 0,
            budget: budget.max(1),
            temp_dir,
            runs: Vec::new(),
            fan_in: fan_in.max(2),
            spilled: 0,
            spilling: None,
            held: Default::default(),
            slabs: Vec::with_capacity(RECENT_SLABS),
        }
    }

    pub fn push(&mut self, record: T) -> anyhow::Result<()> {
        self.bytes += record.held();
        // A slab is counted whole when the first record in it comes, however few of its records
        // are kept. Each reading thread fills one slab at a time and the merge takes their
        // batches in turn, so the slabs of the last few records are all that need remembering.
        if let Some((slab, size)) = record.slab() {
            if !self.slabs.contains(&slab) {
                if self.slabs.len() == RECENT_SLABS {
                    self.slabs.remove(0);
                }
                self.slabs.push(slab);
                self.bytes += size;
            }
        }
        self.buffer.push(record);
        let held = self.held.load(std::sync::atomic::Ordering::Relaxed);
        if self.bytes + self.slack() + held >= self.budget {
            // The previous buffer is not written yet: wait for its memory.
            self.wait_for_spill()?;
            if self.bytes >= self.budget {
                self.spill()?;
            }
        }
        Ok(())
    }

    /// Sorts the full buffer and hands it to a thread that writes it as a run, freeing each
    /// record once written, so the reading goes on meanwhile in the memory freed (ARCHITECTURE.md:
    /// merge's sort). The buffer and what is left of the previous one stay within the budget.
    fn spill(&mut self) -> anyhow::Result<()> {
        self.wait_for_spill()?;
        let slack = self.slack();
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.sort_unstable();
        let held = self.held.clone();
        // The buffer's unused capacity is held until the thread ends (it is freed last).
        held.store(self.bytes + slack, std::sync::atomic::Ordering::Relaxed);
        self.bytes = 0;
        // The next buffer counts the slabs it holds records of again.
        self.slabs.clear();
        let dir = self.temp_dir.clone();
        self.spilling = Some(
            std::thread::Builder::new()
                .name("sort-spill".into())
                .spawn(move || {
                    let mut run = RunWriter::create(&dir)?;
                    for r in buffer.drain(..) {
                        run.write(&r)?;
                        held.fetch_sub(r.held(), std::sync::atomic::Ordering::Relaxed);
                    }
                    drop(buffer);
                    // Records with bytes of their own (read from otlp lines, filtered, adopted)
                    // were freed into the reading threads' malloc arenas while the next buffer
                    // filled them again, not always in the same places: give the pages left free
                    // back, or peak RSS ran 10-15 MiB past the budget (measured before slabs,
                    // when every record had its own bytes). Facts own no heap memory, but their
                    // freed buffer is given back the same way: without it `--sort end` at 4,096
                    // files peaked ~3 MiB higher.
                    // SAFETY: malloc_trim only releases free memory; any thread may call it.
                    unsafe { libc::malloc_trim(0) };
                    run.finish()
                })
                .context("cannot start a sort thread")?,
        );
        self.spilled += 1;
        Ok(())
    }

    /// The buffer's capacity beyond its records (it grows by doubling): memory too.
    fn slack(&self) -> usize {
        (self.buffer.capacity() - self.buffer.len()) * std::mem::size_of::<T>()
    }

    /// The run being spilled, joined into the tiers.
    fn wait_for_spill(&mut self) -> anyhow::Result<()> {
        let Some(spilling) = self.spilling.take() else {
            return Ok(());
        };
        let joined = super::join_worker(Some(spilling), "sort");
        self.held.store(0, std::sync::atomic::Ordering::Relaxed);
        let file = joined?;
        self.runs.push((0, file));
        // Merge full tiers, lowest first: fan_in runs of one tier become one of the next.
        loop {
            let n = self.runs.len();
            let tier = self.runs[n - 1].0;
            if n < self.fan_in || self.runs[n - self.fan_in..].iter().any(|r| r.0 != tier) {
                return Ok(());
            }
            let group: Vec<File> = self.runs.drain(n - self.fan_in..).map(|r| r.1).collect();
            let merged = merge_runs::<T>(
                group,
                &self.temp_dir,
                self.budget.saturating_sub(self.bytes),
            )?;
            self.runs.push((tier + 1, merged));
        }
    }

    /// Number of runs spilled so far (0: everything fits in memory).
    pub fn runs(&self) -> usize {
        self.spilled
    }

    /// All records in order.
    pub fn finish(mut self) -> anyhow::Result<Sorted<T>> {
        self.wait_for_spill()?;
        if self.runs.is_empty() {
            self.buffer.sort_unstable();
            return Ok(Sorted::Memory(self.buffer.into_iter()));
        }
        // The last buffer is not spilled: it is merged from memory with the runs (writing and
        // reading it back would be the only work between the reading and the output).
        self.buffer.sort_unstable();
        // The runs' read buffers share what the last buffer leaves of the budget.
        let left = self.budget.saturating_sub(self.bytes);
        let mut runs: Vec<File> = self.runs.into_iter().map(|r| r.1).collect();
        if runs.len() > self.fan_in - 1 {
            let tail = runs.split_off(self.fan_in - 2);
            runs.push(merge_runs::<T>(tail, &self.temp_dir, left)?);
        }
        Ok(Sorted::Runs(RunMerge::with_memory(runs, left, self.buffer)))
    }
}

/// A run being written: records in order, in the spill layout ([`Record::write_to`]).
pub struct RunWriter {
    out: BufWriter<File>,
    dir: PathBuf,
}

impl RunWriter {
    /// An unlinked temporary file in `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<RunWriter> {
        let file = tempfile::tempfile_in(dir).with_context(|| {
            format!(
                "cannot create a temporary sort file in {} (choose another with --temp-dir)",
                dir.display()
            )
        })?;
        Ok(RunWriter {
            out: BufWriter::with_capacity(RUN_WRITE_BUFFER, file),
            dir: dir.to_path_buf(),
        })
    }

    pub fn write(&mut self, r: &impl Sortable) -> anyhow::Result<()> {
        r.write_to(&mut self.out)
            .with_context(|| format!("cannot write a sort run in {}", self.dir.display()))
    }

    /// Writes `r` with `data` in place of its own.
    pub fn write_with_data(&mut self, r: &Record, data: &[u8]) -> anyhow::Result<()> {
        r.write_with_data(data, &mut self.out)
            .with_context(|| format!("cannot write a sort run in {}", self.dir.display()))
    }

    /// The run, rewound for reading.
    pub fn finish(self) -> anyhow::Result<File> {
        let dir = self.dir;
        let mut file = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write a sort run in {}", dir.display()))?;
        file.rewind()?;
        Ok(file)
    }
}

/// Merges `runs` (of `T`s) into one new run.
pub fn merge_runs<T: Sortable>(runs: Vec<File>, dir: &Path, budget: usize) -> anyhow::Result<File> {
    let mut merge = RunMerge::<T>::new(runs, budget);
    let mut out = RunWriter::create(dir)?;
    while let Some(r) = merge.next_record()? {
        out.write(&r)?;
    }
    out.finish()
}

/// Read buffer per run when `runs` runs share `budget` bytes.
fn run_buffer(budget: usize, runs: usize) -> usize {
    (budget / runs.max(1)).clamp(RUN_BUFFER_MIN, RUN_BUFFER_MAX)
}

/// The records of sorted runs, in order.
pub struct RunMerge<T: Sortable = Record> {
    readers: Vec<BufReader<File>>,
    /// Sorted records still in memory: one more source after the readers.
    memory: std::vec::IntoIter<T>,
    tournament: Tournament<T>,
}

impl<T: Sortable> RunMerge<T> {
    pub fn new(runs: Vec<File>, budget: usize) -> Self {
        Self::with_memory(runs, budget, Vec::new())
    }

    /// The runs and `memory` (sorted) merged; the runs' read buffers share `budget`.
    pub fn with_memory(runs: Vec<File>, budget: usize, memory: Vec<T>) -> Self {
        let size = run_buffer(budget, runs.len());
        let readers: Vec<_> = runs
            .into_iter()
            .map(|f| BufReader::with_capacity(size, f))
            .collect();
        RunMerge {
            tournament: Tournament::new(readers.len() + 1),
            readers,
            memory: memory.into_iter(),
        }
    }

    pub fn next_record(&mut self) -> anyhow::Result<Option<T>> {
        let readers = &mut self.readers;
        let memory = &mut self.memory;
        self.tournament.next(|i| match readers.get_mut(i) {
            Some(reader) => T::read_from(reader).context("reading a sort run"),
            None => Ok(memory.next()),
        })
    }
}

pub enum Sorted<T: Sortable = Record> {
    Memory(std::vec::IntoIter<T>),
    Runs(RunMerge<T>),
}

impl<T: Sortable> Iterator for Sorted<T> {
    type Item = anyhow::Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Sorted::Memory(it) => {
                if let Some(ahead) = it.as_slice().get(PREFETCH_AHEAD) {
                    ahead.prefetch();
                }
                it.next().map(Ok)
            }
            Sorted::Runs(merge) => merge.next_record().transpose(),
        }
    }
}

/// How many records ahead of the one handed out the next one's bytes are asked for.
const PREFETCH_AHEAD: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(time: u64) -> Record {
        Record {
            time,
            ids: [0; 24],
            hash: 0,
            data: time.to_le_bytes().to_vec().into(),
            file: 0,
        }
    }

    #[test]
    fn spills_and_merges_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for fan_in in [2, 3, 64] {
            // A budget of ~3 records forces many runs.
            let mut s = ExtSorter::new(3 * rec(0).footprint(), dir.path().to_path_buf(), fan_in);
            let times: Vec<u64> = (0..200).map(|i| (i * 7919) % 211).collect();
            for t in &times {
                s.push(rec(*t)).unwrap();
            }
            assert!(s.runs() > 10);
            // Tiers keep the open runs few.
            assert!(
                s.runs.len() < fan_in * 6,
                "fan_in {fan_in}: {}",
                s.runs.len()
            );
            let out: Vec<u64> = s.finish().unwrap().map(|r| r.unwrap().time).collect();
            let mut want = times.clone();
            want.sort();
            assert_eq!(out, want, "fan_in {fan_in}");
        }
    }

    /// The last buffer is merged from memory: a run fewer than buffers filled, and ties keep
    /// their order whichever source they come from.
    #[test]
    fn last_buffer_is_merged_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExtSorter::new(8 * rec(0).footprint(), dir.path().to_path_buf(), 2);
        let times: Vec<u64> = (0..10).map(|i| i % 3).collect();
        for t in &times {
            s.push(rec(*t)).unwrap();
        }
        // Buffers of 8 records: one spilled, two records left in memory.
        assert_eq!(s.runs(), 1);
        let out: Vec<u64> = s.finish().unwrap().map(|r| r.unwrap().time).collect();
        assert_eq!(out, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn small_input_stays_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExtSorter::new(1 << 20, dir.path().to_path_buf(), 16);
        for t in [3, 1, 2] {
            s.push(rec(t)).unwrap();
        }
        assert_eq!(s.runs(), 0);
        let out: Vec<u64> = s.finish().unwrap().map(|r| r.unwrap().time).collect();
        assert_eq!(out, [1, 2, 3]);
    }
}
