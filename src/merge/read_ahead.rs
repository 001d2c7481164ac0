//! Reading the inputs on threads of their own, for the orders that read every file through once
//! (`--sort start`, `--sort none`, `--repair`'s first pass): these threads read the bytes, split
//! lines and parse them as far as that goes without merge's state ([`super::parse_raw`]: the
//! python scanner's sketch, most of a line's cost), and copy each python line into the record
//! data it becomes. The merge's thread keeps what needs its state: the filter, adoption, the
//! parent-check facts and the sort buffer. Files are independent, so with n threads each reads
//! every n-th file; the merge takes the batches file by file, in input order, so everything
//! (records, counts, messages) comes in the same order as from one reader.
//!
//! Batches go through bounded channels (a few hundred KiB in flight per thread) and go back to
//! the thread that read them to be freed there: memory freed by another thread than the one that
//! allocated it takes glibc's lock of that thread's arena, and with both threads at it they ran
//! one at a time (measured: no faster than one thread). A line that does not parse is handed on as
//! its `file:line` error, in its place: what to do with it (stop, or skip and count) is the
//! merge's decision, as for lines read in place.

use super::{parse_raw, record, Parsed};
use crate::format::LineError;
use crate::input::{self, Input};
use std::sync::mpsc::{Receiver, SyncSender};

/// Lines (or bytes of lines) per batch, and batches in flight.
const BATCH_LINES: usize = 512;
const BATCH_BYTES: usize = 256 << 10;
const IN_FLIGHT: usize = 4;
/// Reading threads at most.
const MAX_WORKERS: usize = 4;
/// The read buffer per file, as the other readers have.
const READ_BUFFER: usize = 256 << 10;

// Lines are nearly every item: boxing them would add an allocation to each.
#[allow(clippy::large_enum_variant)]
pub enum Item {
    /// A line that parsed; `data` is a python line's record data (empty for otlp lines, which
    /// `parsed` holds whole).
    Line {
        file: u32,
        no: u64,
        complete: bool,
        parsed: Parsed,
        data: Vec<u8>,
    },
    /// A line that did not read (or could not be read).
    Bad(LineError),
    /// The file's last line has been handed on.
    FileDone,
}

enum Message {
    /// The next items of one file; the last batch of a file ends with `FileDone`.
    Items(Vec<Item>),
    /// The file could not be opened: this worker reads nothing after it.
    Failed(anyhow::Error),
}

/// One reading thread: it reads files `first`, `first + n`, … of `n` workers.
struct Worker {
    rx: Receiver<Message>,
    done: SyncSender<Vec<Item>>,
}

pub struct ReadAhead {
    workers: Vec<Worker>,
    /// The file whose items come next, and how many there are.
    file: usize,
    files: usize,
    /// The worker of the last batch handed out, which gets it back.
    last: usize,
}

impl ReadAhead {
    /// Starts reading `inputs` on as many threads as there are cores (at most 4, at most one
    /// per file): files are independent, so each thread reads every n-th file, and the batches
    /// are taken file by file, in input order. The threads are not joined: they stop when their
    /// receiver is gone (at their next batch) and, if one waits on stdin then, it ends with the
    /// process.
    pub fn start(inputs: Vec<Input>) -> ReadAhead {
        let files = inputs.len();
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_WORKERS)
            .min(files.max(1));
        let inputs = std::sync::Arc::new(inputs);
        let workers = (0..n)
            .map(|first| {
                let (tx, rx) = std::sync::mpsc::sync_channel(IN_FLIGHT);
                let (done, done_rx) = std::sync::mpsc::sync_channel(IN_FLIGHT + 2);
                let inputs = inputs.clone();
                std::thread::Builder::new()
                    .name("read-ahead".into())
                    .spawn(move || read(&inputs, first, n, &tx, &done_rx))
                    .expect("cannot start a read-ahead thread");
                Worker { rx, done }
            })
            .collect();
        ReadAhead {
            workers,
            file: 0,
            files,
            last: 0,
        }
    }

    /// The next batch of items, in input order; `None` after the last file's.
    pub fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Item>>> {
        if self.file >= self.files {
            return Ok(None);
        }
        self.last = self.file % self.workers.len();
        match self.workers[self.last].rx.recv() {
            Ok(Message::Items(items)) => {
                if matches!(items.last(), Some(Item::FileDone)) {
                    self.file += 1;
                }
                Ok(Some(items))
            }
            Ok(Message::Failed(e)) => {
                self.file = self.files;
                Err(e)
            }
            Err(_) => {
                self.file = self.files;
                Err(anyhow::anyhow!("a read-ahead thread stopped"))
            }
        }
    }

    /// Hands the last batch back to the thread that read it, which frees it (dropped here if
    /// that thread has stopped or is behind).
    pub fn recycle(&self, batch: Vec<Item>) {
        let _ = self.workers[self.last].done.try_send(batch);
    }
}

/// A reading thread: files `first`, `first + n`, … in order, each ending with `FileDone`; stops
/// early when nobody listens any more.
fn read(
    inputs: &[Input],
    first: usize,
    n: usize,
    tx: &SyncSender<Message>,
    done: &Receiver<Vec<Item>>,
) {
    let mut batch = Batch {
        items: Vec::new(),
        bytes: 0,
        done,
    };
    for (i, input) in inputs.iter().enumerate().skip(first).step_by(n) {
        let mut lines = match input::open_lines(input, READ_BUFFER) {
            Ok(lines) => lines,
            Err(e) => {
                let _ = send(tx, Message::Failed(e));
                return;
            }
        };
        loop {
            let next = lines.next_line(|line| {
                let item = match parse_raw(line.text) {
                    Ok(parsed) => {
                        let data = match parsed {
                            Parsed::Python(..) => record::encode_line(line.text),
                            Parsed::Otlp(_) => Vec::new(),
                        };
                        Item::Line {
                            file: i as u32,
                            no: line.no,
                            complete: line.complete,
                            parsed,
                            data,
                        }
                    }
                    Err(reason) => {
                        Item::Bad(line.error(crate::format::with_hint(line.text, reason)))
                    }
                };
                (item, line.text.len())
            });
            let (item, bytes) = match next {
                Ok(None) => break,
                Ok(Some(item)) => item,
                Err(e) => (Item::Bad(e), 0),
            };
            if batch.push(item, bytes) && batch.send(tx).is_err() {
                return;
            }
        }
        batch.push(Item::FileDone, 0);
        if batch.send(tx).is_err() {
            return;
        }
    }
}

struct Batch<'a> {
    items: Vec<Item>,
    bytes: usize,
    /// Batches the merge has gone through, to free here.
    done: &'a Receiver<Vec<Item>>,
}

impl Batch<'_> {
    /// Adds `item`, read from a line of `bytes`; true when the batch is to go: full, or ending
    /// in a bad line (the merge may stop there, and a slow pipe on stdin must not keep that
    /// waiting for more lines).
    fn push(&mut self, item: Item, bytes: usize) -> bool {
        self.bytes += bytes;
        let bad = matches!(item, Item::Bad(_));
        self.items.push(item);
        bad || self.items.len() >= BATCH_LINES || self.bytes >= BATCH_BYTES
    }

    fn send(&mut self, tx: &SyncSender<Message>) -> Result<(), ()> {
        self.bytes = 0;
        if self.items.is_empty() {
            return Ok(());
        }
        // The next batch reuses one that came back (its items freed here); the others are freed.
        let mut next = Vec::new();
        while let Ok(mut old) = self.done.try_recv() {
            old.clear();
            next = old;
        }
        send(tx, Message::Items(std::mem::replace(&mut self.items, next)))
    }
}

fn send(tx: &SyncSender<Message>, message: Message) -> Result<(), ()> {
    tx.send(message).map_err(|_| ())
}
