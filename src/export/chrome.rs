//! Chrome/Perfetto trace-event JSON (the "JSON Object Format" of Google's Trace Event Format
//! document), written as a stream: one process row per host (`process_name` metadata), one thread
//! row per rank (`thread_name` "rank N", ordered by `thread_sort_index`), each span a complete
//! event (`"ph":"X"`, `ts`/`dur` in microseconds) with its attributes as `args`, each span event
//! an instant event (`"ph":"i"`, thread scope). Opens offline in ui.perfetto.dev and
//! chrome://tracing.
//!
//! Timestamps count from the whole second before the first span (`otherData` records it):
//! microseconds since 1970 as a JSON double keep only a quarter microsecond, and Perfetto then
//! drops children whose rounded end passes their parent's. Relative times keep nanoseconds for
//! months. Viewers drop negative times, so the first span must be the earliest: write in start
//! order.

use super::fragment::{close, open, put_bytes, put_u64, Cursor, Parts};
use super::json::{hex, number, string};
use super::SpanWriter;
use crate::semconv;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, ResourceSpans, Span};
use serde_json::json;
use std::collections::HashMap;

/// Thread ids for spans without `mpi.rank` start here, away from `rank + 1`.
const NO_RANK_TID: u64 = 1_000_000;

#[derive(Default)]
pub struct Chrome {
    /// host → pid (1, 2, … in order of first appearance; pid 0 is the idle task to Perfetto).
    hosts: HashMap<String, u64>,
    /// (pid, rank or service) → tid.
    threads: HashMap<(u64, Lane), u64>,
    events: u64,
    /// Unix nanoseconds that `ts` 0 stands for.
    origin: Option<u64>,
    /// A fragment being placed by `write`.
    scratch: Vec<u8>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Lane {
    Rank(i64),
    Other(String),
}

impl SpanWriter for Chrome {
    /// The document's opening; events follow, then [`SpanWriter::end`].
    fn begin(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
    }

    fn write(&mut self, out: &mut Vec<u8>, batch: &[ResourceSpans]) {
        let mut rendered = std::mem::take(&mut self.scratch);
        for rs in batch {
            rendered.clear();
            fragment(&mut rendered, Parts::of(rs));
            let placed = self.place(out, &rendered);
            debug_assert!(placed.is_ok(), "{placed:?}");
        }
        self.scratch = rendered;
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        let origin = self.origin.unwrap_or(0);
        let other = json!({
            "generator": "otel-run merge",
            "time_origin_unix_ns": origin,
            "time_origin": crate::format::time::format_iso(origin),
        });
        out.extend_from_slice(b"\n],\"otherData\":");
        serde_json::to_writer(&mut *out, &other).expect("serialising to memory");
        out.extend_from_slice(b"}\n");
    }
}

// Events are written straight into the output, byte for byte what serde_json writes for the
// same event as a `Value` (the format's first writer; a `Value` per event was a third of merge's
// time): objects with their keys in byte order (serde_json's `Map` is a `BTreeMap` here), a
// repeated key written once with its last value, strings escaped and numbers printed by
// serde_json itself. The tests compare against that `Value` rendering.
/// The parts of a fragment ([`super::fragment`]): the time origin the first span would set
/// (u64), the host (bytes), a span's row (rank as u64, or service name as bytes), and each event
/// (time in Unix ns as u64, then its bytes up to its `pid`).
const ORIGIN: u8 = b'O';
const HOST: u8 = b'H';
const RANK: u8 = b'R';
const SERVICE: u8 = b'S';
const COMPLETE: u8 = b'X';
const INSTANT: u8 = b'i';

/// Appends the fragment of the spans in `parts`: every event rendered but for its `pid`, `tid`
/// and `ts`, which [`Chrome::place`] fills in.
pub fn fragment(out: &mut Vec<u8>, parts: Parts) {
    let resource = parts.resource.map(|r| &r.attributes[..]).unwrap_or(&[]);
    let host = crate::attr::get_str(resource, semconv::HOST_NAME).unwrap_or("unknown host");
    let first = parts
        .scope_spans
        .iter()
        .flat_map(|ss| &ss.spans)
        .map(|s| s.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    out.push(ORIGIN);
    put_u64(out, first - first % 1_000_000_000);
    out.push(HOST);
    put_bytes(out, host.as_bytes());
    let mut args = Vec::new();
    for ss in parts.scope_spans {
        let category = ss
            .scope
            .as_ref()
            .map(|s| s.name.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or("span");
        for span in &ss.spans {
            // The rank may be on the span (bsb-otel) rather than the resource.
            match crate::attr::rank(resource, &span.attributes) {
                Some(rank) => {
                    out.push(RANK);
                    put_u64(out, rank as u64);
                }
                None => {
                    out.push(SERVICE);
                    let service = crate::attr::get_str(resource, semconv::SERVICE_NAME);
                    put_bytes(out, service.unwrap_or("no rank").as_bytes());
                }
            }
            out.push(COMPLETE);
            put_u64(out, span.start_time_unix_nano);
            let at = open(out);
            complete(out, &mut args, span, category);
            close(out, at);
            for e in &span.events {
                out.push(INSTANT);
                put_u64(out, e.time_unix_nano);
                let at = open(out);
                args.clear();
                args.extend(e.attributes.iter().map(Arg::attribute));
                event(out, &mut args, category, &e.name, None);
                close(out, at);
            }
        }
    }
}

impl Chrome {
    /// Places a [`fragment`]: new rows announced first, then its events with their `pid`, `tid`
    /// and `ts` (from the time origin, which the first fragment placed sets).
    pub fn place(&mut self, out: &mut Vec<u8>, fragment: &[u8]) -> Result<(), String> {
        let mut c = Cursor(fragment);
        let mut host = "";
        let mut row = (0, 0);
        while !c.is_empty() {
            match c.u8()? {
                ORIGIN => {
                    let origin = c.u64()?;
                    self.origin.get_or_insert(origin);
                }
                HOST => host = c.str()?,
                RANK => row = self.row(out, host, Lane::Rank(c.u64()? as i64)),
                SERVICE => row = self.row(out, host, Lane::Other(c.str()?.to_string())),
                kind @ (COMPLETE | INSTANT) => {
                    let time = c.u64()?;
                    let body = c.bytes()?;
                    let ts = time.saturating_sub(self.origin.unwrap_or(0));
                    self.separate(out);
                    out.extend_from_slice(body);
                    event_end(out, kind == COMPLETE, row, ts);
                }
                other => return Err(format!("rendered chrome span: unknown part {other}")),
            }
        }
        Ok(())
    }

    /// The (pid, tid) of a rank, announcing new rows with metadata events first.
    fn row(&mut self, out: &mut Vec<u8>, host: &str, lane: Lane) -> (u64, u64) {
        let pid = match self.hosts.get(host) {
            Some(pid) => *pid,
            None => {
                let pid = self.hosts.len() as u64 + 1;
                self.hosts.insert(host.to_string(), pid);
                self.separate(out);
                out.extend_from_slice(b"{\"args\":{\"name\":");
                string(out, host);
                out.extend_from_slice(b"},\"name\":\"process_name\"");
                metadata_end(out, pid, 0);
                pid
            }
        };
        if let Some(tid) = self.threads.get(&(pid, lane.clone())) {
            return (pid, *tid);
        }
        let others = self
            .threads
            .keys()
            .filter(|(p, l)| *p == pid && matches!(l, Lane::Other(_)))
            .count() as u64;
        let (tid, name, sort) = match &lane {
            Lane::Rank(rank) => (*rank as u64 + 1, format!("rank {rank}"), *rank),
            Lane::Other(service) => (NO_RANK_TID + others, service.clone(), i64::MAX / 2),
        };
        self.threads.insert((pid, lane), tid);
        self.separate(out);
        out.extend_from_slice(b"{\"args\":{\"name\":");
        string(out, &name);
        out.extend_from_slice(b"},\"name\":\"thread_name\"");
        metadata_end(out, pid, tid);
        self.separate(out);
        out.extend_from_slice(b"{\"args\":{\"sort_index\":");
        number(out, sort);
        out.extend_from_slice(b"},\"name\":\"thread_sort_index\"");
        metadata_end(out, pid, tid);
        (pid, tid)
    }

    /// Before each event: the separator from the previous one.
    fn separate(&mut self, out: &mut Vec<u8>) {
        if self.events > 0 {
            out.extend_from_slice(b",\n");
        }
        self.events += 1;
    }
}

/// The rest of a metadata event after its `args` and `name`.
fn metadata_end(out: &mut Vec<u8>, pid: u64, tid: u64) {
    out.extend_from_slice(b",\"ph\":\"M\",\"pid\":");
    number(out, pid);
    out.extend_from_slice(b",\"tid\":");
    number(out, tid);
    out.push(b'}');
}

/// A span's complete event up to its `pid`; `args` is scratch space.
fn complete<'a>(
    out: &mut Vec<u8>,
    args: &mut Vec<(&'a str, Arg<'a>)>,
    span: &'a Span,
    category: &str,
) {
    args.clear();
    args.reserve(span.attributes.len() + 5);
    args.extend(span.attributes.iter().map(Arg::attribute));
    args.push(("otel.trace_id", Arg::Hex(&span.trace_id)));
    args.push(("otel.span_id", Arg::Hex(&span.span_id)));
    if !span.parent_span_id.is_empty() {
        args.push(("otel.parent_id", Arg::Hex(&span.parent_span_id)));
    }
    if let Some(status) = &span.status {
        let code = match StatusCode::try_from(status.code) {
            Ok(StatusCode::Ok) => "OK",
            Ok(StatusCode::Error) => "ERROR",
            _ => "UNSET",
        };
        args.push(("otel.status_code", Arg::Str(code)));
        if !status.message.is_empty() {
            args.push(("otel.status_description", Arg::Str(&status.message)));
        }
    }
    let dur = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano);
    event(out, args, category, &span.name, Some(dur));
}

/// One event up to its `pid`, its keys in byte order: a complete event (`X`) with its duration,
/// or without one an instant event (`i`). Times in nanoseconds.
fn event<'a>(
    out: &mut Vec<u8>,
    args: &mut [(&'a str, Arg<'a>)],
    category: &str,
    name: &str,
    dur: Option<u64>,
) {
    out.extend_from_slice(b"{\"args\":");
    object(out, args);
    out.extend_from_slice(b",\"cat\":");
    string(out, category);
    if let Some(dur) = dur {
        out.extend_from_slice(b",\"dur\":");
        micros(out, dur);
    }
    out.extend_from_slice(b",\"name\":");
    string(out, name);
    match dur {
        Some(_) => out.extend_from_slice(b",\"ph\":\"X\",\"pid\":"),
        None => out.extend_from_slice(b",\"ph\":\"i\",\"pid\":"),
    }
}

/// The rest of an event after its `pid` key: an instant event is scoped to its thread.
fn event_end(out: &mut Vec<u8>, complete: bool, (pid, tid): (u64, u64), ts: u64) {
    number(out, pid);
    match complete {
        true => out.extend_from_slice(b",\"tid\":"),
        false => out.extend_from_slice(b",\"s\":\"t\",\"tid\":"),
    }
    number(out, tid);
    out.extend_from_slice(b",\"ts\":");
    micros(out, ts);
    out.push(b'}');
}

/// One value of an `args` object (or of a list or map inside it).
#[derive(Clone, Copy)]
enum Arg<'a> {
    Any(Option<&'a Value>),
    Hex(&'a [u8]),
    Str(&'a str),
}

impl<'a> Arg<'a> {
    fn attribute(kv: &'a KeyValue) -> (&'a str, Arg<'a>) {
        (
            &kv.key,
            Arg::Any(kv.value.as_ref().and_then(|v| v.value.as_ref())),
        )
    }
}

/// `entries` as a JSON object: keys in byte order, the last of a repeated key.
fn object<'a>(out: &mut Vec<u8>, entries: &mut [(&'a str, Arg<'a>)]) {
    // Stable: entries of one key keep their order, so the last one written wins as in a map.
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    let mut first = true;
    for (i, (key, arg)) in entries.iter().enumerate() {
        if entries.get(i + 1).is_some_and(|next| next.0 == *key) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        string(out, key);
        out.push(b':');
        arg_value(out, *arg);
    }
    out.push(b'}');
}

fn arg_value(out: &mut Vec<u8>, arg: Arg) {
    match arg {
        Arg::Str(s) => string(out, s),
        Arg::Hex(b) => hex(out, b),
        Arg::Any(v) => value(out, v),
    }
}

fn value(out: &mut Vec<u8>, v: Option<&Value>) {
    match v {
        None | Some(Value::StringValueStrindex(_)) => out.extend_from_slice(b"null"),
        Some(Value::StringValue(s)) => string(out, s),
        Some(Value::BoolValue(b)) => number(out, *b),
        Some(Value::IntValue(i)) => number(out, *i),
        Some(Value::DoubleValue(d)) if d.is_finite() => number(out, *d),
        // serde_json turns non-finite doubles into null; keep them readable.
        Some(Value::DoubleValue(d)) => string(out, &d.to_string()),
        Some(Value::BytesValue(b)) => hex(out, b),
        Some(Value::ArrayValue(a)) => {
            out.push(b'[');
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                value(out, v.value.as_ref());
            }
            out.push(b']');
        }
        Some(Value::KvlistValue(l)) => {
            let mut entries: Vec<_> = l.values.iter().map(Arg::attribute).collect();
            object(out, &mut entries);
        }
    }
}

/// Nanoseconds as the format's microseconds (exact to the nanosecond below ~100 days).
fn micros(out: &mut Vec<u8>, nanos: u64) {
    if nanos.is_multiple_of(1000) {
        number(out, nanos / 1000)
    } else {
        number(out, nanos as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValueList,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{span::Event, ScopeSpans, Status};
    use serde_json::Value as Json;

    fn any(v: Value) -> AnyValue {
        AnyValue { value: Some(v) }
    }

    /// Spans with what a `Value` renders in its own way: repeated and unordered keys, attributes
    /// named like the otel.* args, nested lists and maps, escapes, non-finite and negative
    /// numbers, fractional microseconds, a span without rank, several hosts.
    fn awkward() -> Vec<ResourceSpans> {
        const T: u64 = 1_700_000_000_123_456_789;
        let attrs = vec![
            attr::string("z", "last"),
            attr::string(
                "a\\\"quote\u{1}\u{1f}\u{7f}\n\t\r\u{8}\u{c}é€😀",
                "\u{0}\"\\/</script>",
            ),
            attr::int("dup", 1),
            attr::double("dup", -0.0),
            attr::double("nan", f64::NAN),
            attr::double("inf", f64::NEG_INFINITY),
            attr::double("tiny", 1e-300),
            attr::double("big", 1.5e300),
            attr::double("third", 1.0 / 3.0),
            attr::int("min", i64::MIN),
            attr::boolean("b", false),
            attr::string("otel.span_id", "shadowed"),
            attr::kv("bytes", Value::BytesValue(vec![0, 255, 16])),
            attr::kv("none", Value::StringValueStrindex(3)),
            KeyValue {
                key: "unset".into(),
                value: None,
                ..Default::default()
            },
            attr::kv(
                "list",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        any(Value::IntValue(1)),
                        any(Value::DoubleValue(f64::INFINITY)),
                        AnyValue { value: None },
                        any(Value::ArrayValue(ArrayValue { values: vec![] })),
                    ],
                }),
            ),
            attr::kv(
                "map",
                Value::KvlistValue(KeyValueList {
                    values: vec![
                        attr::int("y", 2),
                        attr::int("x", 1),
                        attr::int("y", 3),
                        attr::kv("empty", Value::KvlistValue(KeyValueList { values: vec![] })),
                    ],
                }),
            ),
            attr::string("", "empty key"),
        ];
        let span = |name: &str, start: u64, end: u64, attributes: Vec<KeyValue>, status| Span {
            trace_id: (0..16).collect(),
            span_id: (8..16).collect(),
            parent_span_id: if start.is_multiple_of(2) {
                vec![]
            } else {
                vec![0xab; 8]
            },
            name: name.into(),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            status,
            events: vec![
                Event {
                    name: "e\"1".into(),
                    time_unix_nano: start.saturating_add(1),
                    attributes: vec![attr::int("k", 1), attr::string("a", "b")],
                    ..Default::default()
                },
                Event {
                    name: "before origin".into(),
                    time_unix_nano: 5,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let rs = |resource: Vec<KeyValue>, scope: &str, spans| ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope.into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        };
        let ok = |code: StatusCode, message: &str| {
            Some(Status {
                code: code as i32,
                message: message.into(),
            })
        };
        vec![
            rs(
                vec![attr::string("host.name", "n\"1"), attr::int("mpi.rank", 3)],
                "sim",
                vec![
                    span(
                        "a",
                        T,
                        T + 2_500,
                        attrs.clone(),
                        ok(StatusCode::Error, "bad \"x\""),
                    ),
                    span("b", T + 1, T, vec![], ok(StatusCode::Ok, "")),
                ],
            ),
            rs(
                vec![attr::string("service.name", "svc")],
                "",
                vec![span(
                    "c",
                    T + 3_000,
                    T + 10_001,
                    vec![attr::int("mpi.rank", -2)],
                    None,
                )],
            ),
            rs(
                vec![],
                "s",
                vec![span("d", T + 7, T + 9, attrs, ok(StatusCode::Unset, "m"))],
            ),
            rs(
                vec![
                    attr::string("host.name", "n\"1"),
                    attr::string("service.name", "other"),
                ],
                "s",
                vec![span("e", u64::MAX, u64::MAX, vec![], None)],
            ),
        ]
    }

    /// serde_json's own rendering of the document, event by event, framed as the writer frames
    /// it: what the writer must produce byte for byte (key order, a repeated key once with its
    /// last value, escapes, number digits). Parsing and writing again through a `Value` is
    /// exactly how the format's first writer made each event.
    fn as_serde_json_writes_it(doc: &[u8]) -> String {
        let doc: Json = serde_json::from_slice(doc).expect("the output is JSON");
        let events: Vec<String> = doc["traceEvents"]
            .as_array()
            .expect("traceEvents")
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        format!(
            "{{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n{}\n],\"otherData\":{}}}\n",
            events.join(",\n"),
            serde_json::to_string(&doc["otherData"]).unwrap()
        )
    }

    #[test]
    fn bytes_are_those_of_a_serde_json_value() {
        let batch = awkward();
        let mut out = Vec::new();
        let mut w = Chrome::default();
        w.begin(&mut out);
        for rs in &batch {
            w.write(&mut out, std::slice::from_ref(rs));
        }
        w.write(&mut out, &batch);
        w.end(&mut out);
        let written = String::from_utf8(out).unwrap();
        assert_eq!(written, as_serde_json_writes_it(written.as_bytes()));
        // The awkward cases made it into the output: an escaped host name, the repeated key.
        for needle in [r#"n\"1"#, "-0.0"] {
            assert!(written.contains(needle), "{needle} missing: {written}");
        }
    }

    /// A fragment cut short or otherwise wrong is an error, never a panic.
    #[test]
    fn a_corrupt_fragment_is_an_error() {
        let mut fragment = Vec::new();
        super::fragment(&mut fragment, Parts::of(&awkward()[0]));
        crate::export::fragment::every_cut_is_an_error(&fragment, |cut| {
            Chrome::default().place(&mut Vec::new(), cut)
        });
        assert!(Chrome::default().place(&mut Vec::new(), b"?").is_err());
        assert!(Chrome::default()
            .place(&mut Vec::new(), b"H\xff\xff\xff\xff")
            .is_err());
    }

    fn rank(host: &str, rank: i64, start: u64) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attr::string("host.name", host), attr::int("mpi.rank", rank)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "compute".into(),
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + 2_500,
                    attributes: vec![attr::int("n", 3)],
                    events: vec![Event {
                        name: "checkpoint".into(),
                        time_unix_nano: start + 1_000,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn rows_per_host_and_rank() {
        let mut w = Chrome::default();
        let mut out = Vec::new();
        w.begin(&mut out);
        const T: u64 = 1_700_000_000_000_000_000;
        for rs in [
            rank("a", 0, T + 1_000_000),
            rank("a", 1, T + 1_000_000),
            rank("b", 2, T + 1_000_000),
            rank("a", 0, T + 2_000_500),
        ] {
            w.write(&mut out, &[rs]);
        }
        w.end(&mut out);
        let doc: Json = serde_json::from_slice(&out).unwrap();
        let events = doc["traceEvents"].as_array().unwrap();
        let names: Vec<_> = events
            .iter()
            .filter(|e| e["ph"] == "M" && e["name"] != "thread_sort_index")
            .map(|e| {
                format!(
                    "{} {} {}",
                    e["pid"],
                    e["tid"],
                    e["args"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            names,
            ["1 0 a", "1 1 rank 0", "1 2 rank 1", "2 0 b", "2 3 rank 2"]
        );
        let x: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(x.len(), 4);
        assert_eq!(x[3]["ts"], json!(2000.5));
        assert_eq!(x[3]["dur"], json!(2.5));
        assert_eq!(x[3]["args"]["n"], 3);
        assert_eq!(x[3]["args"]["otel.span_id"], "0202020202020202");
        let i: Vec<_> = events.iter().filter(|e| e["ph"] == "i").collect();
        assert_eq!(i.len(), 4);
        assert_eq!(i[0]["ts"], json!(1001));
        assert_eq!(i[0]["s"], "t");
        assert_eq!(doc["otherData"]["time_origin_unix_ns"], json!(T));
    }
}
