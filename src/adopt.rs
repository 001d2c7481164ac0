//! Adoption (ARCHITECTURE.md §6, §15): spans of a foreign trace that belong to a rank are re-homed
//! into the job's trace under that rank's process span, keeping the trace id they came with as
//! `otel_run.original_trace_id`. OpenTelemetry Python ignores TRACEPARENT, so a Python program's
//! root spans start traces of their own; this is what puts them back into the job.
//!
//! One rule, used wherever spans meet: the sink live (it knows its rank's process span), and
//! `replay` and `merge` afterwards, for files written without the sink (`--sink off`, a program's
//! own jsonlines exporter). Offline, each rank's home is learned from the process spans among the
//! inputs ([`Homes`]): by (job id, rank), and by file for spans that carry no rank.

use crate::attr;
use crate::format::{is_otlp_line, python};
use crate::input::Input;
use crate::semconv;
use anyhow::Context;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, TracesData};
use rustc_hash::{FxHashMap, FxHashSet};

/// A rank's process span: the job's trace and the span's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Home {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

/// Re-homes `span` under `home` unless it is already in the home's trace: the trace id becomes the
/// job's, the original is kept as an attribute, and a parentless span hangs under the process
/// span. The whole foreign trace moves, so inner parents stay, and links into that trace follow it
/// (they still point at the same span); links to other traces are kept as they are. Whether it did.
pub fn rehome(span: &mut Span, home: &Home) -> bool {
    if span.trace_id == home.trace_id {
        return false;
    }
    let original_id = std::mem::replace(&mut span.trace_id, home.trace_id.to_vec());
    for link in &mut span.links {
        if link.trace_id == original_id {
            link.trace_id = home.trace_id.to_vec();
        }
    }
    let original = crate::ids::hex(&original_id);
    attr::upsert(
        &mut span.attributes,
        attr::string(semconv::ORIGINAL_TRACE_ID, original),
    );
    if span.parent_span_id.is_empty() {
        span.parent_span_id = home.span_id.to_vec();
    }
    true
}

/// [`rehome`] for every span of a batch (the sink's, whose one home is its rank's process span);
/// how many were adopted.
pub fn rehome_batch(batch: &mut [ResourceSpans], home: &Home) -> u64 {
    let mut adopted = 0;
    for rs in batch {
        for ss in &mut rs.scope_spans {
            for span in &mut ss.spans {
                adopted += rehome(span, home) as u64;
            }
        }
    }
    adopted
}

/// Where spans of other traces are re-homed, learned from the process spans of the inputs.
#[derive(Default)]
pub struct Homes {
    /// By (job id, rank): ranks of different jobs read together never share a home, and a rank is
    /// only found by its job id (`*.job.id`, which the contract passes to the program in
    /// OTEL_RESOURCE_ATTRIBUTES), never by the bare rank number.
    by_rank: FxHashMap<(String, i64), Home>,
    /// Per input, in order: its process span when it holds exactly one.
    by_file: Vec<FileHome>,
    /// Every home's trace: a span in one of them needs no adoption, which merge checks on the
    /// sketch of a line before deciding to read it in full.
    traces: FxHashSet<[u8; 16]>,
}

#[derive(Clone, Copy, Default, PartialEq)]
enum FileHome {
    #[default]
    None,
    One(Home),
    /// Two process spans: the file's spans without a rank have no one home.
    Many,
}

impl Homes {
    /// Adds what a scan of later inputs found: what is known already wins, as the earlier
    /// inputs' process spans do in one pass.
    fn absorb(&mut self, later: Homes) {
        for (key, home) in later.by_rank {
            self.by_rank.entry(key).or_insert(home);
        }
        if self.by_file.len() < later.by_file.len() {
            self.by_file.resize(later.by_file.len(), FileHome::None);
        }
        for (file, found) in later.by_file.into_iter().enumerate() {
            if found != FileHome::None {
                self.by_file[file] = found;
            }
        }
        self.traces.extend(later.traces);
    }

    /// Notes `span` of input `file` if it is a process span.
    pub fn learn_span(&mut self, file: usize, resource: &[KeyValue], span: &Span) {
        if attr::get_str(&span.attributes, semconv::SPAN_ROLE) != Some(semconv::ROLE_PROCESS) {
            return;
        }
        let (Ok(trace_id), Ok(span_id)) = (
            <[u8; 16]>::try_from(&span.trace_id[..]),
            <[u8; 8]>::try_from(&span.span_id[..]),
        ) else {
            return;
        };
        let home = Home { trace_id, span_id };
        self.traces.insert(trace_id);
        if let Some(key) = job_rank(resource, &span.attributes) {
            self.by_rank.entry(key).or_insert(home);
        }
        if self.by_file.len() <= file {
            self.by_file.resize(file + 1, FileHome::None);
        }
        let slot = &mut self.by_file[file];
        *slot = match *slot {
            FileHome::None => FileHome::One(home),
            FileHome::One(h) if h == home => FileHome::One(h),
            _ => FileHome::Many,
        };
    }

    /// Notes the process spans of one line of input `file`; `resource` is the line's shared
    /// resource, for resource groups that hold none of their own.
    pub fn learn(&mut self, file: usize, resource: &[KeyValue], data: &TracesData) {
        for rs in &data.resource_spans {
            let own = rs.resource.as_ref().map(|r| &r.attributes[..]);
            let resource = own.unwrap_or(resource);
            for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                self.learn_span(file, resource, span);
            }
        }
    }

    /// The home of a span of input `file`: its (job id, rank)'s, else its file's.
    pub fn home(&self, file: usize, resource: &[KeyValue], span: &Span) -> Option<&Home> {
        let file_home = match self.by_file.get(file) {
            Some(FileHome::One(home)) => Some(home),
            _ => None,
        };
        match job_rank(resource, &span.attributes) {
            Some(key) => self.by_rank.get(&key).or(file_home),
            None => file_home,
        }
    }

    /// Whether `span` (possibly a sketch: ids, role and rank suffice) has a home in another trace.
    pub fn needs_adoption(&self, file: usize, resource: &[KeyValue], span: &Span) -> bool {
        if self.traces.is_empty() || self.traces.contains(&span.trace_id[..]) {
            return false;
        }
        self.home(file, resource, span).is_some()
    }

    /// Re-homes the spans of `rs` that belong to a rank but not to its trace; how many. `shared`
    /// is the resource when `rs` holds none of its own.
    pub fn adopt(&self, file: usize, rs: &mut ResourceSpans, shared: Option<&[KeyValue]>) -> u64 {
        let ResourceSpans {
            resource,
            scope_spans,
            ..
        } = rs;
        let resource = match (resource.as_ref(), shared) {
            (Some(r), _) => &r.attributes[..],
            (None, Some(s)) => s,
            (None, None) => &[],
        };
        let mut adopted = 0;
        for span in scope_spans.iter_mut().flat_map(|ss| &mut ss.spans) {
            if let Some(home) = self.home(file, resource, span) {
                adopted += rehome(span, home) as u64;
            }
        }
        adopted
    }
}

/// A span's job id (the first `*.job.id` attribute, resource first; `42` and `"42"` alike) and
/// rank, when it has both.
pub fn job_rank(resource: &[KeyValue], span: &[KeyValue]) -> Option<(String, i64)> {
    let job = |attrs: &[KeyValue]| {
        attrs.iter().rev().find_map(|kv| {
            if !kv.key.ends_with(".job.id") {
                return None;
            }
            match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                Value::IntValue(i) => Some(i.to_string()),
                _ => None,
            }
        })
    };
    let job = job(resource).or_else(|| job(span))?;
    Some((job, attr::rank(resource, span)?))
}

/// The key every process span carries, as both line formats spell it: only lines holding it are
/// parsed by [`scan`].
const ROLE_KEY: &[u8] = b"\"otel_run.span\"";

/// Learns the homes of every regular file among `inputs` with a byte scan: the file is read in
/// large chunks, searched for [`ROLE_KEY`] (SIMD, no per-line work), and only the lines holding it
/// (otel-run's own spans, a few per rank) are parsed. Stdin cannot be read twice; its process
/// spans are learned as it is read ([`Homes::learn_span`]). Unreadable or bad lines are left to
/// the reading pass, which reports them.
///
/// Many files are scanned by several threads (one per core, at most 4), each a contiguous share
/// of the inputs; their findings are joined in input order, so the first process span of a rank
/// wins as in one pass. A scan is mostly opening and reading files, and at 4,096 rank files it was
/// a tenth of `merge --sort start`.
pub fn scan(inputs: &[Input]) -> anyhow::Result<Homes> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_SCAN_THREADS)
        .min(inputs.len().div_ceil(MIN_FILES_PER_THREAD))
        .max(1);
    let share = inputs.len().div_ceil(threads).max(1);
    let parts: Vec<anyhow::Result<Homes>> = std::thread::scope(|scope| {
        let scans: Vec<_> = inputs
            .chunks(share)
            .enumerate()
            .map(|(i, part)| scope.spawn(move || scan_part(i * share, part)))
            .collect();
        scans
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("adoption scan panicked")))
            })
            .collect()
    });
    let mut homes = Homes::default();
    for part in parts {
        homes.absorb(part?);
    }
    homes.link_program_files(inputs);
    Ok(homes)
}

/// Scan threads at most, and files a thread is worth.
const MAX_SCAN_THREADS: usize = 4;
const MIN_FILES_PER_THREAD: usize = 64;

/// Scans `inputs`, the first of which is input number `first`.
fn scan_part(first: usize, inputs: &[Input]) -> anyhow::Result<Homes> {
    let finder = memchr::memmem::Finder::new(ROLE_KEY);
    let mut homes = Homes::default();
    // One buffer for every file: a fresh 1 MiB per file was zeroed each time (glibc serves it
    // from the heap once a freed one has raised its mmap threshold), 4 GiB of memset at 4,096
    // files, more than the rest of the scan.
    let mut buf = vec![0u8; SCAN_CHUNK];
    let files: Vec<(usize, &std::path::Path)> = inputs
        .iter()
        .enumerate()
        .filter_map(|(i, input)| match input {
            Input::File(path) => Some((first + i, path.as_path())),
            Input::Stdin => None,
        })
        .collect();
    // The next few files are opened ahead and their reading started (see `open_ahead`).
    let mut ahead = std::collections::VecDeque::with_capacity(SCAN_AHEAD);
    let mut next = 0;
    for &(file, path) in &files {
        while ahead.len() < SCAN_AHEAD && next < files.len() {
            ahead.push_back(open_ahead(files[next].1));
            next += 1;
        }
        let opened = ahead.pop_front().expect("the file itself is ahead");
        let opened = opened.with_context(|| format!("cannot open {}", path.display()))?;
        scan_file(file, opened, &finder, &mut buf, &mut homes)?;
        buf.truncate(SCAN_CHUNK);
    }
    Ok(homes)
}

/// Read size of the scan; a longer line grows the buffer.
const SCAN_CHUNK: usize = 1 << 20;
/// Files a scan thread has open ahead of the one it reads.
const SCAN_AHEAD: usize = 8;

/// Opens a file the scan reads soon and asks the kernel to start reading all of it
/// (`POSIX_FADV_WILLNEED`), so the scan finds it in memory instead of waiting for each file's
/// reads in turn: rank files on a parallel file system are rarely cached, and even here evicted
/// pages made the scan wait ~400 times per 4,096 files. Only advice: its failure changes nothing.
fn open_ahead(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    let file = std::fs::File::open(path)?;
    let _ = posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_WILLNEED);
    Ok(file)
}

fn scan_file(
    file: usize,
    opened: std::fs::File,
    finder: &memchr::memmem::Finder,
    buf: &mut Vec<u8>,
    homes: &mut Homes,
) -> anyhow::Result<()> {
    use std::io::{BufRead, Read};
    let mut buffered = std::io::BufReader::with_capacity(64 << 10, opened);
    // gzip is detected by content, as the readers do.
    let gzip = buffered
        .fill_buf()
        .is_ok_and(|b| b.starts_with(&[0x1f, 0x8b]));
    let mut reader: Box<dyn Read> = if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if buf.len() > 2 * crate::format::MAX_LINE_BYTES {
                return Ok(()); // an overlong line: the reading pass reports it
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = match reader.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(()), // the reading pass reports it
        };
        filled += n;
        let eof = n == 0;
        // Whole lines only: up to the last newline, or everything at the end.
        let end = match (eof, memchr::memrchr(b'\n', &buf[..filled])) {
            (true, _) => filled,
            (false, Some(i)) => i + 1,
            (false, None) => continue,
        };
        let mut done = 0;
        for hit in finder.find_iter(&buf[..end]) {
            if hit < done {
                continue; // a second hit in a line already read
            }
            let start = memchr::memrchr(b'\n', &buf[..hit]).map_or(0, |i| i + 1);
            let stop = memchr::memchr(b'\n', &buf[hit..end]).map_or(end, |i| hit + i);
            learn_line(file, buf[start..stop].trim_ascii(), homes);
            done = stop;
        }
        buf.copy_within(end..filled, 0);
        filled -= end;
        if eof {
            return Ok(());
        }
    }
}

/// Learns the process spans of one line, if it parses.
fn learn_line(file: usize, line: &[u8], homes: &mut Homes) {
    if is_otlp_line(line) {
        if let Ok(data) = crate::format::parse_line(line) {
            homes.learn(file, &[], &data);
        }
    } else if let Ok((span, resource)) = python::sketch(line) {
        homes.learn_span(file, &resource.resource.attributes, &span);
    }
}

impl Homes {
    /// A program's own file (`traces_x.program.jsonlines`, what a jsonlines-writing program
    /// writes beside the rank's file while the sink writes that one) has no process span of its
    /// own: its home is its rank file's, when that is among the inputs.
    pub fn link_program_files(&mut self, inputs: &[Input]) {
        let program_files: Vec<(usize, std::path::PathBuf)> = inputs
            .iter()
            .enumerate()
            .filter_map(|(i, input)| match input {
                Input::File(p) => Some((i, crate::format::path::rank_file_of(p)?)),
                Input::Stdin => None,
            })
            .collect();
        // Most merges have none: then no input is resolved (a realpath of each of 4,096 inputs
        // was 15 ms before the first span was read).
        if program_files.is_empty() {
            return;
        }
        let canonical = |p: &std::path::Path| std::fs::canonicalize(p).ok();
        let mut by_path = FxHashMap::default();
        for (i, input) in inputs.iter().enumerate() {
            if let (Input::File(p), Some(FileHome::One(h))) = (input, self.by_file.get(i)) {
                if let Some(c) = canonical(p) {
                    by_path.insert(c, *h);
                }
            }
        }
        for (i, rank_file) in program_files {
            let home = canonical(&rank_file).and_then(|c| by_path.get(&c).copied());
            if let (Some(home), true) = (home, self.file_home(i) == FileHome::None) {
                if self.by_file.len() <= i {
                    self.by_file.resize(i + 1, FileHome::None);
                }
                self.by_file[i] = FileHome::One(home);
            }
        }
    }

    fn file_home(&self, file: usize) -> FileHome {
        self.by_file.get(file).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{span::Link, ScopeSpans};

    fn span(trace: u8, id: u8, parent: Option<u8>) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            ..Default::default()
        }
    }

    fn process(trace: u8, id: u8) -> Span {
        let mut s = span(trace, id, None);
        s.attributes = vec![attr::string(semconv::SPAN_ROLE, semconv::ROLE_PROCESS)];
        s
    }

    fn rank_resource(job: &str, rank: i64) -> Vec<KeyValue> {
        vec![
            attr::string("slurm.job.id", job),
            attr::string(semconv::MPI_RANK, rank.to_string()),
        ]
    }

    #[test]
    fn rehome_keeps_inner_parents_and_the_original_trace() {
        let home = Home {
            trace_id: [9; 16],
            span_id: [7; 8],
        };
        let mut linked = span(1, 4, Some(1));
        linked.links = vec![
            Link {
                trace_id: vec![1; 16],
                span_id: vec![1; 8],
                ..Default::default()
            },
            Link {
                trace_id: vec![5; 16],
                span_id: vec![5; 8],
                ..Default::default()
            },
        ];
        assert!(rehome(&mut linked, &home));
        assert_eq!(
            linked.links[0].trace_id, [9; 16],
            "a link into the moved trace follows it"
        );
        assert_eq!(
            linked.links[1].trace_id, [5; 16],
            "other traces' links stay"
        );
        // A batch as the sink receives it: two spans of a foreign trace, one of the job's.
        let mut batch = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span(1, 1, None), span(1, 2, Some(1)), span(9, 3, Some(7))],
                ..Default::default()
            }],
            ..Default::default()
        }];
        assert_eq!(
            rehome_batch(&mut batch, &home),
            2,
            "the foreign root and child; not the span already in the job's trace"
        );
        let [root, child, own] = &batch[0].scope_spans[0].spans[..] else {
            panic!("three spans")
        };
        assert!(batch[0].scope_spans[0]
            .spans
            .iter()
            .all(|s| s.trace_id == home.trace_id));
        assert_eq!(
            root.parent_span_id, [7; 8],
            "root goes under the process span"
        );
        assert_eq!(child.parent_span_id, [1; 8], "inner parents intact");
        let original = crate::ids::hex(&[1; 16]);
        assert_eq!(
            attr::get_str(&root.attributes, semconv::ORIGINAL_TRACE_ID),
            Some(original.as_str())
        );
        assert!(own.attributes.is_empty());
    }

    #[test]
    fn homes_by_job_and_rank_then_by_file() {
        let mut homes = Homes::default();
        // Input 0: rank 0's file (its process span); input 1: rank 1's; input 2: no process span.
        homes.learn_span(0, &rank_resource("42", 0), &process(9, 10));
        homes.learn_span(1, &rank_resource("42", 1), &process(9, 11));
        // The integer and the string are the same rank; job 43 is another job.
        let int_rank = vec![
            attr::int("slurm.job.id", 42),
            attr::int(semconv::MPI_RANK, 1),
        ];
        assert_eq!(
            homes.home(2, &int_rank, &span(1, 1, None)).unwrap().span_id,
            [11; 8]
        );
        assert!(homes
            .home(2, &rank_resource("43", 1), &span(1, 1, None))
            .is_none());
        // No rank at all: the file's one process span.
        assert_eq!(
            homes.home(0, &[], &span(1, 1, None)).unwrap().span_id,
            [10; 8]
        );
        assert!(homes.home(2, &[], &span(1, 1, None)).is_none());
        // Rank on the span (bsb-otel), job id on the resource.
        let mut on_span = span(1, 1, None);
        on_span.attributes = vec![attr::int(semconv::MPI_RANK, 0)];
        let job_only = vec![attr::string("slurm.job.id", "42")];
        assert!(homes.needs_adoption(2, &job_only, &on_span));
        assert!(
            !homes.needs_adoption(2, &job_only, &span(9, 1, None)),
            "job's trace"
        );

        let mut rs = ResourceSpans {
            resource: Some(Resource {
                attributes: job_only,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![on_span, span(9, 5, Some(10))],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(homes.adopt(2, &mut rs, None), 1);
        assert_eq!(rs.scope_spans[0].spans[0].trace_id, [9; 16]);
        assert_eq!(rs.scope_spans[0].spans[0].parent_span_id, [10; 8]);

        // A second, different process span in a file: no one home by file.
        homes.learn_span(0, &[], &process(8, 12));
        assert!(homes.home(0, &[], &span(1, 1, None)).is_none());
    }
}
