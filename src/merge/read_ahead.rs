//! Reading the inputs on threads of their own, for the orders that read every file through once
//! (`--sort start`, `--sort none`, `--repair`'s first pass): these threads read the bytes, split
//! lines and parse them as far as that goes without merge's state ([`super::parse_raw`]: the
//! python scanner's sketch, most of a line's cost), and copy each python line into the record
//! data it becomes (into the thread's slab, `slab.rs`). The merge's thread keeps what needs its
//! state: the filter, adoption, the parent-check facts and the sort buffer. Files are
//! independent, so with n threads each reads every n-th file; the merge takes the batches file
//! by file, in input order, so everything (records, counts, messages) comes in the same order as
//! from one reader.
//!
//! Batches go through bounded channels (a few hundred KiB in flight per thread) and go back to
//! the thread that read them to be freed there: memory freed by another thread than the one that
//! allocated it takes glibc's lock of that thread's arena, and with both threads at it they ran
//! one at a time (measured: no faster than one thread). A line that does not parse is handed on as
//! its `file:line` error, in its place: what to do with it (stop, or skip and count) is the
//! merge's decision, as for lines read in place.

use super::slab::{Filler, Placed, Slab};
use super::{parse_raw, record, repair, Parsed};
use crate::export::fragment::Parts;
use crate::export::Render;
use crate::format::{is_otlp_line, python, LineError};
use crate::input::{self, Input};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

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
    /// A line that parsed; `data` is a python line's record data, in the batch's slab if it
    /// fit (empty for otlp lines, which `parsed` holds whole, and for python lines `rendered`,
    /// but for a step root's); `rendered`: a python line's span rendered for the output, when it
    /// renders spans.
    Line {
        file: u32,
        no: u64,
        complete: bool,
        parsed: Parsed,
        data: Placed,
        rendered: Option<Rendered>,
    },
    /// A line that did not read (or could not be read).
    Bad(LineError),
    /// The file's last line has been handed on.
    FileDone,
}

/// A batch of items and the slab their record data is in (see [`Item::Line`]).
pub type Batched = (Vec<Item>, Option<Arc<Slab>>);

enum Message {
    /// The next items of one file, and the slab their record data is in (see [`Item::Line`]);
    /// the last batch of a file ends with `FileDone`.
    Items(Vec<Item>, Option<Arc<Slab>>),
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
    /// `render`: the output's fragment renderer, if it renders spans (see [`render_python`]);
    /// `slab_size`: of the slabs record data is copied into (`slab::slab_size`; `None`: none).
    pub fn start(
        inputs: Vec<Input>,
        render: Option<Render>,
        slab_size: Option<usize>,
    ) -> ReadAhead {
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
                    .spawn(move || read(&inputs, first, n, render, slab_size, &tx, &done_rx))
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

    /// The next batch of items, in input order, and their slab; `None` after the last file's.
    pub fn next_batch(&mut self) -> anyhow::Result<Option<Batched>> {
        if self.file >= self.files {
            return Ok(None);
        }
        self.last = self.file % self.workers.len();
        match self.workers[self.last].rx.recv() {
            Ok(Message::Items(items, slab)) => {
                if matches!(items.last(), Some(Item::FileDone)) {
                    self.file += 1;
                }
                Ok(Some((items, slab)))
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
    render: Option<Render>,
    slab_size: Option<usize>,
    tx: &SyncSender<Message>,
    done: &Receiver<Vec<Item>>,
) {
    let mut scratch = Vec::new();
    let mut batch = Batch {
        items: Vec::with_capacity(BATCH_LINES + 1),
        slab: Filler::new(slab_size),
        bytes: 0,
        done,
        spare: Vec::new(),
        freeing: Vec::new(),
    };
    for (i, input) in inputs.iter().enumerate().skip(first).step_by(n) {
        let mut lines = match input::open_lines_with(input, Reused::new) {
            Ok(lines) => lines,
            Err(e) => {
                let _ = send(tx, Message::Failed(e));
                return;
            }
        };
        loop {
            let slab = &mut batch.slab;
            let next = lines.next_line(|line| {
                let parsed = match render {
                    Some(render) if !is_otlp_line(line.text) => {
                        render_python(line.text, render, &mut scratch, slab)
                    }
                    _ => parse_raw(line.text).map(|parsed| {
                        let data = match parsed {
                            Parsed::Python(..) => record::place_line(slab, line.text),
                            Parsed::Otlp(_) => Placed::default(),
                        };
                        (parsed, data, None)
                    }),
                };
                let item = match parsed {
                    Ok((parsed, data, rendered)) => Item::Line {
                        file: i as u32,
                        no: line.no,
                        complete: line.complete,
                        parsed,
                        data,
                        rendered,
                    },
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

/// A python line's span rendered ahead for the output ([`render_python`]).
pub struct Rendered {
    /// The line's content hash (`record::line_hash`).
    pub hash: u64,
    /// The span's record data: its fragment, in the batch's slab if it fit.
    pub fragment: Placed,
    /// The line's `ResourceSpans` without its resource and span (which `Parsed` has): its scope,
    /// for a span that moves into its rank's trace and is rendered again.
    pub shell: ResourceSpans,
}

/// A python line read in full instead of sketched, and its span rendered for the output: the
/// merge's thread gets the whole span (more than the sketch it needs), and the writer need not
/// parse the line again. Everything a sketch checks is checked in full too, with the same
/// reasons (`python::Detail`). The line itself is copied only for a step root, which `--repair`
/// reads back (repair.rs). `scratch`: where the fragment is rendered before it is copied into
/// `slab`.
fn render_python(
    text: &[u8],
    render: Render,
    scratch: &mut Vec<u8>,
    slab: &mut Filler,
) -> Result<(Parsed, Placed, Option<Rendered>), String> {
    let (mut rs, shared) = python::parse(text, python::Detail::SharedResource)?;
    let shared = shared.unwrap_or_default();
    scratch.clear();
    render(
        scratch,
        Parts {
            resource: Some(&shared.resource),
            schema_url: &shared.schema_url,
            scope_spans: &rs.scope_spans,
        },
    );
    let fragment = record::place_fragment(slab, scratch);
    let span = rs
        .scope_spans
        .first_mut()
        .and_then(|ss| ss.spans.pop())
        .ok_or("internal: a python line without its span")?;
    let data = match repair::role(&span) {
        repair::Role::Step => Placed::Own(record::encode_line(text)),
        _ => Placed::default(),
    };
    let rendered = Rendered {
        hash: record::line_hash(text),
        fragment,
        shell: rs,
    };
    Ok((Parsed::Python(span, shared), data, Some(rendered)))
}

struct Batch<'a> {
    items: Vec<Item>,
    /// The slab the items' record data is copied into.
    slab: Filler,
    bytes: usize,
    /// Batches the merge has gone through, to free here.
    done: &'a Receiver<Vec<Item>>,
    /// Batches freed, to fill again: a batch is a few hundred KiB, and allocating one (and
    /// growing it) or freeing one took malloc's slow path every time.
    spare: Vec<Vec<Item>>,
    /// A batch handed back whose items are freed one per item read (see [`Batch::push`]).
    freeing: Vec<Item>,
}

impl Batch<'_> {
    /// Adds `item`, read from a line of `bytes`; true when the batch is to go: full, or ending
    /// in a bad line (the merge may stop there, and a slow pipe on stdin must not keep that
    /// waiting for more lines).
    fn push(&mut self, item: Item, bytes: usize) -> bool {
        // One item handed back is freed for each one read: a span's small allocations (its ids)
        // then go to glibc's per-thread cache (7 chunks per size) and are taken from it again for
        // the next line. Freeing a whole batch at once overflowed that cache into the fastbins
        // and their consolidation: these threads' malloc samples fell by a third without it
        // (perf, merge --sort start, 4,096 files).
        drop(self.freeing.pop());
        self.bytes += bytes;
        let bad = matches!(item, Item::Bad(_));
        self.items.push(item);
        bad || self.items.len() >= BATCH_LINES || self.bytes >= BATCH_BYTES || self.slab.full()
    }

    fn send(&mut self, tx: &SyncSender<Message>) -> Result<(), ()> {
        self.bytes = 0;
        if self.items.is_empty() {
            return Ok(());
        }
        // The next batch reuses one that came back (its items freed here, or one by one as the
        // next lines are read). At most IN_FLIGHT + 3 batches exist per thread, so the spares
        // are bounded too.
        while let Ok(mut old) = self.done.try_recv() {
            if self.freeing.is_empty() {
                std::mem::swap(&mut self.freeing, &mut old);
            }
            old.clear();
            if old.capacity() > 0 {
                self.spare.push(old);
            }
        }
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BATCH_LINES + 1));
        let items = std::mem::replace(&mut self.items, next);
        send(tx, Message::Items(items, self.slab.hand_out()))
    }
}

/// A read buffer like `BufReader`'s, but the thread's one buffer, used file after file: a new
/// 256 KiB buffer per file took malloc's slow path twice per file (allocating it, and merging the
/// freed chunk back), a sixth of the reading threads' malloc time at 1,024 files.
struct Reused<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

thread_local! {
    static READ_BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<R> Reused<R> {
    fn new(inner: R) -> Self {
        let buf = READ_BUFFERS
            .with_borrow_mut(Vec::pop)
            .unwrap_or_else(|| vec![0; READ_BUFFER]);
        Reused {
            inner,
            buf,
            pos: 0,
            end: 0,
        }
    }
}

impl<R> Drop for Reused<R> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        READ_BUFFERS.with_borrow_mut(|pool| {
            // A gzip input holds two at once; more than that is not kept.
            if pool.len() < 2 {
                pool.push(buf)
            }
        });
    }
}

impl<R: std::io::Read> std::io::Read for Reused<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = std::io::BufRead::fill_buf(self)?.read(out)?;
        self.pos += n;
        Ok(n)
    }
}

impl<R: std::io::Read> std::io::BufRead for Reused<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos >= self.end {
            self.end = self.inner.read(&mut self.buf)?;
            self.pos = 0;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }
}

fn send(tx: &SyncSender<Message>, message: Message) -> Result<(), ()> {
    tx.send(message).map_err(|_| ())
}
