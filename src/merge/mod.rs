//! `otel-run merge`: many rank span files → one file (python, otlp or Chrome trace-event JSON),
//! deduplicated, in start or end order, optionally repaired, in memory that does not grow with
//! the input (ARCHITECTURE.md §10).
//!
//! Every span becomes a [`record::Record`]; the order comes from an external sort (`--sort
//! start`), a streaming k-way merge of the rank files (`--sort end`, [`stream`]) or the input
//! itself (`--sort none`). Parent checks and repairs go through a second, small external sort of
//! per-span facts ([`repair`]).

mod extsort;
mod output;
mod read_ahead;
mod record;
mod repair;
mod slab;
mod stream;
mod tree;
mod whole_lines;

use crate::adopt::Homes;
use crate::attr;
use crate::cli::{MergeArgs, MergeFormat, SortOrder};
use crate::error::usage;
use crate::export::Render;
use crate::format::{is_otlp_line, python, Line};
use crate::input::{self, Counts, Input};
use anyhow::anyhow;
use extsort::ExtSorter;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, TracesData};
use output::Output;
use record::{Data, Ids, Record};
use repair::{Analysis, Facts, SpanFacts};
use std::collections::HashSet;
use std::path::PathBuf;

/// Marks records that merge added (placeholders, stretched step roots).
const ADDED: u32 = u32::MAX;

pub fn main(args: MergeArgs) -> anyhow::Result<()> {
    let result = run_and_report(args);
    // Said even when the run failed: the values were read as they were kept.
    crate::format::repair::warn_lossy();
    result
}

fn run_and_report(args: MergeArgs) -> anyhow::Result<()> {
    let report = run(&args)?;
    if tracing::enabled!(tracing::Level::WARN) {
        eprintln!("{report}");
    }
    Ok(())
}

/// Which spans to keep (`--trace`, `--rank`).
#[derive(Debug, Default)]
pub struct Filter {
    trace: Option<[u8; 16]>,
    ranks: Option<Vec<(i64, i64)>>,
}

impl Filter {
    fn parse(trace: Option<&str>, ranks: Option<&str>) -> anyhow::Result<Filter> {
        let trace = trace
            .map(|t| {
                let t = t.trim().trim_start_matches("0x");
                crate::ids::decode_hex_any::<16>(t)
                    .ok_or_else(|| usage(format!("--trace {t:?}: want 32 hex digits")))
            })
            .transpose()?;
        let ranks = ranks.map(parse_ranks).transpose()?;
        Ok(Filter { trace, ranks })
    }

    /// Whether it drops anything.
    fn is_set(&self) -> bool {
        self.trace.is_some() || self.ranks.is_some()
    }

    fn keep(&self, resource: Option<&Resource>, span: &Span) -> bool {
        if self.trace.is_some_and(|t| span.trace_id != t) {
            return false;
        }
        let rank = || {
            let attrs = resource.map(|r| &r.attributes[..]).unwrap_or(&[]);
            attr::rank(attrs, &span.attributes)
        };
        match &self.ranks {
            None => true,
            Some(ranges) => {
                rank().is_some_and(|rank| ranges.iter().any(|(a, b)| (*a..=*b).contains(&rank)))
            }
        }
    }
}

/// `0,3-5` → [(0,0), (3,5)].
fn parse_ranks(list: &str) -> anyhow::Result<Vec<(i64, i64)>> {
    let bad = |item: &str| {
        usage(format!(
            "--rank {list:?}: {item:?} is not a rank or range like 3-5"
        ))
    };
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (item, item),
        };
        let a: i64 = a.parse().map_err(|_| bad(item))?;
        let b: i64 = b.parse().map_err(|_| bad(item))?;
        if a > b {
            return Err(bad(item));
        }
        out.push((a, b));
    }
    if out.is_empty() {
        return Err(usage(format!("--rank {list:?}: no rank given")));
    }
    Ok(out)
}

/// The read side shared by all orders: filtering, records, facts, counts, progress.
pub struct Reading {
    filter: Filter,
    sort: SortOrder,
    skip_invalid: bool,
    facts: Option<Facts>,
    counts: Counts,
    kept: u64,
    progress: Progress,
    scratch: Vec<u8>,
    /// Where spans of other traces are re-homed (`None` with --no-adopt), learned from the
    /// inputs' process spans before the first span is read.
    homes: Option<Homes>,
    /// Spans kept by the filter that were re-homed.
    adopted: u64,
    /// The size of the slabs the reading threads copy lines into (`slab::slab_size`); `None`
    /// with a filter, which keeps few spans of a slab (ARCHITECTURE.md: merge's record slabs).
    slab_size: Option<usize>,
}

impl Reading {
    /// `--skip-invalid` that skipped every line leaves nothing to merge: an error (before the
    /// output is renamed into place), not an empty file and exit 0.
    fn not_all_skipped(&self) -> anyhow::Result<()> {
        self.counts.require_spans("merge (nothing written)")
    }

    /// One raw line: parsed as far as it goes without merge's state ([`parse_raw`]), then
    /// recorded.
    fn raw_line(
        &mut self,
        file: u32,
        line: Line,
        sink: &mut dyn FnMut(Record) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let result = parse_raw(line.text)
            .and_then(|mut p| self.parsed_line(file, &mut Text::Lent(line.text), &mut p, sink));
        self.settle(&line, result)
    }

    /// Counts a line's outcome: a line that does not read is a `file:line` error (or skipped).
    fn settle(
        &mut self,
        line: &Line,
        result: Result<anyhow::Result<()>, String>,
    ) -> anyhow::Result<()> {
        self.progress.tick(self.counts.spans);
        match result {
            Ok(done) => done,
            Err(reason) => {
                let e = line.error(crate::format::with_hint(line.text, reason));
                input::handle_bad_line(e, self.skip_invalid, &mut self.counts)
            }
        }
    }

    /// A line [`parse_raw`] read: the spans of an otlp line, or a python line's span, which is
    /// copied through as read (its `text` becomes the record's data) unless it moves into its
    /// rank's trace: then it is read in full and re-encoded. `Err`: the line does not read (and
    /// `text` is still there to say so).
    fn parsed_line(
        &mut self,
        file: u32,
        text: &mut Text,
        parsed: &mut Parsed,
        sink: &mut dyn FnMut(Record) -> anyhow::Result<()>,
    ) -> Result<anyhow::Result<()>, String> {
        let (span, resource) = match parsed {
            Parsed::Otlp(data) => return Ok(self.otlp_line(file, std::mem::take(data), sink)),
            Parsed::Python(span, resource) => (&*span, &**resource),
        };
        let attrs = &resource.resource.attributes;
        let full = match &mut self.homes {
            Some(homes) => {
                homes.learn_span(file as usize, attrs, span);
                homes.needs_adoption(file as usize, attrs, span)
            }
            None => false,
        };
        let full = match (full, &mut *text) {
            (false, _) => None,
            // Read in full already: put back together as the line reads.
            (true, Text::Rendered { rendered, .. }) => {
                let mut rs = std::mem::take(&mut rendered.shell);
                rs.resource = Some(resource.resource.clone());
                rs.schema_url = resource.schema_url.clone();
                if let Some(ss) = rs.scope_spans.first_mut() {
                    ss.spans = vec![span.clone()];
                }
                Some(rs)
            }
            (true, text) => Some(python::parse_line(text.raw())?),
        };
        self.counts.lines += 1;
        self.counts.spans += 1;
        Ok(match full {
            Some(rs) => self.resource_span(file, rs, sink),
            None => {
                // A step root stays a line: --repair reads it back (repair.rs).
                let step = repair::role(span) == repair::Role::Step;
                let content = |_: &mut Vec<u8>| text.content(step);
                self.span(file, span, Some(&resource.resource), 0, content, sink)
            }
        })
    }

    /// The spans of an otlp line, each in its resource and scope, as otel-run would write it.
    fn otlp_line(
        &mut self,
        file: u32,
        data: TracesData,
        sink: &mut dyn FnMut(Record) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.counts.lines += 1;
        self.counts.spans += crate::format::span_count(&data.resource_spans) as u64;
        if let Some(homes) = &mut self.homes {
            homes.learn(file as usize, &[], &data);
        }
        let mut result = Ok(());
        record::explode(data, |rs| {
            if result.is_ok() {
                result = self.resource_span(file, rs, sink);
            }
        });
        result
    }

    /// One span in its resource and scope, read in full (an otlp line's, or a python line's that
    /// moves into its rank's trace): re-homed if it belongs there, then recorded.
    fn resource_span(
        &mut self,
        file: u32,
        mut rs: ResourceSpans,
        sink: &mut dyn FnMut(Record) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let adopted = match &self.homes {
            Some(homes) => homes.adopt(file as usize, &mut rs, None),
            None => 0,
        };
        let Some(span) = record::the_span(&rs) else {
            return Ok(());
        };
        let content = |scratch: &mut Vec<u8>| {
            (
                record::content_hash(&rs, scratch),
                record::encode(&rs, None).into(),
            )
        };
        self.span(file, span, rs.resource.as_ref(), adopted, content, sink)
    }

    /// Records one span if the filter keeps it; `content` gives its content hash and record data;
    /// `adopted`: 1 if it was re-homed.
    fn span(
        &mut self,
        file: u32,
        span: &Span,
        resource: Option<&Resource>,
        adopted: u64,
        content: impl FnOnce(&mut Vec<u8>) -> (u64, Data),
        sink: &mut dyn FnMut(Record) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if !self.filter.keep(resource, span) {
            return Ok(());
        }
        self.kept += 1;
        self.adopted += adopted;
        let (hash, data) = content(&mut self.scratch);
        let record = Record {
            time: sort_time(self.sort, span),
            ids: record::ids(&span.trace_id, &span.span_id),
            hash,
            data,
            file,
        };
        if let Some(facts) = &mut self.facts {
            facts.add(&SpanFacts::of(span), &record, || {
                resource.cloned().unwrap_or_default()
            })?;
        }
        sink(record)
    }

    /// Reads every input once, in order: the files are read and their lines parsed on a
    /// thread of their own ([`read_ahead`]), which leaves this one the merge's state (filter,
    /// adoption, facts, the sort buffer).
    /// `render`: the output's renderer, when spans are to be rendered as they are read.
    fn read_all(
        &mut self,
        inputs: &[Input],
        render: Option<Render>,
        sink: &mut dyn FnMut(Record) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let names: Vec<String> = inputs.iter().map(Input::name).collect();
        let mut ahead = read_ahead::ReadAhead::start(inputs.to_vec(), render, self.slab_size);
        while let Some((mut batch, slab)) = ahead.next_batch()? {
            let slab = slab.as_ref();
            for item in &mut batch {
                match item {
                    read_ahead::Item::Line {
                        file,
                        no,
                        complete,
                        parsed,
                        data,
                        rendered,
                    } => {
                        let data = std::mem::take(data).into_data(slab);
                        // What stays in the item is freed by the reading thread that made it.
                        let mut text = match rendered {
                            Some(rendered) => Text::Rendered {
                                data,
                                rendered,
                                slab,
                            },
                            None => Text::Copied(data),
                        };
                        let result = self.parsed_line(*file, &mut text, parsed, sink);
                        let line = Line {
                            name: &names[*file as usize],
                            no: *no,
                            text: text.raw(),
                            complete: *complete,
                        };
                        self.settle(&line, result)?;
                    }
                    read_ahead::Item::Bad(e) => {
                        self.progress.tick(self.counts.spans);
                        input::handle_bad_line(e.clone(), self.skip_invalid, &mut self.counts)?
                    }
                    read_ahead::Item::FileDone => {
                        self.counts.files += 1;
                        self.progress.file_done();
                    }
                }
            }
            ahead.recycle(batch);
        }
        Ok(())
    }
}

/// A line parsed as far as it goes without merge's state: an otlp line in full, a python line as
/// a sketch (it is copied through as read, or read again in full when written in another format).
// Python lines are nearly every line: boxing their span would add an allocation to each.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Otlp(TracesData),
    Python(Span, std::sync::Arc<python::SharedResource>),
}

/// A python line's text: as the line reader lent it, or as the read-ahead thread copied it (as
/// record data, behind its tag: it becomes the record's data without another copy), with its
/// content hash and span rendered for the output when it renders spans.
enum Text<'a> {
    Lent(&'a [u8]),
    Copied(Data),
    /// `data`: the line only for a step root (see `read_ahead::render_python`); `slab`: the
    /// read-ahead batch's, which the fragment may be in.
    Rendered {
        data: Data,
        rendered: &'a mut read_ahead::Rendered,
        slab: Option<&'a std::sync::Arc<slab::Slab>>,
    },
}

impl Text<'_> {
    fn raw(&self) -> &[u8] {
        match self {
            Text::Lent(raw) => raw,
            Text::Copied(data) | Text::Rendered { data, .. } => {
                record::python_text(data).unwrap_or_default()
            }
        }
    }

    /// The content hash and record data (taken: once): the rendered span if there is one, unless
    /// `keep_line`.
    fn content(&mut self, keep_line: bool) -> (u64, Data) {
        match self {
            Text::Lent(raw) => (record::line_hash(raw), record::encode_line(raw).into()),
            Text::Copied(data) => {
                let hash = record::line_hash(record::python_text(data).unwrap_or_default());
                (hash, std::mem::take(data))
            }
            Text::Rendered {
                data,
                rendered,
                slab,
            } => match keep_line {
                true => (rendered.hash, std::mem::take(data)),
                false => {
                    let fragment = std::mem::take(&mut rendered.fragment);
                    (rendered.hash, fragment.into_data(*slab))
                }
            },
        }
    }
}

fn parse_raw(raw: &[u8]) -> Result<Parsed, String> {
    if is_otlp_line(raw) {
        crate::format::parse_line(raw).map(Parsed::Otlp)
    } else {
        python::sketch(raw).map(|(span, resource)| Parsed::Python(span, resource))
    }
}

fn sort_time(sort: SortOrder, span: &Span) -> u64 {
    match sort {
        SortOrder::Start => span.start_time_unix_nano,
        SortOrder::End => span.end_time_unix_nano,
        SortOrder::None => 0,
    }
}

/// Drops adjacent copies (same sort time and ids: identical duplicates and same-time conflicts
/// sort next to each other, by content hash), and spans that repair replaced. What is kept goes
/// in chunks to a writer thread, which decodes, renders and writes it: reading and writing each
/// get a core. What is written as it is (python lines for a python output, spans rendered ahead
/// for otlp and chrome) is copied into a chunk of bytes here, so the records are freed on the
/// thread that allocated them (freeing them on the writer took turns with this thread's malloc).
struct Emitter<'a> {
    writer: Writer,
    batch: Vec<Record>,
    /// Bytes ready to write and how many spans they hold: python lines (python output) or
    /// fragments, each length first (`export::fragment::put_bytes`; otlp and chrome).
    copied: (Vec<u8>, u64),
    prev: Option<Record>,
    replaced: &'a HashSet<Ids>,
    /// `--sort none` has no order to find copies by: it remembers every id.
    seen: Option<HashSet<Ids>>,
    /// Whether `copied` holds fragments (else python lines).
    fragments: bool,
}

const BATCH: usize = 512;
const LINES_CHUNK: usize = 256 << 10;

impl<'a> Emitter<'a> {
    /// `decode_ahead`: whether the reading is over when the output starts (see [`Writer`]).
    fn new(
        out: Output,
        replaced: &'a HashSet<Ids>,
        remember_ids: bool,
        decode_ahead: bool,
    ) -> Self {
        let fragments = out.fragments().is_some();
        let copied = (Vec::with_capacity(LINES_CHUNK + (64 << 10)), 0);
        Emitter {
            writer: Writer::start(out, if decode_ahead { decoders() } else { 0 }),
            batch: Vec::with_capacity(BATCH),
            copied,
            fragments,
            prev: None,
            replaced,
            seen: remember_ids.then(HashSet::new),
        }
    }

    fn push(&mut self, r: Record) -> anyhow::Result<()> {
        if r.file != ADDED && self.replaced.contains(&r.ids) {
            return Ok(());
        }
        if let Some(seen) = &mut self.seen {
            if seen.insert(r.ids) {
                self.emit(r)?;
            }
            return Ok(());
        }
        if let Some(prev) = &self.prev {
            if prev.same_key(&r) {
                return Ok(());
            }
        }
        if let Some(prev) = self.prev.replace(r) {
            self.emit(prev)?;
        }
        Ok(())
    }

    fn emit(&mut self, r: Record) -> anyhow::Result<()> {
        let as_is = match self.fragments {
            true => r.fragment(),
            false => r.python_line(),
        };
        if let Some(bytes) = as_is {
            // Records before it go first.
            if !self.batch.is_empty() {
                self.send_batch()?;
            }
            let (buf, count) = &mut self.copied;
            match self.fragments {
                true => crate::export::fragment::put_bytes(buf, bytes),
                false => {
                    buf.extend_from_slice(bytes);
                    buf.push(b'\n');
                }
            }
            *count += 1;
            if buf.len() >= LINES_CHUNK {
                self.send_copied()?;
            }
            return Ok(());
        }
        self.send_copied()?;
        self.batch.push(r);
        if self.batch.len() >= BATCH {
            self.send_batch()?;
        }
        Ok(())
    }

    fn send_batch(&mut self) -> anyhow::Result<()> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.writer.send(Chunk::Records(batch))
    }

    /// The bytes copied so far as a chunk, if any.
    fn take_copied(&mut self) -> Option<Chunk> {
        let (buf, count) = &mut self.copied;
        if *count == 0 {
            return None;
        }
        let bytes = std::mem::replace(buf, Vec::with_capacity(LINES_CHUNK + (64 << 10)));
        let count = std::mem::take(count);
        Some(match self.fragments {
            true => Chunk::Rendered(bytes, None),
            false => Chunk::Lines(bytes, count),
        })
    }

    fn send_copied(&mut self) -> anyhow::Result<()> {
        match self.take_copied() {
            Some(chunk) => self.writer.send(chunk),
            None => Ok(()),
        }
    }

    fn finish(mut self) -> anyhow::Result<u64> {
        if let Some(prev) = self.prev.take() {
            self.emit(prev)?;
        }
        self.send_copied()?;
        self.send_batch()?;
        self.writer.finish()
    }
}

/// What the writer thread gets, in order.
enum Chunk {
    Records(Vec<Record>),
    /// Rendered spans (each its fragment, length first): copied by the emitter, or rendered by a
    /// decoder thread, with the error at the record after the last of them (the decoder stops
    /// there).
    Rendered(Vec<u8>, Option<anyhow::Error>),
    /// A decoder's last chunk: without it the spans stopped short (the decoder panicked).
    End,
    /// Python lines ready to write, and how many.
    Lines(Vec<u8>, u64),
}

/// Rendered batches waiting for the writer, per decoder.
const RENDERED_IN_FLIGHT: usize = 2;
/// Decoder threads at most.
const MAX_DECODERS: usize = 4;

/// The threads that decode, render and write. When the output renders spans (otlp, chrome) after
/// the reading is over (`--sort start`), decoder threads turn records into fragments
/// (`export::fragment`) ahead of the writer, which only places them: a span is parsed, rendered
/// and freed on one thread (freeing on another takes that thread's malloc arena lock, and the two
/// threads then took turns), and on a machine with more than two cores more decoders keep up with
/// the writer. Spans rendered at read time come as chunks of bytes from the emitter and pass
/// through. Chunks go to the decoders in turn and come back from them in the same turn, so in
/// order. In the streaming orders the reading thread has the other core already, and a third
/// busy thread gained nothing measurable on two cores. Bounded channels of batches keep the
/// memory flat.
struct Writer {
    /// The writer's channel, or the decoders' (batch i goes to decoder i mod n).
    txs: Vec<std::sync::mpsc::SyncSender<Chunk>>,
    next: usize,
    decoders: Vec<std::thread::JoinHandle<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<u64>>>,
    /// Set when the merge failed: the output must not be completed (renamed into place).
    abort: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A decoder thread: records in, fragments out, one chunk out for each chunk in; stops at the
/// first record that does not decode, after handing on the spans before it and the error.
fn render_chunks(
    rx: std::sync::mpsc::Receiver<Chunk>,
    tx: std::sync::mpsc::SyncSender<Chunk>,
    render: Render,
) {
    use crate::export::fragment::{close, open, Parts};
    for chunk in rx {
        let chunk = match chunk {
            Chunk::Records(batch) => {
                let size = batch.iter().map(|r| r.data.len() + 8).sum();
                let mut rendered = Vec::with_capacity(size);
                let mut failed = None;
                for r in &batch {
                    let at = open(&mut rendered);
                    match r.decode() {
                        Ok(rs) => render(&mut rendered, Parts::of(&rs)),
                        Err(e) => {
                            rendered.truncate(at - 4);
                            failed = Some(e.into());
                            break;
                        }
                    }
                    close(&mut rendered, at);
                }
                drop(batch);
                let stop = failed.is_some();
                if tx.send(Chunk::Rendered(rendered, failed)).is_err() || stop {
                    return;
                }
                continue;
            }
            other => other,
        };
        if tx.send(chunk).is_err() {
            // The writer stopped on an error; it reports it.
            return;
        }
    }
    let _ = tx.send(Chunk::End);
}

/// Decoder threads when the reading is over: a core for each but the writer's, 1 to 4.
fn decoders() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .clamp(1, MAX_DECODERS)
}

impl Writer {
    /// `decoders`: decoder threads ahead of the writer (0: the writer decodes; never for a
    /// python output, whose lines are copied).
    fn start(mut out: Output, decoders: usize) -> Self {
        // A few chunks in flight: enough to keep both sides busy, little memory.
        let (txs, rxs, decoders) = match (out.fragments(), decoders) {
            (Some(render), n) if n > 0 => {
                let mut txs = Vec::new();
                let mut rxs = Vec::new();
                let mut decoders = Vec::new();
                for _ in 0..n {
                    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(8 / n + 1);
                    let (rendered_tx, rendered_rx) =
                        std::sync::mpsc::sync_channel(RENDERED_IN_FLIGHT);
                    decoders.push(std::thread::spawn(move || {
                        render_chunks(rx, rendered_tx, render)
                    }));
                    txs.push(tx);
                    rxs.push(rendered_rx);
                }
                (txs, rxs, decoders)
            }
            _ => {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(8);
                (vec![tx], vec![rx], Vec::new())
            }
        };
        let decoding = !decoders.is_empty();
        let abort = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let aborted = abort.clone();
        let thread = std::thread::spawn(move || {
            // Chunks in turn from each channel; a decoder's End means every chunk has come
            // (batches went to the decoders in the same turn), and the others' End follow.
            let mut ended = 0;
            let mut i = 0;
            while let Ok(chunk) = rxs[i % rxs.len()].recv() {
                i += 1;
                match chunk {
                    Chunk::Records(batch) => {
                        for r in batch {
                            out.write_record(&r)?;
                        }
                    }
                    Chunk::Rendered(rendered, failed) => {
                        let mut fragments = crate::export::fragment::Cursor(&rendered);
                        while !fragments.is_empty() {
                            let fragment = fragments.bytes().map_err(|e| anyhow!("{e}"))?;
                            out.place(fragment)?;
                        }
                        if let Some(e) = failed {
                            return Err(e);
                        }
                    }
                    Chunk::End => {
                        ended += 1;
                        if ended == rxs.len() {
                            break;
                        }
                    }
                    Chunk::Lines(lines, count) => out.write_lines(&lines, count)?,
                }
            }
            let complete = !decoding || ended == rxs.len();
            if aborted.load(std::sync::atomic::Ordering::SeqCst) || !complete {
                // Dropping `out` unfinished removes its temporary file.
                return Err(anyhow!("merge aborted"));
            }
            let written = out.written;
            out.finish()?;
            Ok(written)
        });
        Writer {
            txs,
            next: 0,
            decoders,
            thread: Some(thread),
            abort,
        }
    }

    fn send(&mut self, chunk: Chunk) -> anyhow::Result<()> {
        let tx = &self.txs[self.next % self.txs.len().max(1)];
        self.next += 1;
        if tx.send(chunk).is_err() {
            // The writer stopped on an error: finish() reports it.
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| anyhow!("output writer stopped")));
        }
        Ok(())
    }

    fn join(&mut self) -> anyhow::Result<u64> {
        self.txs.clear();
        // The decoders end once they have handed on what they got (or the writer stopped), then
        // the writer ends.
        let panicked = self.decoders.drain(..).any(|d| d.join().is_err());
        if panicked {
            let _ = self.thread.take().map(|t| t.join());
            return Err(anyhow!("span decoder thread panicked"));
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow!("output writer thread panicked"))?,
            None => Err(anyhow!("output writer already stopped")),
        }
    }

    fn finish(mut self) -> anyhow::Result<u64> {
        self.join()
    }
}

impl Drop for Writer {
    /// Dropped unfinished (the merge failed): stop the writer without completing the output.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.abort.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = self.join();
        }
    }
}

/// The exact counts printed at the end.
#[derive(Debug, Default)]
struct Report {
    counts: Counts,
    kept: u64,
    written: u64,
    analysis: Analysis,
    out_of_order: u64,
    runs: usize,
    adopted: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let c = &self.counts;
        let a = &self.analysis;
        write!(
            f,
            "otel-run merge: files={} spans_read={} written={} filtered={} duplicates={} \
             conflicts={} orphans={} synthesized={} stretched={} torn={} invalid={} \
             out_of_order={} sort_runs={} adopted={}",
            c.files,
            c.spans,
            self.written,
            c.spans - self.kept,
            a.duplicates,
            a.conflicts,
            a.orphans,
            a.synthesized,
            a.stretched,
            c.torn,
            c.invalid,
            self.out_of_order,
            self.runs,
            self.adopted
        )
    }
}

fn run(args: &MergeArgs) -> anyhow::Result<Report> {
    let filter = Filter::parse(args.trace.as_deref(), args.rank.as_deref())?;
    let (inputs, inputs_mode) = input::expand_with_mode(&args.input.inputs)?;
    let temp_dir: PathBuf = args.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    if !temp_dir.is_dir() {
        return Err(usage(format!(
            "--temp-dir {}: not a directory",
            temp_dir.display()
        )));
    }
    let budget = (args.buffer_size as usize).saturating_mul(1 << 20);
    // Three quarters for the spans, one quarter for the (much smaller) parent-check facts.
    let (span_budget, mut fact_budget) = (budget / 4 * 3, budget / 4);
    let stdin = inputs.contains(&Input::Stdin);
    let descriptors = Descriptors::new(raise_open_file_limit());

    // Chrome output counts time from its first span, which must be the earliest (see
    // format::chrome): it is always written in start order.
    let sort = if args.format == MergeFormat::Chrome {
        SortOrder::Start
    } else {
        args.sort
    };
    let streaming = sort != SortOrder::Start;
    // The streaming orders hold no spans: their memory is the merge's windows and the facts.
    let plan = stream::Plan::new(
        stream::BUDGET.min(span_budget),
        descriptors.files,
        match args.format {
            MergeFormat::Python => stream::FAN_IN_COPYING,
            MergeFormat::Otlp | MergeFormat::Chrome => stream::FAN_IN_RENDERING,
        },
        temp_dir.clone(),
    );
    if streaming {
        fact_budget = fact_budget.min(STREAMING_FACT_BUDGET);
    }
    if sort == SortOrder::End {
        let groups = plan.groups(inputs.len());
        if groups > 1 {
            tracing::info!(
                "{} input files, {} open at once (open-file limit {}, memory): merging in {} \
                 groups into temporary runs in {}, then the runs",
                inputs.len(),
                plan.fan_in,
                descriptors.limit,
                groups,
                temp_dir.display()
            );
        } else {
            tracing::info!(
                "{} input files merged at once (open-file limit {})",
                inputs.len(),
                descriptors.limit
            );
        }
    }
    if args.repair && streaming && stdin {
        return Err(usage(
            "--repair with --sort end|none reads the input twice, and stdin can be read only \
             once: use --sort start",
        ));
    }
    let slab_size = (!filter.is_set()).then(|| slab::slab_size(span_budget));
    let mut reading = Reading {
        filter,
        sort,
        skip_invalid: args.input.skip_invalid,
        facts: Some(Facts::new(
            fact_budget,
            temp_dir.clone(),
            descriptors.runs,
            inputs.len(),
        )),
        counts: Counts::default(),
        kept: 0,
        progress: Progress::new(inputs.len()),
        scratch: Vec::new(),
        homes: if args.no_adopt {
            None
        } else {
            Some(crate::adopt::scan(&inputs)?)
        },
        adopted: 0,
        slab_size,
    };
    let mut report = Report::default();

    // Repairs must be known before the first span is written. The external sort reads
    // everything before writing anyway; the streaming orders need a first pass.
    let analysis = if args.repair && streaming {
        reading.read_all(&inputs, None, &mut |_| Ok(()))?;
        let analysis = reading.facts.take().expect("set above").analyse(true)?;
        reading.counts = Counts::default();
        reading.kept = 0;
        reading.adopted = 0;
        reading.progress.restart("second pass");
        Some(analysis)
    } else {
        None
    };
    let added = |a: &Analysis| -> Vec<Record> {
        let mut v: Vec<Record> = a
            .added
            .iter()
            .filter_map(|rs| {
                let span = record::the_span(rs)?;
                Some(Record {
                    time: sort_time(sort, span),
                    ids: record::ids(&span.trace_id, &span.span_id),
                    hash: record::content_hash(rs, &mut Vec::new()),
                    data: record::encode(rs, None).into(),
                    file: ADDED,
                })
            })
            .collect();
        v.sort();
        v
    };

    let out = Output::create(args.output.as_deref(), args.format, inputs_mode)?;
    // Spans rendered as they are read, by the reading threads (for the orders that read through
    // them): the writer then only places them.
    let render = out.fragments();
    let empty = HashSet::new();
    match (sort, analysis) {
        (SortOrder::Start, _) => {
            let mut sorter = ExtSorter::new(span_budget, temp_dir.clone(), descriptors.runs);
            reading.read_all(&inputs, render, &mut |r| sorter.push(r))?;
            report.runs = sorter.runs();
            let facts = reading.facts.take().expect("set above");
            // Without --repair the parent check only counts (it adds and replaces nothing): it
            // runs on a thread of its own while the spans are written, and is waited for before
            // the output is completed (an error in it still leaves no output behind).
            let (repairs, checking) = if args.repair {
                (facts.analyse(true)?, None)
            } else {
                let check = std::thread::spawn(move || facts.analyse(false));
                (Analysis::default(), Some(check))
            };
            let mut extra = added(&repairs).into_iter().peekable();
            let mut emitter = Emitter::new(out, &repairs.replaced, false, true);
            for r in sorter.finish()? {
                let r = r?;
                while extra.peek().is_some_and(|e| *e < r) {
                    emitter.push(extra.next().expect("peeked"))?;
                }
                emitter.push(r)?;
            }
            for e in extra {
                emitter.push(e)?;
            }
            reading.not_all_skipped()?;
            let checked = checking
                .map(|check| join_worker(Some(check), "parent check"))
                .transpose()?;
            report.written = emitter.finish()?;
            report.analysis = checked.unwrap_or(repairs);
        }
        (SortOrder::End, pre) => {
            let extra = pre.as_ref().map(&added).unwrap_or_default();
            let replaced = pre.as_ref().map(|a| &a.replaced).unwrap_or(&empty);
            let mut emitter = Emitter::new(out, replaced, false, false);
            let stats = stream::merge(&inputs, &plan, extra, render, &mut reading, &mut |r| {
                emitter.push(r)
            })?;
            reading.not_all_skipped()?;
            report.out_of_order = stats.out_of_order;
            report.runs = stats.runs;
            // Before the output is completed: an error in it leaves no output behind (and it
            // overlaps the writer's last chunks).
            let checked = check_facts(&mut reading)?;
            report.written = emitter.finish()?;
            report.analysis = check_or_first_pass(checked, pre)?;
        }
        (SortOrder::None, pre) => {
            let extra = pre.as_ref().map(&added).unwrap_or_default();
            let replaced = pre.as_ref().map(|a| &a.replaced).unwrap_or(&empty);
            let mut emitter = Emitter::new(out, replaced, true, false);
            reading.read_all(&inputs, render, &mut |r| emitter.push(r))?;
            for e in extra {
                emitter.push(e)?;
            }
            reading.not_all_skipped()?;
            let checked = check_facts(&mut reading)?;
            report.written = emitter.finish()?;
            report.analysis = check_or_first_pass(checked, pre)?;
        }
    }
    reading.progress.done();
    if report.analysis.conflicts > 0 {
        tracing::warn!(
            "{} conflicting duplicate(s): the same trace/span ids with different content, e.g. {} \
             (when the copies share their sort time one is kept, the same one whatever the input \
             order; otherwise all are written)",
            report.analysis.conflicts,
            report.analysis.conflict_examples.join(", ")
        );
    }
    report.counts = reading.counts;
    report.kept = reading.kept;
    report.adopted = reading.adopted;
    Ok(report)
}

/// Joins one of merge's worker threads (`what` names it in errors): its result, or an error if it
/// panicked or was joined already.
fn join_worker<T>(
    thread: Option<std::thread::JoinHandle<anyhow::Result<T>>>,
    what: &str,
) -> anyhow::Result<T> {
    match thread {
        Some(t) => t
            .join()
            .map_err(|_| anyhow!("the {what} thread panicked"))?,
        None => Err(anyhow!("the {what} thread stopped")),
    }
}

/// The parent check of a streaming merge over the facts it collected on its way; `None` when
/// --repair's first pass did it.
fn check_facts(reading: &mut Reading) -> anyhow::Result<Option<Analysis>> {
    reading.facts.take().map(|f| f.analyse(false)).transpose()
}

/// A streaming merge's analysis: the check's, else (--repair) the first pass's.
fn check_or_first_pass(
    checked: Option<Analysis>,
    pre: Option<Analysis>,
) -> anyhow::Result<Analysis> {
    checked
        .or(pre)
        .ok_or_else(|| anyhow!("internal: parent facts missing"))
}

/// The facts of a streaming merge: the largest share of its memory otherwise (the spans' own
/// memory is the merge's windows); beyond it they spill like the sort's runs.
const STREAMING_FACT_BUDGET: usize = 4 << 20;

/// How the open-file limit is shared: what merge opens itself (stdio, the output and its
/// temporary file, the run being written) is set aside, about `runs` descriptors per tier of
/// each external sort (spans and facts) too, and the rest are input files merged at once.
struct Descriptors {
    limit: usize,
    files: usize,
    runs: usize,
}

impl Descriptors {
    fn new(limit: usize) -> Descriptors {
        let free = limit.saturating_sub(16);
        let runs = (free / 8).clamp(2, 64);
        Descriptors {
            limit,
            files: free.saturating_sub(4 * runs).max(2),
            runs,
        }
    }
}

/// Raises the soft open-file limit to the hard one (a streaming merge opens every rank file at
/// once) and returns it.
fn raise_open_file_limit() -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard as usize
            } else {
                soft as usize
            }
        }
        Err(_) => 1024,
    }
}

/// Progress on a terminal only (never with -q, never when stderr is redirected): a bar over the
/// input files for the passes that read them one after the other, the spans read so far.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(files: usize) -> Self {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() || !tracing::enabled!(tracing::Level::WARN) {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new(files as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} files {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Progress(Some(bar))
    }

    fn tick(&self, spans: u64) {
        if let Some(bar) = &self.0 {
            if spans % 4096 < 64 {
                bar.set_message(format!("{spans} spans read"));
            }
        }
    }

    /// A file has been read to its end.
    fn file_done(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    /// Starts over for a second pass.
    fn restart(&self, what: &str) {
        if let Some(bar) = &self.0 {
            bar.reset();
            bar.set_message(what.to_string());
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches go to the decoders in turn and come back in the same turn: any number of decoders
    /// writes the same bytes, and a record that does not decode stops the output (no file left).
    #[test]
    fn decoders_keep_the_order_and_stop_at_a_bad_record() {
        let dir = tempfile::tempdir().unwrap();
        let line = |i: u32| {
            format!(
                r#"{{"name": "s{i}", "context": {{"trace_id": "0x{:032x}", "span_id": "0x{:016x}"}}, "start_time": "2024-01-01T00:00:{:02}Z", "end_time": "2024-01-01T00:00:59Z"}}"#,
                i + 1,
                i + 1,
                i % 60
            )
        };
        let records = |bad: Option<u32>| -> Vec<Record> {
            (0..1000u32)
                .map(|i| Record {
                    time: i as u64,
                    ids: [0; 24],
                    hash: 0,
                    data: match bad == Some(i) {
                        true => b"?".to_vec().into(),
                        false => record::encode_line(line(i).as_bytes()).into(),
                    },
                    file: 0,
                })
                .collect()
        };
        let write = |decoders: usize, bad: Option<u32>| {
            let path = dir.path().join(format!("out{decoders}-{bad:?}.jsonl"));
            let out = Output::create(Some(&path), MergeFormat::Otlp, None).unwrap();
            let mut writer = Writer::start(out, decoders);
            let mut rest = records(bad);
            // Batches of uneven sizes, as the emitter's last one is.
            for size in [1, 7, 512, 3].iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let batch: Vec<Record> = rest.drain(..(*size).min(rest.len())).collect();
                if writer.send(Chunk::Records(batch)).is_err() {
                    break;
                }
            }
            let result = writer.finish();
            (result, std::fs::read(&path).ok())
        };
        let (written, one) = write(0, None);
        assert_eq!(written.unwrap(), 1000);
        let one = one.unwrap();
        for n in 1..=4 {
            let (written, bytes) = write(n, None);
            assert_eq!(written.unwrap(), 1000, "{n} decoders");
            assert!(bytes.unwrap() == one, "{n} decoders: the same bytes");
            let (failed, bytes) = write(n, Some(600));
            let e = failed.unwrap_err().to_string();
            assert!(e.contains("corrupt temporary record"), "{n} decoders: {e}");
            assert!(bytes.is_none(), "{n} decoders: no output after an error");
        }
    }

    #[test]
    fn rank_lists() {
        assert_eq!(parse_ranks("0,3-5").unwrap(), [(0, 0), (3, 5)]);
        assert!(parse_ranks("5-3").is_err());
        assert!(parse_ranks("x").unwrap_err().to_string().contains("\"x\""));
        assert!(parse_ranks(",").is_err());
    }

    #[test]
    fn trace_filter_wants_32_hex_digits() {
        assert!(Filter::parse(Some("0x0123456789abcdef0123456789abcdef"), None).is_ok());
        assert!(Filter::parse(Some("abc"), None).is_err());
    }
}
