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

use super::SpanWriter;
use crate::ids::hex;
use crate::semconv;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, ResourceSpans, Span};
use serde_json::{json, Map, Value as Json};
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
        for rs in batch {
            self.spans(out, rs);
        }
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

impl Chrome {
    /// Appends the events of every span in `rs`.
    fn spans(&mut self, out: &mut Vec<u8>, rs: &ResourceSpans) {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| &r.attributes[..])
            .unwrap_or(&[]);
        let host = crate::attr::get_str(resource, semconv::HOST_NAME)
            .unwrap_or("unknown host")
            .to_string();
        let lane = |span: &[KeyValue]| match crate::attr::rank(resource, span) {
            Some(rank) => Lane::Rank(rank),
            None => Lane::Other(
                crate::attr::get_str(resource, semconv::SERVICE_NAME)
                    .unwrap_or("no rank")
                    .to_string(),
            ),
        };
        let origin = *self.origin.get_or_insert_with(|| {
            let first = rs
                .scope_spans
                .iter()
                .flat_map(|ss| &ss.spans)
                .map(|s| s.start_time_unix_nano)
                .min()
                .unwrap_or(0);
            first - first % 1_000_000_000
        });
        for ss in &rs.scope_spans {
            let category = ss
                .scope
                .as_ref()
                .map(|s| s.name.as_str())
                .filter(|n| !n.is_empty())
                .unwrap_or("span");
            for span in &ss.spans {
                // The rank may be on the span (bsb-otel) rather than the resource.
                let (pid, tid) = self.row(out, host.clone(), lane(&span.attributes));
                self.event(out, complete(span, category, pid, tid, origin));
                for e in &span.events {
                    self.event(
                        out,
                        json!({
                            "name": e.name,
                            "cat": category,
                            "ph": "i",
                            "s": "t",
                            "ts": micros(e.time_unix_nano.saturating_sub(origin)),
                            "pid": pid,
                            "tid": tid,
                            "args": attributes(&e.attributes),
                        }),
                    );
                }
            }
        }
    }

    /// The (pid, tid) of a rank, announcing new rows with metadata events first.
    fn row(&mut self, out: &mut Vec<u8>, host: String, lane: Lane) -> (u64, u64) {
        let next_pid = self.hosts.len() as u64 + 1;
        let pid = match self.hosts.get(&host) {
            Some(pid) => *pid,
            None => {
                self.hosts.insert(host.clone(), next_pid);
                self.event(
                    out,
                    metadata("process_name", next_pid, 0, json!({"name": host})),
                );
                next_pid
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
        self.event(
            out,
            metadata("thread_name", pid, tid, json!({"name": name})),
        );
        self.event(
            out,
            metadata("thread_sort_index", pid, tid, json!({"sort_index": sort})),
        );
        (pid, tid)
    }

    fn event(&mut self, out: &mut Vec<u8>, event: Json) {
        if self.events > 0 {
            out.extend_from_slice(b",\n");
        }
        self.events += 1;
        // Serialising a Value into memory cannot fail.
        serde_json::to_writer(&mut *out, &event).expect("serialising an event to memory");
    }
}

fn metadata(name: &str, pid: u64, tid: u64, args: Json) -> Json {
    json!({"name": name, "ph": "M", "pid": pid, "tid": tid, "args": args})
}

fn complete(span: &Span, category: &str, pid: u64, tid: u64, origin: u64) -> Json {
    let mut args = attributes(&span.attributes);
    args.insert("otel.trace_id".into(), hex(&span.trace_id).into());
    args.insert("otel.span_id".into(), hex(&span.span_id).into());
    if !span.parent_span_id.is_empty() {
        args.insert("otel.parent_id".into(), hex(&span.parent_span_id).into());
    }
    if let Some(status) = &span.status {
        let code = match StatusCode::try_from(status.code) {
            Ok(StatusCode::Ok) => "OK",
            Ok(StatusCode::Error) => "ERROR",
            _ => "UNSET",
        };
        args.insert("otel.status_code".into(), code.into());
        if !status.message.is_empty() {
            args.insert(
                "otel.status_description".into(),
                status.message.clone().into(),
            );
        }
    }
    let duration = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano);
    json!({
        "name": span.name,
        "cat": category,
        "ph": "X",
        "ts": micros(span.start_time_unix_nano.saturating_sub(origin)),
        "dur": micros(duration),
        "pid": pid,
        "tid": tid,
        "args": args,
    })
}

/// Nanoseconds as the format's microseconds (exact to the nanosecond below ~100 days).
fn micros(nanos: u64) -> Json {
    if nanos.is_multiple_of(1000) {
        Json::from(nanos / 1000)
    } else {
        Json::from(nanos as f64 / 1000.0)
    }
}

fn attributes(attrs: &[KeyValue]) -> Map<String, Json> {
    attrs
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                value(kv.value.as_ref().and_then(|v| v.value.as_ref())),
            )
        })
        .collect()
}

fn value(v: Option<&Value>) -> Json {
    match v {
        None | Some(Value::StringValueStrindex(_)) => Json::Null,
        Some(Value::StringValue(s)) => s.clone().into(),
        Some(Value::BoolValue(b)) => (*b).into(),
        Some(Value::IntValue(i)) => (*i).into(),
        // serde_json turns non-finite doubles into null; keep them readable.
        Some(Value::DoubleValue(d)) if d.is_finite() => (*d).into(),
        Some(Value::DoubleValue(d)) => d.to_string().into(),
        Some(Value::BytesValue(b)) => hex(b).into(),
        Some(Value::ArrayValue(a)) => {
            Json::Array(a.values.iter().map(|v| value(v.value.as_ref())).collect())
        }
        Some(Value::KvlistValue(l)) => Json::Object(attributes(&l.values)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{span::Event, ScopeSpans};

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
        w.spans(&mut out, &rank("a", 0, T + 1_000_000));
        w.spans(&mut out, &rank("a", 1, T + 1_000_000));
        w.spans(&mut out, &rank("b", 2, T + 1_000_000));
        w.spans(&mut out, &rank("a", 0, T + 2_000_500));
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
