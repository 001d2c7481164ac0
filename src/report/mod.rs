//! `otel-run report`: one self-contained HTML file that shows a job — a per-rank timeline, where
//! the time went, which rank held everyone up, and the job's facts — opened offline from `file://`.
//!
//! Spans are read once (through the shared input reader) into one compact record per span; at
//! the end they are grouped into rows (the step root on top, then one row per rank grouped by
//! host), sorted by start, given their depth inside the row, and written as the columnar JSON
//! model (ARCHITECTURE.md §16; its fields are documented on `Page` and `RowOut` below) inside
//! report.html next to report.js and report.css (embedded at build time). Memory is ~100 bytes
//! per span plus the interned strings: the whole job has to fit into the page anyway.

use crate::cli::{InputArgs, ReportArgs};
use crate::input::{self, Counts};
use crate::{attr, ids, semconv};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span, TracesData};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;

const TEMPLATE: &str = include_str!("report.html");
const SCRIPT: &str = include_str!("report.js");
const STYLE: &str = include_str!("report.css");

/// Phases that get a per-rank bar chart: the ones that lost the most time to imbalance.
const BAR_PHASES: usize = 6;
/// Lanes (bar levels) per row at most.
const MAX_LANES: u32 = 32;
/// Longest attribute value shown in a tooltip; longer ones are cut (and say so).
const MAX_VALUE_CHARS: usize = 240;

pub fn main(args: ReportArgs) -> anyhow::Result<()> {
    let budget = args.attribute_budget.saturating_mul(1024 * 1024) as usize;
    let mut model = Model::new(budget);
    let counts = read_spans(&args.input, |data| model.add(data))?;
    let title = args.title.clone().unwrap_or_else(|| model.default_title());
    let doc = model.finish(&counts);
    match write_html(args.output.as_deref(), &title, &doc) {
        Ok(bytes) => {
            if tracing::enabled!(tracing::Level::WARN) {
                eprintln!(
                    "otel-run report: files={} spans={} ranks={} bytes={}",
                    counts.files,
                    counts.spans,
                    doc.facts["ranks"].as_u64().unwrap_or(0),
                    bytes
                );
            }
            Ok(())
        }
        // A closed pipe (`| head`) is the reader's choice, not an error worth a message.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The only place that knows how spans are read: the same inputs, reader, bad-line rules and
/// error classes as `summary` and `merge` (an input that does not exist is a usage error).
/// Returns the exact counts.
fn read_spans(args: &InputArgs, mut each: impl FnMut(&TracesData)) -> anyhow::Result<Counts> {
    let inputs = input::expand(&args.inputs)?;
    let mut counts = Counts::default();
    input::read_all(&inputs, args.skip_invalid, &mut counts, |_, _, data| {
        each(&data);
        Ok(())
    })?;
    Ok(counts)
}

/// Where a span is drawn.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum RowKey {
    /// otel-run's step root (rank 0 writes it for every rank): on top of everything.
    Step,
    Rank(i64),
    /// Spans whose resource names no rank, one row per host.
    NoRank(String),
}

/// One span, reduced to what the page shows.
struct Rec {
    start: u64,
    end: u64,
    trace: u128,
    /// 0 = no parent.
    parent: u64,
    name: u32,
    row: u32,
    /// 0 unset, 1 ok, 2 error.
    status: u8,
    /// Index into the string table; u32::MAX = none.
    message: u32,
    attrs: u32,
    /// Range in `Model::events`.
    events: (u32, u32),
}

struct Event {
    time: u64,
    name: u32,
    attrs: u32,
    signal: bool,
}

/// What the process span (and a later exit span) of a rank says.
#[derive(Default, Clone)]
struct RankFacts {
    host: String,
    wall: Option<u64>,
    exit: Option<String>,
    error: bool,
    cpu_user: Option<f64>,
    cpu_system: Option<f64>,
    max_rss: Option<i64>,
    spans: u64,
}

#[derive(Default)]
struct NameStats {
    count: u64,
    total: u64,
    max: u64,
    per_rank: BTreeMap<i64, u64>,
}

#[derive(Default)]
struct Interner {
    map: HashMap<String, u32>,
    list: Vec<String>,
    bytes: usize,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.map.get(s) {
            return id;
        }
        let id = self.list.len() as u32;
        self.bytes += s.len();
        self.list.push(s.to_string());
        self.map.insert(s.to_string(), id);
        id
    }
}

const NONE: u32 = u32::MAX;

pub struct Model {
    recs: Vec<Rec>,
    events: Vec<Event>,
    seen: HashMap<(u128, u64), u32>,
    duplicates: u64,
    rows: BTreeMap<RowKey, u32>,
    row_keys: Vec<RowKey>,
    names: Interner,
    strings: Interner,
    stats: HashMap<u32, NameStats>,
    ranks: BTreeMap<i64, RankFacts>,
    /// Resource facts of the job: key → value → spans.
    facts: BTreeMap<&'static str, BTreeMap<String, u64>>,
    hosts: BTreeSet<String>,
    attr_budget: usize,
    attrs_omitted: u64,
    step_key: Option<String>,
}

/// Resource attributes summarised in the job facts.
const FACT_KEYS: [&str; 6] = [
    semconv::LAUNCHER,
    semconv::SLURM_JOB_ID,
    semconv::SLURM_STEP_ID,
    semconv::SLURM_CLUSTER_NAME,
    semconv::SERVICE_NAME,
    semconv::MPI_SIZE,
];

impl Model {
    pub fn new(attr_budget: usize) -> Model {
        Model {
            recs: Vec::new(),
            events: Vec::new(),
            seen: HashMap::new(),
            duplicates: 0,
            rows: BTreeMap::new(),
            row_keys: Vec::new(),
            names: Interner::default(),
            strings: Interner::default(),
            stats: HashMap::new(),
            ranks: BTreeMap::new(),
            facts: BTreeMap::new(),
            hosts: BTreeSet::new(),
            attr_budget,
            attrs_omitted: 0,
            step_key: None,
        }
    }

    fn row(&mut self, key: RowKey) -> u32 {
        if let Some(&r) = self.rows.get(&key) {
            return r;
        }
        let r = self.row_keys.len() as u32;
        self.row_keys.push(key.clone());
        self.rows.insert(key, r);
        r
    }

    /// Interns an attribute text unless the budget is spent; `must` texts (otel-run's own spans,
    /// errors, signals) are always kept.
    fn attr_text(&mut self, attrs: &[KeyValue], must: bool) -> u32 {
        if attrs.is_empty() {
            return NONE;
        }
        let text = attributes_text(attrs);
        if !must
            && !self.strings.map.contains_key(&text)
            && self.strings.bytes + text.len() > self.attr_budget
        {
            self.attrs_omitted += 1;
            return NONE;
        }
        self.strings.id(&text)
    }

    pub fn add(&mut self, data: &TracesData) {
        for rs in &data.resource_spans {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| &r.attributes[..])
                .unwrap_or(&[]);
            let rank = attr::get_int(resource, semconv::MPI_RANK);
            let host = attr::get_str(resource, semconv::HOST_NAME)
                .unwrap_or("")
                .to_string();
            let spans: usize = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
            if spans > 0 {
                for key in FACT_KEYS {
                    if let Some(v) = attr::get(resource, key) {
                        *self
                            .facts
                            .entry(key)
                            .or_default()
                            .entry(value_text(v))
                            .or_default() += spans as u64;
                    }
                }
                if !host.is_empty() {
                    self.hosts.insert(host.clone());
                }
            }
            for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                self.add_span(span, rank, &host);
            }
        }
    }

    fn add_span(&mut self, span: &Span, rank: Option<i64>, host: &str) {
        let trace = u128::from_be_bytes(fixed(&span.trace_id));
        let id = u64::from_be_bytes(fixed(&span.span_id));
        match self.seen.entry((trace, id)) {
            // Two copies of one span (a file given twice, a replayed spill file): draw it once.
            std::collections::hash_map::Entry::Occupied(_) => {
                self.duplicates += 1;
                return;
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(self.recs.len() as u32);
            }
        }
        let role = attr::get_str(&span.attributes, semconv::SPAN_ROLE);
        let key = match (role, rank) {
            (Some(semconv::ROLE_STEP), _) => RowKey::Step,
            (_, Some(r)) => RowKey::Rank(r),
            (_, None) => RowKey::NoRank(host.to_string()),
        };
        if role == Some(semconv::ROLE_STEP) && self.step_key.is_none() {
            self.step_key = attr::get_str(&span.attributes, semconv::JOB_KEY).map(String::from);
        }
        let row = self.row(key);
        let name = self.names.id(&span.name);
        let (status, message) = match &span.status {
            Some(s) if s.code == StatusCode::Error as i32 => (2, s.message.as_str()),
            Some(s) if s.code == StatusCode::Ok as i32 => (1, s.message.as_str()),
            _ => (0, ""),
        };
        let message = if message.is_empty() {
            NONE
        } else {
            self.strings.id(&cut(message))
        };
        let must = role.is_some() || status == 2;
        let attrs = self.attr_text(&span.attributes, must);
        let first_event = self.events.len() as u32;
        for e in &span.events {
            let signal = attr::get(&e.attributes, semconv::SIGNAL_NUMBER).is_some()
                || e.name.starts_with("SIG");
            let name = self.strings.id(&e.name);
            let attrs = self.attr_text(&e.attributes, must || signal);
            self.events.push(Event {
                time: e.time_unix_nano,
                name,
                attrs,
                signal,
            });
        }
        let duration = span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano);
        let stats = self.stats.entry(name).or_default();
        stats.count += 1;
        stats.total += duration;
        stats.max = stats.max.max(duration);
        if let Some(rank) = rank {
            *stats.per_rank.entry(rank).or_default() += duration;
            let facts = self.ranks.entry(rank).or_default();
            facts.spans += 1;
            if facts.host.is_empty() {
                facts.host = host.to_string();
            }
            match role {
                Some(semconv::ROLE_PROCESS) if facts.wall.is_none_or(|w| w < duration) => {
                    facts.wall = Some(duration);
                    facts.error = status == 2;
                    process_facts(facts, &span.attributes);
                }
                // The program's real end, written after a provisional process span.
                Some(semconv::ROLE_EXIT) => {
                    facts.error |= status == 2;
                    process_facts(facts, &span.attributes);
                }
                _ => {}
            }
        }
        self.recs.push(Rec {
            start: span.start_time_unix_nano,
            end: span.end_time_unix_nano.max(span.start_time_unix_nano),
            trace,
            parent: u64::from_be_bytes(fixed(&span.parent_span_id)),
            name,
            row,
            status,
            message,
            attrs,
            events: (first_event, self.events.len() as u32),
        });
    }

    fn default_title(&self) -> String {
        let one = |k: &str| {
            self.facts
                .get(k)
                .and_then(|m| m.iter().max_by_key(|(_, n)| **n))
                .map(|(v, _)| v.clone())
        };
        let mut t = String::from("otel-run report");
        if let Some(s) = one(semconv::SERVICE_NAME) {
            t.push_str(&format!(": {s}"));
        }
        if let Some(j) = one(semconv::SLURM_JOB_ID) {
            t.push_str(&format!(", job {j}"));
            if let Some(s) = one(semconv::SLURM_STEP_ID) {
                t.push_str(&format!(".{s}"));
            }
        }
        t
    }

    /// The page's model (ARCHITECTURE.md §16; every field is documented below).
    pub fn finish(mut self, counts: &Counts) -> Page {
        let t0 = self.recs.iter().map(|r| r.start).min().unwrap_or(0);
        let t_end = self.recs.iter().map(|r| r.end).max().unwrap_or(0);
        let us = |t: u64| (t.saturating_sub(t0) + 500) / 1000;

        // Parents by id; a span whose parent is in another row starts that row's depth 0.
        let index: HashMap<(u128, u64), u32> = self.seen;
        let parent_of: Vec<Option<u32>> = self
            .recs
            .iter()
            .map(|r| {
                (r.parent != 0)
                    .then(|| index.get(&(r.trace, r.parent)).copied())
                    .flatten()
            })
            .collect();
        let orphans = self
            .recs
            .iter()
            .zip(&parent_of)
            .filter(|(r, p)| r.parent != 0 && p.is_none())
            .count();
        let depth = depths(&self.recs, &parent_of);

        // Row order: step root, then hosts (by their lowest rank), ranks ascending; rank-less
        // rows last.
        let mut order: Vec<u32> = (0..self.row_keys.len() as u32).collect();
        let host_of = |k: &RowKey| match k {
            RowKey::Rank(r) => self
                .ranks
                .get(r)
                .map(|f| f.host.clone())
                .unwrap_or_default(),
            RowKey::NoRank(h) => h.clone(),
            RowKey::Step => String::new(),
        };
        let mut host_first: HashMap<String, i64> = HashMap::new();
        for k in &self.row_keys {
            if let RowKey::Rank(r) = k {
                let e = host_first.entry(host_of(k)).or_insert(*r);
                *e = (*e).min(*r);
            }
        }
        order.sort_by_key(|&i| {
            let k = &self.row_keys[i as usize];
            let class = match k {
                RowKey::Step => 0,
                RowKey::Rank(_) => 1,
                RowKey::NoRank(_) => 2,
            };
            let host = host_of(k);
            (
                class,
                host_first.get(&host).copied().unwrap_or(i64::MAX),
                host,
                k.clone(),
            )
        });

        let mut by_row: Vec<Vec<u32>> = vec![Vec::new(); self.row_keys.len()];
        for (i, r) in self.recs.iter().enumerate() {
            by_row[r.row as usize].push(i as u32);
        }
        let mut strings = self.strings;
        let mut rows = Vec::new();
        for &row in &order {
            let spans = &mut by_row[row as usize];
            // Start order; at equal starts the longer (the parent) first.
            spans.sort_by_key(|&i| {
                let r = &self.recs[i as usize];
                (r.start, std::cmp::Reverse(r.end), depth[i as usize])
            });
            let key = &self.row_keys[row as usize];
            let (label, rank, host) = match key {
                RowKey::Step => ("step".to_string(), None, String::new()),
                RowKey::Rank(r) => (format!("rank {r}"), Some(*r), host_of(key)),
                RowKey::NoRank(h) => (
                    if h.is_empty() {
                        "no rank".to_string()
                    } else {
                        format!("no rank ({h})")
                    },
                    None,
                    h.clone(),
                ),
            };
            let lane = lanes(&self.recs, &parent_of, spans);
            let mut s = Vec::with_capacity(spans.len());
            let mut d = Vec::with_capacity(spans.len());
            let mut z = Vec::with_capacity(spans.len());
            let mut n = Vec::with_capacity(spans.len());
            let mut st = Vec::new();
            let mut a = Vec::new();
            let mut ev = Vec::new();
            let mut prev = 0;
            for (k, &i) in spans.iter().enumerate() {
                let r = &self.recs[i as usize];
                let start = us(r.start);
                s.push(start - prev);
                prev = start;
                d.push(us(r.end) - start);
                z.push(lane[k]);
                n.push(r.name);
                // The page reads -1 as "none".
                let id = |x: u32| if x == NONE { -1 } else { x as i64 };
                if r.status != 0 {
                    st.extend([k as i64, r.status as i64, id(r.message)]);
                }
                if r.attrs != NONE {
                    a.extend([k as i64, r.attrs as i64]);
                }
                for e in &self.events[r.events.0 as usize..r.events.1 as usize] {
                    ev.extend([
                        k as i64,
                        us(e.time) as i64,
                        e.name as i64,
                        id(e.attrs),
                        e.signal as i64,
                    ]);
                }
            }
            rows.push(RowOut {
                label,
                rank,
                host,
                s,
                d,
                z,
                n,
                st,
                a,
                ev,
            });
        }

        // Where the time went: per name, sorted by the time the slowest rank cost the others.
        let mut table: Vec<(u32, &NameStats, Option<Spread>)> =
            self.stats.iter().map(|(n, s)| (*n, s, spread(s))).collect();
        table.sort_by(|a, b| {
            let lost = |x: &Option<Spread>| x.as_ref().map_or(0, |s| s.max - s.mean);
            lost(&b.2)
                .cmp(&lost(&a.2))
                .then(b.1.total.cmp(&a.1.total))
                .then(self.names.list[a.0 as usize].cmp(&self.names.list[b.0 as usize]))
        });
        let rank_list: Vec<i64> = self.ranks.keys().copied().collect();
        let table_json: Vec<Json> = table
            .iter()
            .map(|(n, s, sp)| {
                let mut v = json!({
                    "name": n, "count": s.count, "total": s.total,
                    "mean": s.total / s.count.max(1), "max": s.max,
                });
                if let Some(sp) = sp {
                    v["ranks"] = sp.ranks.into();
                    v["rmin"] = sp.min.into();
                    v["rmean"] = sp.mean.into();
                    v["rmax"] = sp.max.into();
                    v["rmax_rank"] = sp.max_rank.into();
                    v["imbalance"] = sp.imbalance.into();
                    v["lost"] = (sp.max - sp.mean).into();
                }
                v
            })
            .collect();
        let bars: Vec<Json> = table
            .iter()
            .filter(|(_, _, sp)| sp.as_ref().is_some_and(|s| s.ranks > 1))
            .take(BAR_PHASES)
            .map(|(n, s, _)| {
                let per: Vec<u64> = rank_list
                    .iter()
                    .map(|r| s.per_rank.get(r).copied().unwrap_or(0))
                    .collect();
                json!({"name": n, "per_rank": per})
            })
            .collect();

        let ranks: Vec<Json> = self
            .ranks
            .iter()
            .map(|(r, f)| {
                json!({
                    "rank": r, "host": f.host, "wall": f.wall, "exit": f.exit,
                    "error": f.error, "cpu_user": f.cpu_user, "cpu_system": f.cpu_system,
                    "max_rss": f.max_rss, "spans": f.spans,
                })
            })
            .collect();
        let mut exits: BTreeMap<String, u64> = BTreeMap::new();
        for f in self.ranks.values() {
            let e = f
                .exit
                .clone()
                .unwrap_or_else(|| "no process span".to_string());
            *exits.entry(e).or_default() += 1;
        }
        let fact = |k: &str| -> Json {
            self.facts
                .get(k)
                .map(|m| json!(m.keys().collect::<Vec<_>>()))
                .unwrap_or(json!([]))
        };
        let traces: BTreeSet<u128> = self.recs.iter().map(|r| r.trace).collect();
        let facts = json!({
            "launcher": fact(semconv::LAUNCHER),
            "job": fact(semconv::SLURM_JOB_ID),
            "step": fact(semconv::SLURM_STEP_ID),
            "cluster": fact(semconv::SLURM_CLUSTER_NAME),
            "service": fact(semconv::SERVICE_NAME),
            "size": fact(semconv::MPI_SIZE),
            "job_key": self.step_key,
            "traces": traces.iter().take(8).map(|t| ids::hex(&t.to_be_bytes())).collect::<Vec<_>>(),
            "trace_count": traces.len(),
            "ranks": self.ranks.len(),
            "hosts": self.hosts.iter().collect::<Vec<_>>(),
            "start_unix_nano": t0.to_string(),
            "wall": t_end.saturating_sub(t0),
            "exits": exits,
            "files": counts.files,
            "lines": counts.lines,
            "spans_read": counts.spans,
            "spans": self.recs.len(),
            "duplicates": self.duplicates,
            "orphans": orphans,
            "torn": counts.torn,
            "invalid": counts.invalid,
            "attrs_omitted": self.attrs_omitted,
        });
        Page {
            version: 1,
            unit: "us",
            names: std::mem::take(&mut self.names.list),
            strings: std::mem::take(&mut strings.list),
            facts,
            rank_list,
            rank_facts: ranks,
            rows,
            table: table_json,
            bars,
        }
    }
}

/// The page's model, serialised straight from its columns (no JSON tree of a million spans).
#[derive(serde::Serialize)]
pub struct Page {
    version: u32,
    unit: &'static str,
    names: Vec<String>,
    strings: Vec<String>,
    facts: Json,
    rank_list: Vec<i64>,
    rank_facts: Vec<Json>,
    rows: Vec<RowOut>,
    table: Vec<Json>,
    bars: Vec<Json>,
}

/// One timeline row's columns (ARCHITECTURE.md §16).
#[derive(serde::Serialize)]
struct RowOut {
    label: String,
    rank: Option<i64>,
    host: String,
    s: Vec<u64>,
    d: Vec<u64>,
    z: Vec<u32>,
    n: Vec<u32>,
    st: Vec<i64>,
    a: Vec<i64>,
    ev: Vec<i64>,
}

fn process_facts(f: &mut RankFacts, attrs: &[KeyValue]) {
    let exit = match (
        attr::get_str(attrs, semconv::PROCESS_EXIT_SIGNAL_NAME),
        attr::get_int(attrs, semconv::PROCESS_EXIT_CODE),
    ) {
        (Some(signal), _) => Some(signal.to_string()),
        (None, Some(code)) => Some(code.to_string()),
        (None, None) => None,
    };
    if exit.is_some() {
        f.exit = exit;
    }
    let double = |k| match attr::get(attrs, k) {
        Some(Value::DoubleValue(d)) => Some(*d),
        Some(Value::IntValue(i)) => Some(*i as f64),
        _ => None,
    };
    f.cpu_user = double(semconv::PROCESS_CPU_USER).or(f.cpu_user);
    f.cpu_system = double(semconv::PROCESS_CPU_SYSTEM).or(f.cpu_system);
    f.max_rss = attr::get_int(attrs, semconv::PROCESS_MAX_RSS).or(f.max_rss);
}

struct Spread {
    ranks: usize,
    min: u64,
    mean: u64,
    max: u64,
    max_rank: i64,
    imbalance: f64,
}

/// Across-rank figures of one name, as `summary` computes them.
fn spread(s: &NameStats) -> Option<Spread> {
    let n = s.per_rank.len() as u128;
    if n == 0 {
        return None;
    }
    let sum: u128 = s.per_rank.values().map(|t| *t as u128).sum();
    let (max_rank, max) = s
        .per_rank
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(r, t)| (*r, *t))?;
    Some(Spread {
        ranks: s.per_rank.len(),
        min: *s.per_rank.values().min()?,
        mean: (sum / n) as u64,
        max,
        max_rank,
        imbalance: if sum == 0 {
            1.0
        } else {
            max as f64 * n as f64 / sum as f64
        },
    })
}

/// Lanes of one row's spans (given in start order, parents first): the first lane below the
/// parent's (or from the top, for a span whose parent is elsewhere) that is free at the span's
/// start, so overlapping siblings (threads, async work) sit side by side instead of hiding each
/// other. At most `MAX_LANES`; beyond that spans share the last lane.
fn lanes(recs: &[Rec], parent_of: &[Option<u32>], spans: &[u32]) -> Vec<u32> {
    let mut lane_of: HashMap<u32, u32> = HashMap::with_capacity(spans.len());
    let mut lane_end: Vec<u64> = Vec::new();
    let mut out = Vec::with_capacity(spans.len());
    for &i in spans {
        let r = &recs[i as usize];
        let first = match parent_of[i as usize] {
            Some(p) if recs[p as usize].row == r.row => {
                lane_of.get(&p).map_or(0, |l| (l + 1).min(MAX_LANES - 1))
            }
            _ => 0,
        };
        let mut l = first as usize;
        while l < lane_end.len() && lane_end[l] > r.start && l < MAX_LANES as usize - 1 {
            l += 1;
        }
        if l >= lane_end.len() {
            lane_end.resize(l + 1, 0);
        }
        lane_end[l] = lane_end[l].max(r.end);
        lane_of.insert(i, l as u32);
        out.push(l as u32);
    }
    out
}

/// Depth of every span inside its row: 0 when its parent is missing or in another row (the
/// step root, another rank), else its parent's + 1. Iterative; a walk longer than `MAX_WALK`
/// (a parent cycle in bad data) stops there instead of looping.
fn depths(recs: &[Rec], parent_of: &[Option<u32>]) -> Vec<u32> {
    const UNKNOWN: u32 = u32::MAX;
    const MAX_WALK: usize = 1024;
    let mut depth = vec![UNKNOWN; recs.len()];
    let mut chain = Vec::new();
    for i in 0..recs.len() {
        let mut j = i;
        chain.clear();
        let known = loop {
            if depth[j] != UNKNOWN {
                break Some(depth[j]);
            }
            chain.push(j);
            match parent_of[j] {
                Some(p) if recs[p as usize].row == recs[j].row && chain.len() < MAX_WALK => {
                    j = p as usize
                }
                _ => break None,
            }
        };
        // `chain` runs from span i up to the highest span without a known depth.
        let mut d = match known {
            Some(parent_depth) => parent_depth + 1,
            None => 0,
        };
        while let Some(k) = chain.pop() {
            depth[k] = d;
            d += 1;
        }
    }
    depth
}

fn fixed<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = b.len().min(N);
    out[N - n..].copy_from_slice(&b[b.len() - n..]);
    out
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX_VALUE_CHARS).collect();
        t.push('…');
        t
    }
}

/// `key: value` lines, as the tooltip shows them.
fn attributes_text(attrs: &[KeyValue]) -> String {
    let mut out = String::new();
    for kv in attrs {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&kv.key);
        out.push_str(": ");
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(v) => out.push_str(&cut(&value_text(v))),
            None => out.push_str("(empty)"),
        }
    }
    out
}

fn value_text(v: &Value) -> String {
    match v {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BytesValue(b) => ids::hex(b),
        Value::ArrayValue(a) => {
            let items: Vec<String> = a
                .values
                .iter()
                .map(|v| v.value.as_ref().map(value_text).unwrap_or_default())
                .collect();
            format!("[{}]", items.join(", "))
        }
        Value::KvlistValue(l) => {
            let items: Vec<String> = l
                .values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                    format!("{}: {}", kv.key, v.map(value_text).unwrap_or_default())
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

/// Writes the page: the template with the style, the model and the script put in. The model is
/// JSON inside `<script type="application/json">`, so every `<` in it is written as `\u003c`
/// (only strings can hold one): no span name can end the script element or open a comment.
fn write_html(
    path: Option<&std::path::Path>,
    title: &str,
    doc: &impl serde::Serialize,
) -> anyhow::Result<u64> {
    use anyhow::Context;
    let data = serde_json::to_vec(doc).context("serialising the report model")?;
    let mut page = Vec::with_capacity(data.len() + TEMPLATE.len() + SCRIPT.len() + STYLE.len());
    let mut rest = TEMPLATE;
    for (marker, kind) in [
        ("{{TITLE}}", 0),
        ("{{STYLE}}", 1),
        ("{{DATA}}", 2),
        ("{{SCRIPT}}", 3),
    ] {
        let (before, after) = rest
            .split_once(marker)
            .unwrap_or_else(|| panic!("report.html lacks {marker}"));
        page.extend_from_slice(before.as_bytes());
        match kind {
            0 => page.extend_from_slice(html_escape(title).as_bytes()),
            1 => page.extend_from_slice(STYLE.as_bytes()),
            2 => {
                for &b in &data {
                    if b == b'<' {
                        page.extend_from_slice(b"\\u003c");
                    } else {
                        page.push(b);
                    }
                }
            }
            _ => page.extend_from_slice(SCRIPT.as_bytes()),
        }
        rest = after;
    }
    page.extend_from_slice(rest.as_bytes());
    match path {
        Some(p) => {
            std::fs::write(p, &page).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&page)?;
            out.flush()?;
        }
    }
    Ok(page.len() as u64)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(parent: u64, row: u32) -> Rec {
        Rec {
            start: 0,
            end: 0,
            trace: 1,
            parent,
            name: 0,
            row,
            status: 0,
            message: NONE,
            attrs: NONE,
            events: (0, 0),
        }
    }

    #[test]
    fn depth_restarts_in_each_row_and_survives_cycles() {
        let recs = vec![rec(0, 0), rec(1, 1), rec(2, 1), rec(5, 1), rec(4, 1)];
        let parent_of = vec![None, Some(0), Some(1), Some(4), Some(3)];
        let d = depths(&recs, &parent_of);
        assert_eq!(&d[..3], &[0, 0, 1]);
        assert!(d[3] <= 1024 && d[4] <= 1024, "a cycle ends the walk");
    }

    #[test]
    fn overlapping_siblings_get_their_own_lanes() {
        let span = |start, end| Rec {
            start,
            end,
            ..rec(0, 0)
        };
        // root 0..100; children 10..50 and 20..60 overlap; 70..80 reuses the first child lane.
        let recs = vec![span(0, 100), span(10, 50), span(20, 60), span(70, 80)];
        let parent_of = vec![None, Some(0), Some(0), Some(0)];
        assert_eq!(lanes(&recs, &parent_of, &[0, 1, 2, 3]), [0, 1, 2, 1]);
    }

    #[test]
    fn attribute_text_is_one_line_per_key() {
        let attrs = vec![
            attr::string("a", "x"),
            attr::int("b", 3),
            attr::strings("c", ["p".to_string(), "q".to_string()]),
        ];
        assert_eq!(attributes_text(&attrs), "a: x\nb: 3\nc: [p, q]");
    }

    #[test]
    fn ids_shorter_than_their_width_are_right_aligned() {
        assert_eq!(u64::from_be_bytes(fixed(&[1, 2])), 0x0102);
        assert_eq!(u64::from_be_bytes(fixed(&[])), 0);
    }

    #[test]
    fn the_model_cannot_end_its_script_element() {
        let doc = json!({"names": ["</script><!--"]});
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.html");
        write_html(Some(&p), "a<b", &doc).unwrap();
        let page = std::fs::read_to_string(&p).unwrap();
        assert!(!page.contains("</script><!--"));
        assert!(page.contains("\\u003c/script>\\u003c!--"));
        assert!(page.contains("<title>a&lt;b</title>"));
    }
}
