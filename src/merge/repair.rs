//! Parent checks and `--repair`, in bounded memory. Every span leaves small "facts" — "span X
//! exists" and "span X is the parent of a span starting at S, ending at E" — that go through their
//! own external sort, keyed by (trace id, span id). One pass over the sorted facts then sees, per
//! span id, whether it exists, how often and with which content, and which children point at it:
//! exact counts of duplicates, conflicts and orphans, and what each missing parent must cover.

use super::extsort::{ExtSorter, Sortable};
use super::record::{ids, Ids, Record};
use crate::{attr, semconv};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use std::collections::{BTreeMap, HashSet};

/// Marks spans that merge --repair made up.
pub const SYNTHETIC: &str = "otel_run.synthetic";

const PRESENT: u8 = 0;
const CHILD: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Other = 0,
    Process = 1,
    Step = 2,
}

pub fn role(span: &Span) -> Role {
    match attr::get_str(&span.attributes, semconv::SPAN_ROLE) {
        Some(semconv::ROLE_PROCESS) => Role::Process,
        Some(semconv::ROLE_STEP) => Role::Step,
        _ => Role::Other,
    }
}

/// What the parent checks need of one span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanFacts {
    pub start: u64,
    pub end: u64,
    pub role: Role,
    /// `None`: a root span.
    pub parent: Option<[u8; 8]>,
}

impl SpanFacts {
    pub fn of(span: &Span) -> SpanFacts {
        SpanFacts {
            start: span.start_time_unix_nano,
            end: span.end_time_unix_nano,
            role: role(span),
            parent: (!span.parent_span_id.is_empty()).then(|| {
                let mut p = [0u8; 8];
                let n = span.parent_span_id.len().min(8);
                p[..n].copy_from_slice(&span.parent_span_id[..n]);
                p
            }),
        }
    }
}

/// Collects the facts of every kept span, plus what repairing needs later: the step roots
/// themselves (one per job) and the first resource of each input file (the rank a missing
/// parent's placeholder belongs to).
pub struct Facts {
    sorter: FactSorter,
    steps: BTreeMap<Ids, Record>,
    file_resources: Vec<Option<Resource>>,
    /// Ids of each file's process span: a placeholder found through a rank's file hangs under it.
    file_process: Vec<Option<Ids>>,
}

impl Facts {
    /// The facts sort in `budget` bytes, spilling to `temp_dir`, `fan_in` runs at a time.
    pub fn new(budget: usize, temp_dir: std::path::PathBuf, fan_in: usize, files: usize) -> Self {
        Facts {
            sorter: FactSorter::start(ExtSorter::new(budget, temp_dir, fan_in)),
            steps: BTreeMap::new(),
            file_resources: vec![None; files],
            file_process: vec![None; files],
        }
    }

    /// Records the facts of one span (of `record`); `resource` gives its resource, asked for only
    /// for the first span of each file.
    pub fn add(
        &mut self,
        span: &SpanFacts,
        record: &Record,
        resource: impl FnOnce() -> Resource,
    ) -> anyhow::Result<()> {
        let file = record.file;
        if let Some(slot) = self.file_resources.get_mut(file as usize) {
            if slot.is_none() {
                *slot = Some(resource());
            }
        }
        let role = span.role;
        if role == Role::Process {
            if let Some(slot) = self.file_process.get_mut(file as usize) {
                *slot = Some(record.ids);
            }
        }
        if role == Role::Step {
            // Keep the smallest content hash, so which copy of a duplicated step root is repaired
            // does not depend on input order.
            let keep = self
                .steps
                .get(&record.ids)
                .is_none_or(|kept| (record.hash, &*record.data) < (kept.hash, &*kept.data));
            if keep {
                // Kept to the end: in an allocation of its own, not holding its slab.
                let step = Record {
                    data: record.data.clone().own(),
                    ..record.clone()
                };
                self.steps.insert(record.ids, step);
            }
        }
        self.sorter.push(Fact {
            ids: record.ids,
            hash: record.hash,
            span: *span,
            file,
        })
    }

    /// Sorts the facts and works out the counts and, with `repair`, the spans to add or replace.
    pub fn analyse(self, repair: bool) -> anyhow::Result<Analysis> {
        let Facts {
            sorter,
            steps,
            file_resources,
            file_process,
        } = self;
        let kept = Kept {
            steps,
            file_resources,
            file_process,
        };
        let mut out = Analysis::default();
        let mut trace = TraceState::default();
        let mut group: Option<Group> = None;
        for fact in sorter.finish()?.finish()? {
            let fact = fact?;
            if group.as_ref().is_some_and(|g| g.key != fact.ids) {
                let done = group.take().expect("checked");
                if done.ids[..16] != trace.trace_id {
                    finish_trace(&mut trace, &kept, repair, &mut out)?;
                    trace = TraceState::new(&done.ids);
                }
                trace.add(done, &mut out);
            }
            let g = group.get_or_insert_with(|| Group::new(&fact));
            g.add(&fact);
        }
        if let Some(done) = group {
            if done.ids[..16] != trace.trace_id {
                finish_trace(&mut trace, &kept, repair, &mut out)?;
                trace = TraceState::new(&done.ids);
            }
            trace.add(done, &mut out);
        }
        finish_trace(&mut trace, &kept, repair, &mut out)?;
        Ok(out)
    }
}

/// The facts of one span, on their way to the sorting thread.
#[derive(Clone, Copy)]
struct Fact {
    ids: Ids,
    hash: u64,
    span: SpanFacts,
    file: u32,
}

impl Fact {
    /// What is sorted by id: "this span exists", and "its parent has a child".
    fn records(
        &self,
        mut each: impl FnMut(FactRecord) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let span = &self.span;
        each(FactRecord {
            ids: FactRecord::key(&self.ids),
            kind: PRESENT,
            a: self.hash,
            b: span.start,
            c: span.end,
            role: span.role as u8,
            root: span.parent.is_none() as u8,
            file: self.file,
        })?;
        if let Some(parent) = span.parent {
            each(FactRecord {
                ids: FactRecord::key(&ids(&self.ids[..16], &parent)),
                kind: CHILD,
                a: span.start,
                b: span.end,
                c: 0,
                role: span.role as u8,
                root: 0,
                file: self.file,
            })?;
        }
        Ok(())
    }
}

/// One sorted fact, of a fixed size: sorting 2 per span, each allocated on its own and compared
/// as bytes, was a fifth of `merge --sort start`'s CPU. The order is by (trace id, span id), then
/// kind (`PRESENT` before `CHILD`), then the kind's fields in turn, then the input file, so ties
/// fall the same way however the facts were spilled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FactRecord {
    /// Trace id and span id as big-endian integers: their order is the bytes' order.
    ids: [u64; 3],
    kind: u8,
    /// `PRESENT`: the content hash, start and end; `CHILD`: the child's start and end, and 0.
    a: u64,
    b: u64,
    c: u64,
    role: u8,
    /// `PRESENT`: 1 for a span without a parent.
    root: u8,
    file: u32,
}

/// A fact's size in a temporary file.
const FACT_BYTES: usize = 24 + 1 + 24 + 1 + 1 + 4;

impl FactRecord {
    fn key(ids: &Ids) -> [u64; 3] {
        let at = |i: usize| u64::from_be_bytes(ids[i..i + 8].try_into().expect("8 bytes"));
        [at(0), at(8), at(16)]
    }

    fn ids(&self) -> Ids {
        let mut out = [0u8; 24];
        for (i, part) in self.ids.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&part.to_be_bytes());
        }
        out
    }
}

impl Sortable for FactRecord {
    fn held(&self) -> usize {
        std::mem::size_of::<Self>()
    }

    fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut b = [0u8; FACT_BYTES];
        for (i, part) in self.ids.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&part.to_le_bytes());
        }
        b[24] = self.kind;
        b[25..33].copy_from_slice(&self.a.to_le_bytes());
        b[33..41].copy_from_slice(&self.b.to_le_bytes());
        b[41..49].copy_from_slice(&self.c.to_le_bytes());
        b[49] = self.role;
        b[50] = self.root;
        b[51..55].copy_from_slice(&self.file.to_le_bytes());
        out.write_all(&b)
    }

    fn read_from(input: &mut impl std::io::Read) -> std::io::Result<Option<Self>> {
        let mut b = [0u8; FACT_BYTES];
        if !super::extsort::read_head(input, &mut b)? {
            return Ok(None);
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Ok(Some(FactRecord {
            ids: [u64_at(0), u64_at(8), u64_at(16)],
            kind: b[24],
            a: u64_at(25),
            b: u64_at(33),
            c: u64_at(41),
            role: b[49],
            root: b[50],
            file: u32::from_le_bytes(b[51..55].try_into().expect("4 bytes")),
        }))
    }
}

/// Facts per batch sent to the sorting thread.
const FACT_BATCH: usize = 4096;

/// The external sort of the facts, on a thread of its own: building, sorting and spilling them is
/// a third of what merge does per span, and the reading thread has enough to do.
struct FactSorter {
    batch: Vec<Fact>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<Fact>>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<ExtSorter<FactRecord>>>>,
}

impl FactSorter {
    fn start(mut sorter: ExtSorter<FactRecord>) -> Self {
        // Two batches in flight at most: bounded memory.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Fact>>(2);
        let thread = std::thread::spawn(move || {
            for batch in rx {
                for fact in batch {
                    fact.records(|r| sorter.push(r))?;
                }
            }
            Ok(sorter)
        });
        FactSorter {
            batch: Vec::with_capacity(FACT_BATCH),
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn push(&mut self, fact: Fact) -> anyhow::Result<()> {
        self.batch.push(fact);
        if self.batch.len() >= FACT_BATCH {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> anyhow::Result<()> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(FACT_BATCH));
        let tx = self.tx.as_ref().expect("open until finish");
        if tx.send(batch).is_err() {
            // The thread stopped on an error (a spill failed): report it.
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("internal: the fact sorting thread stopped")));
        }
        Ok(())
    }

    fn join(&mut self) -> anyhow::Result<ExtSorter<FactRecord>> {
        self.tx = None;
        super::join_worker(self.thread.take(), "fact sorting")
    }

    /// Every fact pushed, in the external sorter.
    fn finish(mut self) -> anyhow::Result<ExtSorter<FactRecord>> {
        if !self.batch.is_empty() {
            self.send()?;
        }
        self.join()
    }
}

impl Drop for FactSorter {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

/// What repairing needs besides the facts.
struct Kept {
    steps: BTreeMap<Ids, Record>,
    file_resources: Vec<Option<Resource>>,
    file_process: Vec<Option<Ids>>,
}

/// What the facts say, and what `--repair` adds.
#[derive(Debug, Default)]
pub struct Analysis {
    /// Extra copies of a span id (identical or not).
    pub duplicates: u64,
    /// Extra copies whose content differs from the first.
    pub conflicts: u64,
    /// Spans whose parent is not in the input.
    pub orphans: u64,
    /// `trace/span` of the first conflicting ids, for the warning.
    pub conflict_examples: Vec<String>,
    /// Placeholders for missing parents, and stretched step roots (repair only).
    pub added: Vec<ResourceSpans>,
    pub synthesized: u64,
    pub stretched: u64,
    /// Ids of spans replaced by a version in `added`: drop them from the stream.
    pub replaced: HashSet<Ids>,
}

/// The facts about one span id.
struct Group {
    ids: Ids,
    /// `ids` as the facts sort them.
    key: [u64; 3],
    present: u64,
    hashes: Vec<u64>,
    start: u64,
    end: u64,
    role: u8,
    parentless: bool,
    children: u64,
    child_start: u64,
    child_end: u64,
    child_is_process: bool,
    first_child_file: u32,
}

impl Group {
    fn new(first: &FactRecord) -> Self {
        Group {
            ids: first.ids(),
            key: first.ids,
            present: 0,
            hashes: Vec::new(),
            start: u64::MAX,
            end: 0,
            role: 0,
            parentless: false,
            children: 0,
            child_start: u64::MAX,
            child_end: 0,
            child_is_process: false,
            first_child_file: 0,
        }
    }

    fn add(&mut self, fact: &FactRecord) {
        if fact.kind == PRESENT {
            self.present += 1;
            if !self.hashes.contains(&fact.a) {
                self.hashes.push(fact.a);
            }
            self.start = self.start.min(fact.b);
            self.end = self.end.max(fact.c);
            self.role = self.role.max(fact.role);
            self.parentless |= fact.root == 1;
        } else {
            // CHILD facts come sorted by start time, so the first is the earliest child.
            if self.children == 0 {
                self.first_child_file = fact.file;
            }
            self.children += 1;
            self.child_start = self.child_start.min(fact.a);
            self.child_end = self.child_end.max(fact.b);
            self.child_is_process |= fact.role == Role::Process as u8;
        }
    }
}

struct Missing {
    span_id: [u8; 8],
    start: u64,
    end: u64,
    file: u32,
    step_like: bool,
}

#[derive(Default)]
struct TraceState {
    trace_id: [u8; 16],
    start: u64,
    end: u64,
    missing: Vec<Missing>,
    /// Real spans without a parent: (span id, duration, is the step root).
    roots: Vec<([u8; 8], u64, bool)>,
    steps: Vec<Ids>,
}

impl TraceState {
    fn new(ids: &Ids) -> Self {
        TraceState {
            trace_id: ids[..16].try_into().expect("16 bytes"),
            start: u64::MAX,
            end: 0,
            ..Default::default()
        }
    }

    fn add(&mut self, g: Group, out: &mut Analysis) {
        if g.present > 0 {
            out.duplicates += g.present - 1;
            let extra_versions = g.hashes.len() as u64 - 1;
            if extra_versions > 0 {
                out.conflicts += extra_versions;
                if out.conflict_examples.len() < 10 {
                    out.conflict_examples.push(format!(
                        "{}/{}",
                        crate::ids::hex(&g.ids[..16]),
                        crate::ids::hex(&g.ids[16..])
                    ));
                }
            }
            self.start = self.start.min(g.start);
            self.end = self.end.max(g.end);
            let span_id: [u8; 8] = g.ids[16..].try_into().expect("8 bytes");
            if g.parentless {
                let is_step = g.role == Role::Step as u8;
                self.roots
                    .push((span_id, g.end.saturating_sub(g.start), is_step));
            }
            if g.role == Role::Step as u8 {
                self.steps.push(g.ids);
            }
        } else if g.children > 0 {
            out.orphans += g.children;
            self.missing.push(Missing {
                span_id: g.ids[16..].try_into().expect("8 bytes"),
                start: g.child_start,
                end: g.child_end,
                file: g.first_child_file,
                step_like: g.child_is_process,
            });
        }
    }
}

/// At the end of a trace's facts: choose the trace's root, make the placeholders, stretch the
/// step root.
fn finish_trace(
    trace: &mut TraceState,
    facts: &Kept,
    repair: bool,
    out: &mut Analysis,
) -> anyhow::Result<()> {
    if !repair || trace.start == u64::MAX && trace.missing.is_empty() {
        return Ok(());
    }
    let whole = (
        trace.start.min(
            trace
                .missing
                .iter()
                .map(|m| m.start)
                .min()
                .unwrap_or(u64::MAX),
        ),
        trace
            .end
            .max(trace.missing.iter().map(|m| m.end).max().unwrap_or(0)),
    );
    // The tree's root: a missing step root (its children are process spans), else the real step
    // root, else the longest real root, else the earliest placeholder.
    let main: Option<[u8; 8]> = trace
        .missing
        .iter()
        .find(|m| m.step_like)
        .map(|m| m.span_id)
        .or_else(|| trace.roots.iter().find(|r| r.2).map(|r| r.0))
        .or_else(|| trace.roots.iter().max_by_key(|r| (r.1, r.0)).map(|r| r.0))
        .or_else(|| {
            trace
                .missing
                .iter()
                .min_by_key(|m| (m.start, m.span_id))
                .map(|m| m.span_id)
        });
    for m in &trace.missing {
        // Under the process span of the rank it was found in, when that exists (a child's span
        // that never ended), else under the trace's root.
        let rank_process = facts
            .file_process
            .get(m.file as usize)
            .copied()
            .flatten()
            .filter(|ids| ids[..16] == trace.trace_id && !m.step_like)
            .map(|ids| <[u8; 8]>::try_from(&ids[16..]).expect("8 bytes"));
        let parent = rank_process.or(main).filter(|p| *p != m.span_id);
        // The tree's root covers the whole trace, as a step root covers all ranks.
        let (start, end) = if m.step_like || main == Some(m.span_id) {
            whole
        } else {
            (m.start, m.end)
        };
        let resource = facts.file_resources.get(m.file as usize).cloned().flatten();
        out.added
            .push(placeholder(trace.trace_id, m, parent, start, end, resource));
        out.synthesized += 1;
    }
    for step in &trace.steps {
        let Some(record) = facts.steps.get(step) else {
            continue;
        };
        // Kept as read (a line or its protobuf, never rendered ahead: see read_ahead.rs), so it
        // decodes; if it does not, the step root would silently stay unstretched.
        let mut rs = record.decode()?;
        let Some(span) = rs
            .scope_spans
            .first_mut()
            .and_then(|ss| ss.spans.first_mut())
        else {
            continue;
        };
        if span.start_time_unix_nano > whole.0 || span.end_time_unix_nano < whole.1 {
            span.start_time_unix_nano = span.start_time_unix_nano.min(whole.0);
            span.end_time_unix_nano = span.end_time_unix_nano.max(whole.1);
            out.stretched += 1;
            out.replaced.insert(*step);
            out.added.push(rs);
        }
    }
    Ok(())
}

fn placeholder(
    trace_id: [u8; 16],
    m: &Missing,
    parent: Option<[u8; 8]>,
    start: u64,
    end: u64,
    resource: Option<Resource>,
) -> ResourceSpans {
    let mut attributes = vec![attr::boolean(SYNTHETIC, true)];
    if m.step_like {
        attributes.push(attr::string(semconv::SPAN_ROLE, semconv::ROLE_STEP));
    }
    let span = Span {
        trace_id: trace_id.to_vec(),
        span_id: m.span_id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: if m.step_like {
            "step (missing, synthesized)".into()
        } else {
            "missing parent (synthesized)".into()
        },
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        status: Some(Status {
            code: StatusCode::Error as i32,
            message: "never ended".into(),
        }),
        ..Default::default()
    };
    ResourceSpans {
        resource,
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: semconv::SCOPE_NAME.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            spans: vec![span],
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Facts with few distinct values, so that ids, kinds and fields tie often.
    fn random_fact(rng: &mut rand::rngs::StdRng) -> FactRecord {
        let mut small = || rng.random_range(0..3u64);
        let ids = [small() << 56, small(), small() << 8];
        let kind = rng.random_range(0..2u8);
        FactRecord {
            ids,
            kind,
            a: rng.random_range(0..3),
            b: rng.random_range(0..3) << 40,
            c: if kind == CHILD {
                0
            } else {
                rng.random_range(0..3)
            },
            role: rng.random_range(0..3),
            root: if kind == CHILD {
                0
            } else {
                rng.random_range(0..2)
            },
            file: rng.random_range(0..3),
        }
    }

    /// The layout facts had as `Record`s (ids, then tagged big-endian data), and the file: facts
    /// must sort as those did, so the analysis (which child comes first) is unchanged.
    fn as_bytes(f: &FactRecord) -> (Ids, Vec<u8>, u32) {
        let mut data = vec![f.kind];
        if f.kind == PRESENT {
            for v in [f.a, f.b, f.c] {
                data.extend_from_slice(&v.to_be_bytes());
            }
            data.extend_from_slice(&[f.role, f.root]);
        } else {
            for v in [f.a, f.b] {
                data.extend_from_slice(&v.to_be_bytes());
            }
            data.push(f.role);
        }
        (f.ids(), data, f.file)
    }

    #[test]
    fn facts_sort_as_their_bytes_did() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let (x, y) = (random_fact(&mut rng), random_fact(&mut rng));
            assert_eq!(x.cmp(&y), as_bytes(&x).cmp(&as_bytes(&y)), "{x:?} {y:?}");
            assert_eq!(FactRecord::key(&x.ids()), x.ids);
        }
    }

    #[test]
    fn facts_read_back_as_written_and_a_cut_one_is_an_error() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let facts: Vec<FactRecord> = (0..100).map(|_| random_fact(&mut rng)).collect();
        let mut bytes = Vec::new();
        for f in &facts {
            f.write_to(&mut bytes).unwrap();
        }
        assert_eq!(bytes.len(), facts.len() * FACT_BYTES);
        let mut input = &bytes[..];
        let mut back = Vec::new();
        while let Some(f) = FactRecord::read_from(&mut input).unwrap() {
            back.push(f);
        }
        assert_eq!(back, facts);
        let mut cut = &bytes[..FACT_BYTES + 10];
        assert!(FactRecord::read_from(&mut cut).unwrap().is_some());
        assert!(FactRecord::read_from(&mut cut).is_err());
    }

    /// Counts and repairs are the same whether the facts fit in memory or spill in many runs.
    #[test]
    fn spilled_facts_analyse_as_facts_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        // Spans of 3 traces with ids from a small range: duplicates, conflicts and orphans.
        let spans: Vec<(Ids, u64, SpanFacts, u32)> = (0..3000)
            .map(|i| {
                let trace = [rng.random_range(1..4u8); 16];
                let span = rng.random_range(1..400u64).to_be_bytes();
                let parent = rng.random_range(0..400u64);
                let start = rng.random_range(1..1000u64);
                let facts = SpanFacts {
                    start,
                    end: start + rng.random_range(0..100),
                    role: Role::Other,
                    parent: (parent > 0).then(|| parent.to_be_bytes()),
                };
                (ids(&trace, &span), rng.random_range(0..2), facts, i % 5)
            })
            .collect();
        let analyse = |budget: usize, repair: bool| {
            let mut facts = Facts::new(budget, dir.path().to_path_buf(), 2, 5);
            for (ids, hash, span, file) in &spans {
                let record = Record {
                    time: 0,
                    ids: *ids,
                    hash: *hash,
                    data: Vec::new().into(),
                    file: *file,
                };
                facts.add(span, &record, Resource::default).unwrap();
            }
            facts.analyse(repair).unwrap()
        };
        for repair in [false, true] {
            let (memory, spilled) = (analyse(1 << 30, repair), analyse(4096, repair));
            let counts = |a: &Analysis| {
                let mut added: Vec<Vec<u8>> =
                    a.added.iter().map(prost::Message::encode_to_vec).collect();
                added.sort();
                (a.duplicates, a.conflicts, a.orphans, a.synthesized, added)
            };
            assert!(memory.duplicates > 0 && memory.conflicts > 0 && memory.orphans > 0);
            assert_eq!(memory.synthesized > 0, repair);
            assert_eq!(counts(&memory), counts(&spilled), "repair {repair}");
        }
    }
}
