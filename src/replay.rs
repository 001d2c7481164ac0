//! `otel-run replay`: streams span files of both line formats into an OTLP collector, losslessly
//! and with exact counts (ARCHITECTURE.md §3, §4).
//!
//! The input is read twice. Pass one parses and validates every line, counts the spans and finds
//! the latest end time: a bad line stops the replay before anything is sent, the M of "sent N of
//! M" is known, and the time shift can be applied while streaming. Pass two parses again on a
//! reader thread, shifts times, groups spans by resource and scope into requests of bounded size
//! and hands them over a small queue to the exporter, so reading overlaps the request in flight.
//! Memory is bounded by the queue, whatever the input size. Stdin cannot be read twice: pass one
//! copies it to an unlinked temporary file.

use crate::adopt::Homes;
use crate::cli::ReplayArgs;
use crate::format::python::SharedResource;
use crate::format::{time::now_nanos, Reader};
use crate::input::{self, Counts, Input};
use crate::otlp::OtlpClient;
use anyhow::{anyhow, bail, Context};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use prost::Message;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, IsTerminal, Read, Seek, SeekFrom, Write};
use std::rc::Rc;
use std::sync::Arc;

/// Most collectors refuse gRPC messages over 4 MiB by default; requests stay below this even when
/// --batch-size spans would not.
const MAX_REQUEST_BYTES: usize = 3 << 20;

/// Requests read ahead of those in flight. Small: with IN_FLIGHT it is what bounds memory.
const QUEUE: usize = 4;

/// Export requests sent concurrently.
const IN_FLIGHT: usize = 4;

/// Exit status: 0 when every span read was accepted, 1 otherwise (bad input, a collector that
/// cannot be reached or refuses, spans rejected by partial success). Usage errors are clap's 2.
pub fn main(args: ReplayArgs) -> anyhow::Result<()> {
    let result = run(args);
    // Said even when the run failed: the values were read as they were kept.
    crate::format::repair::warn_lossy();
    result
}

fn run(args: ReplayArgs) -> anyhow::Result<()> {
    // -q (errors only) also silences the summary and the progress bar.
    let quiet = !tracing::enabled!(tracing::Level::WARN);
    match replay(&args, quiet) {
        Ok(summary) => {
            if !quiet {
                eprintln!("otel-run replay: {summary}");
            }
            Ok(())
        }
        Err(Failure { error, summary }) => {
            if let Some(summary) = summary.filter(|_| !quiet) {
                eprintln!("otel-run replay: {summary}");
            }
            Err(error)
        }
    }
}

/// What went wrong, with the counts so far once sending has started.
struct Failure {
    error: anyhow::Error,
    summary: Option<Box<Summary>>,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure {
            error,
            summary: None,
        }
    }
}

/// The one-line report printed at the end.
#[derive(Debug, Clone)]
struct Summary {
    files: u64,
    spans: u64,
    sent: u64,
    rejected: u64,
    /// In requests written without an answer: maybe received, never acknowledged.
    unanswered: u64,
    /// In requests the collector answered with a retryable error (503, 429, UNAVAILABLE, ...).
    answered_retryable: u64,
    /// In requests the collector answered with an error not worth retrying (400, 401, ...).
    answered_final: u64,
    skipped_lines: u64,
    shift: Shift,
    dry_run: bool,
    /// Spans of other traces re-homed under their rank's process span.
    adopted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shift {
    Kept,
    /// Nanoseconds added to every timestamp.
    By(i128),
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} file{}, {} spans read, ",
            self.files,
            if self.files == 1 { "" } else { "s" },
            self.spans
        )?;
        if self.dry_run {
            write!(f, "dry run: none sent")?;
        } else {
            write!(f, "{} sent, {} rejected", self.sent, self.rejected)?;
            for part in self.failed_parts() {
                write!(f, ", {part}")?;
            }
        }
        write!(f, ", {} lines skipped, ", self.skipped_lines)?;
        match self.shift {
            Shift::Kept => write!(f, "timestamps kept")?,
            Shift::By(ns) => write!(f, "time shift {}", seconds(ns))?,
        }
        if self.adopted > 0 {
            write!(f, ", {} adopted into their rank's trace", self.adopted)?;
        }
        Ok(())
    }
}

impl Summary {
    /// Spans that never left: their batch was not sent (no connection), or not started after a
    /// failure. Everything read is exactly one of sent, rejected, answered, unanswered, not sent.
    fn not_sent(&self) -> u64 {
        self.spans.saturating_sub(
            self.sent
                + self.rejected
                + self.unanswered
                + self.answered_retryable
                + self.answered_final,
        )
    }

    /// The counts of spans that did not reach the collector, each said once, zeros left out.
    fn failed_parts(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if self.unanswered > 0 {
            parts.push(format!(
                "{} sent without an answer (the collector may have them)",
                self.unanswered
            ));
        }
        if self.answered_retryable > 0 {
            parts.push(format!(
                "{} answered with an error (retryable)",
                self.answered_retryable
            ));
        }
        if self.answered_final > 0 {
            parts.push(format!(
                "{} answered with an error (not retryable)",
                self.answered_final
            ));
        }
        if self.not_sent() > 0 {
            parts.push(format!("{} not sent", self.not_sent()));
        }
        parts
    }
}

/// Exact signed seconds, e.g. `+86400.000000123 s`.
fn seconds(ns: i128) -> String {
    let sign = if ns < 0 { '-' } else { '+' };
    let abs = ns.unsigned_abs();
    format!("{sign}{}.{:09} s", abs / 1_000_000_000, abs % 1_000_000_000)
}

fn replay(args: &ReplayArgs, quiet: bool) -> Result<Summary, Failure> {
    let inputs = input::expand(&args.input.inputs)?;
    if inputs.iter().filter(|i| **i == Input::Stdin).count() > 1 {
        return Err(crate::error::usage("- (stdin) is given more than once").into());
    }
    // Flags are checked before the input is read, so a typo does not cost a pass over the input.
    let client = if args.dry_run {
        None
    } else {
        let config = args
            .otlp
            .resolve()
            .map_err(|e| crate::error::usage(format!("{e:#}")))?;
        Some(OtlpClient::new(config).context("OTLP exporter")?)
    };
    let spool = match (&client, inputs.contains(&Input::Stdin)) {
        (Some(_), true) => Some(spool_file()?),
        _ => None,
    };

    let scan = scan(&inputs, args.input.skip_invalid, spool.as_ref())?;
    let shift = match (args.keep_timestamps, scan.latest_end) {
        (true, _) => Shift::Kept,
        (false, Some(latest)) => Shift::By(now_nanos() as i128 - latest as i128),
        (false, None) => Shift::By(0),
    };
    let mut summary = Summary {
        files: scan.counts.files,
        spans: scan.counts.spans,
        sent: 0,
        rejected: 0,
        unanswered: 0,
        answered_retryable: 0,
        answered_final: 0,
        skipped_lines: scan.counts.invalid + scan.counts.torn,
        shift,
        dry_run: args.dry_run,
        adopted: 0,
    };
    scan.counts.require_spans("send")?;
    let Some(client) = client else {
        return Ok(summary);
    };

    let plan = Plan {
        shift: match shift {
            Shift::Kept => 0,
            Shift::By(ns) => ns,
        },
        service_name: args.service_name.clone(),
        batch_spans: args.batch_size as usize,
        skip_invalid: args.input.skip_invalid,
        homes: (!args.no_adopt).then_some(scan.homes),
    };
    let bar = progress_bar(summary.spans, quiet);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(QUEUE);
    let reader = std::thread::Builder::new()
        .name("replay-reader".into())
        .spawn(move || stream(&inputs, spool, &plan, tx))
        .context("starting the reader thread")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut export_error = None;
    let mut partial_message = String::new();
    let client = Arc::new(client);
    runtime.block_on(async {
        // Up to IN_FLIGHT requests at once, so the collector's latency does not serialise the
        // replay. After a failure nothing new is started; the requests in flight finish, and
        // each one counts as the collector answered it. A request written without an answer
        // may still have arrived (a collector killed between reading and answering): its spans
        // are "sent without an answer", neither sent nor lost. A request answered with an error
        // was not taken; one that never got a connection was not sent.
        let mut in_flight = tokio::task::JoinSet::new();
        let mut queue_open = true;
        loop {
            let take = queue_open && export_error.is_none() && in_flight.len() < IN_FLIGHT;
            tokio::select! {
                batch = rx.recv(), if take => match batch {
                    Some(batch) => {
                        let client = client.clone();
                        in_flight.spawn(async move {
                            (batch.spans, client.export(batch.request).await)
                        });
                    }
                    None => queue_open = false,
                },
                done = in_flight.join_next(), if !in_flight.is_empty() => match done {
                    Some(Ok((spans, Ok(outcome)))) => {
                        // Clamped: a collector's count is not trusted beyond what it was sent.
                        let rejected = outcome.rejected_spans.clamp(0, spans as i64) as u64;
                        summary.rejected += rejected;
                        summary.sent += spans - rejected;
                        if rejected > 0 || !outcome.message.is_empty() {
                            partial_message = outcome.message;
                        }
                        bar.inc(spans);
                    }
                    Some(Ok((spans, Err(e)))) => {
                        use crate::otlp::Delivery;
                        match e.delivery {
                            Delivery::Unanswered => summary.unanswered += spans,
                            Delivery::Answered if e.retryable => summary.answered_retryable += spans,
                            Delivery::Answered => summary.answered_final += spans,
                            // Counted by what is left: Summary::not_sent.
                            Delivery::NotSent => {}
                        }
                        export_error.get_or_insert(e.message);
                    }
                    Some(Err(e)) => {
                        export_error.get_or_insert(format!("export task failed: {e}"));
                    }
                    None => {}
                },
                else => break,
            }
        }
    });
    // Dropping the queue stops a reader still blocked on it.
    drop(rx);
    bar.finish_and_clear();
    let read = reader
        .join()
        .map_err(|_| anyhow!("the reader thread failed"))?;

    let total = summary.spans;
    let fail = |message: String, summary: Summary| {
        Err(Failure {
            error: anyhow!(message),
            summary: Some(Box::new(summary)),
        })
    };
    if let Some(e) = export_error {
        let sent = summary.sent;
        let mut parts = summary.failed_parts();
        if summary.rejected > 0 {
            parts.insert(0, format!("{} rejected", summary.rejected));
        }
        return fail(
            format!(
                "export to {} failed: {e}; sent {sent} of {total} spans; {}",
                client.config().endpoint,
                parts.join(", ")
            ),
            summary,
        );
    }
    match read {
        Err(e) => {
            let sent = summary.sent;
            return fail(format!("{e:#}; sent {sent} of {total} spans"), summary);
        }
        Ok(counts) => {
            summary.adopted = counts.adopted;
            if counts.spans != total {
                tracing::warn!(
                    "the input changed while it was replayed: {total} spans checked, {} sent",
                    counts.spans
                );
            }
        }
    }
    if summary.rejected > 0 {
        let (rejected, sent) = (summary.rejected, summary.sent);
        return fail(
            format!(
                "the collector rejected {rejected} spans (partial success: {partial_message:?}); sent {sent} of {total} spans"
            ),
            summary,
        );
    }
    Ok(summary)
}

/// What pass one learns.
struct Scan {
    counts: Counts,
    latest_end: Option<u64>,
    homes: Homes,
}

/// Pass one: parse and validate everything, count, find the latest end time. Bad lines are
/// reported here (and only here) as `file:line: reason`.
fn scan(inputs: &[Input], skip_invalid: bool, spool: Option<&File>) -> anyhow::Result<Scan> {
    let mut counts = Counts::default();
    let mut latest_end: Option<u64> = None;
    let mut homes = Homes::default();
    let mut each = |file: usize, resource: &[KeyValue], data: TracesData| {
        for span in spans(&data.resource_spans) {
            latest_end = latest_end.max(Some(span.end_time_unix_nano));
        }
        homes.learn(file, resource, &data);
    };
    for (file, input) in inputs.iter().enumerate() {
        match (input, spool) {
            (Input::Stdin, Some(spool)) => {
                let error = Rc::new(RefCell::new(None));
                let tee = Tee {
                    inner: std::io::stdin().lock(),
                    copy: spool.try_clone().context("temporary file for stdin")?,
                    error: error.clone(),
                };
                let mut reader = input::open_stream(input.name(), Box::new(tee)).sketches();
                counts.files += 1;
                let read = scan_one(&mut reader, skip_invalid, &mut counts, &mut |r, d| {
                    each(file, r, d)
                });
                if let Some(e) = error.borrow_mut().take() {
                    bail!(
                        "cannot copy stdin to a temporary file (replay reads its input twice): {e}"
                    );
                }
                read?;
            }
            _ => {
                let mut reader = input::open(input)?.sketches();
                counts.files += 1;
                scan_one(&mut reader, skip_invalid, &mut counts, &mut |r, d| {
                    each(file, r, d)
                })?;
            }
        }
    }
    homes.link_program_files(inputs);
    Ok(Scan {
        counts,
        latest_end,
        homes,
    })
}

/// `input::read_one` with the line's shared resource beside its data (ranks are read there).
fn scan_one<R: BufRead>(
    reader: &mut Reader<R>,
    skip_invalid: bool,
    counts: &mut Counts,
    each: &mut impl FnMut(&[KeyValue], TracesData),
) -> anyhow::Result<()> {
    input::read_one(reader, skip_invalid, counts, &mut |r, _, data| {
        let resource = r.shared_resource().map(|s| &s.resource.attributes[..]);
        each(resource.unwrap_or(&[]), data);
        Ok(())
    })
}

fn spans(resource_spans: &[ResourceSpans]) -> impl Iterator<Item = &Span> {
    resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
}

/// An anonymous temporary file (unlinked at once, so it disappears however replay ends) that
/// holds stdin for the second pass.
fn spool_file() -> anyhow::Result<File> {
    tempfile::tempfile().with_context(|| {
        format!(
            "cannot create a temporary file in {} to hold stdin (replay reads its input twice; \
             set TMPDIR)",
            std::env::temp_dir().display()
        )
    })
}

/// Copies what it reads to `copy`. A write error is kept aside and reported by the caller, so it
/// is not mistaken for a bad line.
struct Tee<R> {
    inner: R,
    copy: File,
    error: Rc<RefCell<Option<std::io::Error>>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.copy.write_all(&buf[..n]) {
            let kind = e.kind();
            *self.error.borrow_mut() = Some(e);
            return Err(std::io::Error::new(kind, "cannot copy stdin"));
        }
        Ok(n)
    }
}

/// How pass two rewrites and groups what it reads.
struct Plan {
    shift: i128,
    service_name: Option<String>,
    batch_spans: usize,
    skip_invalid: bool,
    /// Where spans of other traces go; `None` with `--no-adopt`.
    homes: Option<Homes>,
}

/// One export request and the number of spans in it.
struct Batch {
    request: ExportTraceServiceRequest,
    spans: u64,
}

/// The exporter has stopped taking batches (it failed and reports why).
#[derive(Debug, thiserror::Error)]
#[error("the exporter stopped")]
struct Stopped;

/// Pass two, on the reader thread: parse, rewrite, group, queue. Lines that pass one skipped are
/// skipped again without a second warning.
fn stream(
    inputs: &[Input],
    spool: Option<File>,
    plan: &Plan,
    tx: tokio::sync::mpsc::Sender<Batch>,
) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    let mut batcher = Batcher::new(plan.batch_spans, plan.service_name.clone());
    let mut send = |batch: Batch| tx.blocking_send(batch).map_err(|_| Stopped);
    for (file, input) in inputs.iter().enumerate() {
        let mut reader = match (input, &spool) {
            (Input::Stdin, Some(spool)) => {
                let mut file = spool.try_clone().context("temporary file for stdin")?;
                file.seek(SeekFrom::Start(0))
                    .context("rewinding the temporary file for stdin")?;
                input::open_stream(input.name(), Box::new(file))
            }
            _ => input::open(input)?,
        }
        .shared_resources();
        counts.files += 1;
        match stream_one(
            file,
            &mut reader,
            plan,
            &mut counts,
            &mut batcher,
            &mut send,
        ) {
            Err(e) if e.is::<Stopped>() => return Ok(counts),
            other => other?,
        }
    }
    if let Some(batch) = batcher.take() {
        if send(batch).is_err() {
            return Ok(counts);
        }
    }
    Ok(counts)
}

fn stream_one<R: BufRead>(
    file: usize,
    reader: &mut Reader<R>,
    plan: &Plan,
    counts: &mut Counts,
    batcher: &mut Batcher,
    send: &mut impl FnMut(Batch) -> Result<(), Stopped>,
) -> anyhow::Result<()> {
    loop {
        match reader.next_data() {
            Ok(None) => return Ok(()),
            Ok(Some((_, data))) => {
                let shared = reader.shared_resource();
                for mut rs in data.resource_spans {
                    if let Some(homes) = &plan.homes {
                        let resource = shared.map(|r| &r.resource.attributes[..]);
                        counts.adopted += homes.adopt(file, &mut rs, resource);
                    }
                    rewrite(&mut rs, plan, shared.is_none());
                    counts.spans += batcher.add(rs, shared, send)?;
                }
            }
            Err(e) if e.torn || plan.skip_invalid => {}
            // Pass one accepted this line: the file was changed in between.
            Err(e) => bail!("{e} (the input changed after it was checked)"),
        }
    }
}

/// Applies the time shift and, to a resource of its own (`own_resource`; shared ones get it in
/// the batcher), the --service-name override.
fn rewrite(rs: &mut ResourceSpans, plan: &Plan, own_resource: bool) {
    if let (Some(name), true) = (&plan.service_name, own_resource) {
        rename_service(rs.resource.get_or_insert_with(Resource::default), name);
    }
    if plan.shift != 0 {
        for ss in &mut rs.scope_spans {
            for span in &mut ss.spans {
                shift_time(&mut span.start_time_unix_nano, plan.shift);
                shift_time(&mut span.end_time_unix_nano, plan.shift);
                for event in &mut span.events {
                    shift_time(&mut event.time_unix_nano, plan.shift);
                }
            }
        }
    }
}

fn rename_service(resource: &mut Resource, name: &str) {
    crate::attr::upsert(
        &mut resource.attributes,
        crate::attr::string("service.name", name),
    );
}

/// Exact integer shift. Times only leave u64 when the recorded ones lie in the future and the
/// oldest ones are older than that lead; those are clamped to the epoch.
fn shift_time(t: &mut u64, by: i128) {
    *t = (*t as i128 + by).clamp(0, u64::MAX as i128) as u64;
}

/// Collects spans into one request, grouped by resource and scope, until it holds `max_spans`
/// spans or about MAX_REQUEST_BYTES.
struct Batcher {
    groups: Vec<ResourceSpans>,
    /// Resource groups by a hash of resource and schema URL: a merged file interleaves many
    /// ranks, and comparing every span's resource with every group's costs more than the parse.
    index: HashMap<u64, Vec<usize>>,
    last: Option<usize>,
    /// Resource groups by the address of a shared resource (kept alive here, so the address is
    /// not reused while it is a key): one lookup per span instead of a resource copy, a hash and
    /// a comparison.
    shared: HashMap<usize, (Arc<SharedResource>, usize)>,
    spans: usize,
    bytes: usize,
    max_spans: usize,
    /// --service-name, for shared resources (the others are renamed by `rewrite`).
    service_name: Option<String>,
}

impl Batcher {
    fn new(max_spans: usize, service_name: Option<String>) -> Self {
        Batcher {
            groups: Vec::new(),
            index: HashMap::new(),
            last: None,
            shared: HashMap::new(),
            spans: 0,
            bytes: 0,
            max_spans,
            service_name,
        }
    }

    /// Adds the spans of `rs`, whose resource is `shared` if given (`rs` then holds none),
    /// sending every request that fills up; returns how many spans.
    fn add(
        &mut self,
        rs: ResourceSpans,
        shared: Option<&Arc<SharedResource>>,
        send: &mut impl FnMut(Batch) -> Result<(), Stopped>,
    ) -> Result<u64, Stopped> {
        let ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        } = rs;
        let mut added = 0;
        for ss in scope_spans {
            let ScopeSpans {
                scope,
                spans,
                schema_url: scope_schema,
            } = ss;
            for span in spans {
                let size = span.encoded_len();
                if self.spans > 0 && self.bytes + size > MAX_REQUEST_BYTES {
                    send(self.take().expect("non-empty batch"))?;
                }
                self.bytes += size;
                self.spans += 1;
                added += 1;
                let r = match shared {
                    Some(shared) => self.shared_group(shared),
                    None => self.resource_group(&resource, &schema_url),
                };
                scope_group(&mut self.groups[r].scope_spans, &scope, &scope_schema).push(span);
                if self.spans >= self.max_spans {
                    send(self.take().expect("non-empty batch"))?;
                }
            }
        }
        Ok(added)
    }

    /// The index of this resource's group in the current request. The last one used is tried
    /// first: consecutive spans of a rank file share it.
    fn resource_group(&mut self, resource: &Option<Resource>, schema_url: &str) -> usize {
        let same = |g: &ResourceSpans| g.resource == *resource && g.schema_url == schema_url;
        if let Some(last) = self.last.filter(|&i| same(&self.groups[i])) {
            return last;
        }
        let mut hasher = std::hash::DefaultHasher::new();
        schema_url.hash(&mut hasher);
        if let Some(r) = resource {
            hash_attributes(&r.attributes, &mut hasher);
        }
        let candidates = self.index.entry(hasher.finish()).or_default();
        let found = candidates.iter().copied().find(|&i| same(&self.groups[i]));
        let r = found.unwrap_or_else(|| {
            self.groups.push(ResourceSpans {
                resource: resource.clone(),
                scope_spans: Vec::new(),
                schema_url: schema_url.to_string(),
            });
            candidates.push(self.groups.len() - 1);
            self.groups.len() - 1
        });
        self.last = Some(r);
        r
    }

    /// The group of a shared resource: found by its address, or (the first time in a request) by
    /// its content as any other resource.
    fn shared_group(&mut self, shared: &Arc<SharedResource>) -> usize {
        let key = Arc::as_ptr(shared) as usize;
        if let Some(&(_, r)) = self.shared.get(&key) {
            return r;
        }
        let mut resource = shared.resource.clone();
        if let Some(name) = &self.service_name {
            rename_service(&mut resource, name);
        }
        let r = self.resource_group(&Some(resource), &shared.schema_url);
        self.shared.insert(key, (shared.clone(), r));
        r
    }

    fn take(&mut self) -> Option<Batch> {
        if self.spans == 0 {
            return None;
        }
        self.index.clear();
        self.shared.clear();
        self.last = None;
        let batch = Batch {
            request: ExportTraceServiceRequest {
                resource_spans: std::mem::take(&mut self.groups),
            },
            spans: self.spans as u64,
        };
        self.spans = 0;
        self.bytes = 0;
        Some(batch)
    }
}

/// The span list of this scope within a resource group (resources hold few scopes).
fn scope_group<'a>(
    scopes: &'a mut Vec<ScopeSpans>,
    scope: &Option<InstrumentationScope>,
    schema_url: &str,
) -> &'a mut Vec<Span> {
    let s = match scopes
        .iter()
        .rposition(|s| s.scope == *scope && s.schema_url == schema_url)
    {
        Some(s) => s,
        None => {
            scopes.push(ScopeSpans {
                scope: scope.clone(),
                spans: Vec::new(),
                schema_url: schema_url.to_string(),
            });
            scopes.len() - 1
        }
    };
    &mut scopes[s].spans
}

/// Hashes attributes consistently with their `==` (doubles by bit pattern: equal values that
/// hash apart only cost an extra group).
fn hash_attributes(attributes: &[KeyValue], h: &mut impl Hasher) {
    for kv in attributes {
        kv.key.hash(h);
        hash_value(kv.value.as_ref().and_then(|v| v.value.as_ref()), h);
    }
}

fn hash_value(value: Option<&Value>, h: &mut impl Hasher) {
    match value {
        None => h.write_u8(0),
        Some(Value::StringValue(s)) => s.hash(h),
        Some(Value::BoolValue(b)) => b.hash(h),
        Some(Value::IntValue(i)) => i.hash(h),
        Some(Value::DoubleValue(d)) => d.to_bits().hash(h),
        Some(Value::BytesValue(b)) => b.hash(h),
        Some(Value::ArrayValue(a)) => {
            for v in &a.values {
                hash_value(v.value.as_ref(), h);
            }
        }
        Some(Value::KvlistValue(l)) => hash_attributes(&l.values, h),
        Some(Value::StringValueStrindex(i)) => i.hash(h),
    }
}

/// A bar on a terminal only: not when stderr is redirected, not with -q.
fn progress_bar(total: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{wide_bar} {pos}/{len} spans sent, {elapsed} elapsed, {eta} left",
    ) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr;

    fn span(id: u8, end: u64) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            start_time_unix_nano: end - 10,
            end_time_unix_nano: end,
            ..Default::default()
        }
    }

    fn rs(service: &str, scope: &str, spans: Vec<Span>) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attr::string("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope.into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }
    }

    #[test]
    fn groups_by_resource_and_scope_in_bounded_batches() {
        let mut batcher = Batcher::new(3, None);
        let mut out = Vec::new();
        let mut send = |b: Batch| {
            out.push(b);
            Ok(())
        };
        for (i, (svc, scope)) in [("a", "x"), ("a", "x"), ("b", "x"), ("a", "y"), ("a", "x")]
            .into_iter()
            .enumerate()
        {
            batcher
                .add(
                    rs(svc, scope, vec![span(i as u8 + 1, 100)]),
                    None,
                    &mut send,
                )
                .unwrap();
        }
        // One line holding more spans than a batch is split.
        let many = (10..17).map(|i| span(i, 100)).collect();
        assert_eq!(batcher.add(rs("c", "x", many), None, &mut send).unwrap(), 7);
        out.extend(batcher.take());
        let sizes: Vec<u64> = out.iter().map(|b| b.spans).collect();
        assert_eq!(sizes, [3, 3, 3, 3]);
        let first = &out[0].request.resource_spans;
        assert_eq!(first.len(), 2, "a and b");
        assert_eq!(first[0].scope_spans[0].spans.len(), 2, "a/x holds two");
        let second = &out[1].request.resource_spans;
        assert_eq!(second.len(), 2, "a (scopes y and x), then c");
        assert_eq!(second[0].scope_spans.len(), 2);
        assert_eq!(
            out.iter()
                .map(|b| crate::format::span_count(&b.request.resource_spans))
                .sum::<usize>(),
            12
        );
    }

    #[test]
    fn shared_resources_group_like_copied_ones() {
        let resource = |svc: &str, schema: &str| SharedResource {
            resource: rs(svc, "x", vec![]).resource.unwrap(),
            schema_url: schema.into(),
        };
        let a = Arc::new(resource("a", "s"));
        let same_as_a = Arc::new(resource("a", "s"));
        let b = Arc::new(resource("b", ""));
        let mut batcher = Batcher::new(100, Some("renamed".into()));
        let mut out = Vec::new();
        let mut send = |b: Batch| {
            out.push(b);
            Ok(())
        };
        for (i, shared) in [&a, &b, &same_as_a, &a].into_iter().enumerate() {
            let mut line = rs("ignored", "x", vec![span(i as u8 + 1, 100)]);
            line.resource = None;
            batcher.add(line, Some(shared), &mut send).unwrap();
        }
        out.extend(batcher.take());
        let groups = &out[0].request.resource_spans;
        assert_eq!(
            groups.len(),
            2,
            "a (twice the same Arc, once an equal one) and b"
        );
        assert_eq!(groups[0].scope_spans[0].spans.len(), 3);
        assert_eq!(groups[0].schema_url, "s");
        for g in groups {
            let attrs = &g.resource.as_ref().unwrap().attributes;
            assert_eq!(attrs.len(), 1);
            assert_eq!(attr::get_str(attrs, "service.name"), Some("renamed"));
        }
    }

    #[test]
    fn requests_stay_under_the_byte_bound() {
        let mut batcher = Batcher::new(65536, None);
        let mut out = Vec::new();
        let mut send = |b: Batch| {
            out.push(b);
            Ok(())
        };
        let mut big = span(1, 100);
        big.name = "x".repeat(1 << 20);
        for _ in 0..5 {
            batcher
                .add(rs("a", "x", vec![big.clone()]), None, &mut send)
                .unwrap();
        }
        out.extend(batcher.take());
        assert_eq!(out.iter().map(|b| b.spans).collect::<Vec<_>>(), [2, 2, 1]);
        assert!(out
            .iter()
            .all(|b| b.request.encoded_len() < MAX_REQUEST_BYTES + 1024));
    }

    #[test]
    fn rewrite_shifts_exactly_and_renames_the_service() {
        let mut s = span(1, 1_700_000_000_123_456_789);
        s.events.push(Default::default());
        s.events[0].time_unix_nano = 1_700_000_000_000_000_001;
        let mut r = rs("orig", "x", vec![s]);
        let plan = Plan {
            shift: -1_000_000_000_000_000_000,
            service_name: Some("replayed".into()),
            batch_spans: 1,
            skip_invalid: false,
            homes: None,
        };
        rewrite(&mut r, &plan, true);
        let s = &r.scope_spans[0].spans[0];
        assert_eq!(s.end_time_unix_nano, 700_000_000_123_456_789);
        assert_eq!(s.start_time_unix_nano, 700_000_000_123_456_779);
        assert_eq!(s.events[0].time_unix_nano, 700_000_000_000_000_001);
        let attrs = &r.resource.as_ref().unwrap().attributes;
        assert_eq!(attrs.len(), 1);
        assert_eq!(attr::get_str(attrs, "service.name"), Some("replayed"));
    }

    #[test]
    fn summary_reads_as_one_line() {
        let mut s = Summary {
            files: 1,
            spans: 10,
            sent: 8,
            rejected: 2,
            unanswered: 0,
            answered_retryable: 0,
            answered_final: 0,
            skipped_lines: 1,
            shift: Shift::By(-1_500_000_000),
            dry_run: false,
            adopted: 0,
        };
        assert_eq!(
            s.to_string(),
            "1 file, 10 spans read, 8 sent, 2 rejected, 1 lines skipped, time shift -1.500000000 s"
        );
        s.dry_run = true;
        s.shift = Shift::Kept;
        assert_eq!(
            s.to_string(),
            "1 file, 10 spans read, dry run: none sent, 1 lines skipped, timestamps kept"
        );
    }
}
