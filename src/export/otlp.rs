//! The `otlp` line format's writer: one `TracesData` per batch in OTLP/JSON (the OpenTelemetry
//! Collector's file exporter format). Its reader is `format::otlp_json`.
//!
//! Lines are written straight into the output, byte for byte what serde_json wrote over
//! opentelemetry-proto's serde derives (the format's first writer, whose serde calls were a tenth
//! of `merge --format otlp`'s CPU; the direct writer takes a third of that): every field always,
//! in the proto's declaration order, camelCase; ids as lowercase hex, the u64 times and
//! `intValue` as decimal strings, enums and counts as numbers, `bytesValue` as padded base64, an
//! absent message as `null`, an `AnyValue` without a value as `{}`, `keyStrindex` only when not
//! 0, and NaN and ±Infinity as proto3 JSON's strings. [`serde_rendering`] keeps that first writer
//! as the oracle the tests and the `otlp_line` and `python_line` fuzz targets compare against.

use super::fragment::{close, open, Cursor, Parts};
use super::json::{hex, number, string};
use super::SpanWriter;
use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, EntityRef, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

pub struct Otlp;

impl SpanWriter for Otlp {
    /// One line for the whole batch; nothing for a batch without spans.
    fn write(&mut self, out: &mut Vec<u8>, batch: &[ResourceSpans]) {
        if crate::format::span_count(batch) == 0 {
            return;
        }
        out.extend_from_slice(b"{\"resourceSpans\":");
        list(out, batch, resource_spans);
        out.extend_from_slice(b"}\n");
    }
}

/// The parts of an otlp fragment ([`super::fragment`]), one unit per span: whether its group key
/// compares as bytes ([`EXACT`]) or not ([`INEXACT`]), the key as the line's opening and closing
/// (resource and scope; bytes), the span's JSON (bytes), and for an inexact key the resource and
/// scope themselves (a protobuf `ResourceSpans` without spans, bytes).
const EXACT: u8 = b'=';
const INEXACT: u8 = b'~';

/// Appends the fragment of the spans in `parts`, each a unit of its own (merge writes one span
/// per `ResourceSpans`; [`Lines`] groups them again).
pub fn fragment(out: &mut Vec<u8>, parts: Parts) {
    for ss in parts.scope_spans {
        let exact = compares_as_bytes(parts.resource, ss.scope.as_ref());
        for s in &ss.spans {
            out.push(if exact { EXACT } else { INEXACT });
            let at = open(out);
            out.extend_from_slice(b"{\"resourceSpans\":[{\"resource\":");
            optional(out, parts.resource, resource);
            out.extend_from_slice(b",\"scopeSpans\":[{\"scope\":");
            optional(out, ss.scope.as_ref(), scope);
            out.extend_from_slice(b",\"spans\":[");
            close(out, at);
            let at = open(out);
            out.extend_from_slice(b"],\"schemaUrl\":");
            string(out, &ss.schema_url);
            out.extend_from_slice(b"}],\"schemaUrl\":");
            string(out, parts.schema_url);
            out.extend_from_slice(b"}]}\n");
            close(out, at);
            let at = open(out);
            span(out, s);
            close(out, at);
            if !exact {
                let key = ResourceSpans {
                    resource: parts.resource.cloned(),
                    schema_url: parts.schema_url.to_string(),
                    scope_spans: vec![ScopeSpans {
                        scope: ss.scope.clone(),
                        spans: Vec::new(),
                        schema_url: ss.schema_url.clone(),
                    }],
                };
                let at = open(out);
                key.encode(out).expect("a Vec grows as needed");
                close(out, at);
            }
        }
    }
}

/// Whether two resource-and-scope keys are equal exactly when their JSON is: true unless a double
/// in them is NaN (never equal to itself) or zero (0.0 equals -0.0, written differently).
fn compares_as_bytes(resource: Option<&Resource>, scope: Option<&InstrumentationScope>) -> bool {
    fn plain(kvs: &[KeyValue]) -> bool {
        kvs.iter().all(|kv| {
            kv.value
                .as_ref()
                .is_none_or(|v| value_plain(v.value.as_ref()))
        })
    }
    fn value_plain(v: Option<&Value>) -> bool {
        match v {
            Some(Value::DoubleValue(d)) => !d.is_nan() && *d != 0.0,
            Some(Value::ArrayValue(a)) => a.values.iter().all(|v| value_plain(v.value.as_ref())),
            Some(Value::KvlistValue(l)) => plain(&l.values),
            _ => true,
        }
    }
    resource.is_none_or(|r| plain(&r.attributes)) && scope.is_none_or(|s| plain(&s.attributes))
}

/// Merge's otlp output: consecutive spans of one resource and scope share a line, up to `max`.
/// It places [`fragment`]s; keys are compared as bytes, or for the rare inexact ones (see
/// [`compares_as_bytes`]) as the proto types, which is what equality meant when the spans
/// themselves were grouped: an exact key never equals an inexact one.
pub struct Lines {
    max: usize,
    /// The line being gathered (`count` 0: none); its buffers are reused for the next.
    exact: bool,
    opening: Vec<u8>,
    closing: Vec<u8>,
    key: Option<ResourceSpans>,
    spans: Vec<u8>,
    count: usize,
}

impl Lines {
    pub fn new(max: usize) -> Self {
        Lines {
            max: max.max(1),
            exact: true,
            opening: Vec::new(),
            closing: Vec::new(),
            key: None,
            spans: Vec::new(),
            count: 0,
        }
    }

    pub fn place(&mut self, out: &mut Vec<u8>, fragment: &[u8]) -> Result<(), String> {
        let mut c = Cursor(fragment);
        while !c.is_empty() {
            let exact = match c.u8()? {
                EXACT => true,
                INEXACT => false,
                other => return Err(format!("rendered otlp span: unknown part {other}")),
            };
            let (opening, closing, span) = (c.bytes()?, c.bytes()?, c.bytes()?);
            let key = match exact {
                true => None,
                false => Some(
                    ResourceSpans::decode(c.bytes()?)
                        .map_err(|e| format!("rendered otlp span: {e}"))?,
                ),
            };
            let same = self.count > 0
                && self.count < self.max
                && match (exact, self.exact) {
                    (true, true) => opening == self.opening && closing == self.closing,
                    (false, false) => same_key(key.as_ref(), self.key.as_ref()),
                    _ => false,
                };
            if !same {
                self.flush(out);
                self.exact = exact;
                self.opening.extend_from_slice(opening);
                self.closing.extend_from_slice(closing);
                self.key = key;
            } else {
                self.spans.push(b',');
            }
            self.spans.extend_from_slice(span);
            self.count += 1;
        }
        Ok(())
    }

    /// Writes the line being gathered.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if self.count > 0 {
            out.extend_from_slice(&self.opening);
            out.extend_from_slice(&self.spans);
            out.extend_from_slice(&self.closing);
        }
        self.opening.clear();
        self.closing.clear();
        self.spans.clear();
        self.key = None;
        self.count = 0;
    }
}

/// Whether [`Lines`] over the fragments of `batch`'s spans (each alone in its resource and scope,
/// as merge writes them) writes what grouping the proto types themselves wrote, up to `max` spans
/// a line (`Err` shows both). For the unit tests and the `otlp_line` and `python_line` fuzz
/// checks.
#[doc(hidden)]
pub fn lines_agree_with_grouped_types(batch: &[ResourceSpans], max: usize) -> Result<(), String> {
    let mut spans = Vec::new();
    for rs in batch {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                spans.push(ResourceSpans {
                    resource: rs.resource.clone(),
                    schema_url: rs.schema_url.clone(),
                    scope_spans: vec![ScopeSpans {
                        scope: ss.scope.clone(),
                        spans: vec![span.clone()],
                        schema_url: ss.schema_url.clone(),
                    }],
                });
            }
        }
    }
    // What merge wrote when it grouped the types.
    let mut want = Vec::new();
    let mut pending: Option<ResourceSpans> = None;
    for rs in &spans {
        if let Some(p) = &mut pending {
            let fits = p.resource == rs.resource
                && p.schema_url == rs.schema_url
                && p.scope_spans[0].scope == rs.scope_spans[0].scope
                && p.scope_spans[0].schema_url == rs.scope_spans[0].schema_url
                && p.scope_spans[0].spans.len() < max;
            if fits {
                p.scope_spans[0]
                    .spans
                    .extend(rs.scope_spans[0].spans.clone());
                continue;
            }
        }
        if let Some(done) = pending.replace(rs.clone()) {
            Otlp.write(&mut want, &[done]);
        }
    }
    if let Some(done) = pending {
        Otlp.write(&mut want, &[done]);
    }
    let mut got = Vec::new();
    let mut lines = Lines::new(max);
    let mut fragment = Vec::new();
    for rs in &spans {
        fragment.clear();
        self::fragment(&mut fragment, Parts::of(rs));
        lines.place(&mut got, &fragment)?;
    }
    lines.flush(&mut got);
    if got != want {
        return Err(format!(
            "placed fragments:\n{}\ngrouped types:\n{}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        ));
    }
    Ok(())
}

/// Inexact keys: equal as the proto types are.
fn same_key(a: Option<&ResourceSpans>, b: Option<&ResourceSpans>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return false;
    };
    fn scope(k: &ResourceSpans) -> Option<(&Option<InstrumentationScope>, &String)> {
        k.scope_spans.first().map(|ss| (&ss.scope, &ss.schema_url))
    }
    a.resource == b.resource && a.schema_url == b.schema_url && scope(a) == scope(b)
}

/// `items` as a JSON array, each written by `item`.
fn list<T>(out: &mut Vec<u8>, items: &[T], item: impl Fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, x);
    }
    out.push(b']');
}

/// An optional message: `null` when absent.
fn optional<T>(out: &mut Vec<u8>, x: Option<&T>, item: impl Fn(&mut Vec<u8>, &T)) {
    match x {
        Some(x) => item(out, x),
        None => out.extend_from_slice(b"null"),
    }
}

/// A u64 as its decimal string.
fn quoted(out: &mut Vec<u8>, n: u64) {
    out.push(b'"');
    number(out, n);
    out.push(b'"');
}

fn resource_spans(out: &mut Vec<u8>, rs: &ResourceSpans) {
    out.extend_from_slice(b"{\"resource\":");
    optional(out, rs.resource.as_ref(), resource);
    out.extend_from_slice(b",\"scopeSpans\":");
    list(out, &rs.scope_spans, scope_spans);
    out.extend_from_slice(b",\"schemaUrl\":");
    string(out, &rs.schema_url);
    out.push(b'}');
}

fn resource(out: &mut Vec<u8>, r: &Resource) {
    out.extend_from_slice(b"{\"attributes\":");
    list(out, &r.attributes, key_value);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    number(out, r.dropped_attributes_count);
    out.extend_from_slice(b",\"entityRefs\":");
    list(out, &r.entity_refs, entity_ref);
    out.push(b'}');
}

fn entity_ref(out: &mut Vec<u8>, e: &EntityRef) {
    out.extend_from_slice(b"{\"schemaUrl\":");
    string(out, &e.schema_url);
    out.extend_from_slice(b",\"type\":");
    string(out, &e.r#type);
    out.extend_from_slice(b",\"idKeys\":");
    list(out, &e.id_keys, |out, k| string(out, k));
    out.extend_from_slice(b",\"descriptionKeys\":");
    list(out, &e.description_keys, |out, k| string(out, k));
    out.push(b'}');
}

fn scope_spans(out: &mut Vec<u8>, ss: &ScopeSpans) {
    out.extend_from_slice(b"{\"scope\":");
    optional(out, ss.scope.as_ref(), scope);
    out.extend_from_slice(b",\"spans\":");
    list(out, &ss.spans, span);
    out.extend_from_slice(b",\"schemaUrl\":");
    string(out, &ss.schema_url);
    out.push(b'}');
}

fn scope(out: &mut Vec<u8>, s: &InstrumentationScope) {
    out.extend_from_slice(b"{\"name\":");
    string(out, &s.name);
    out.extend_from_slice(b",\"version\":");
    string(out, &s.version);
    out.extend_from_slice(b",\"attributes\":");
    list(out, &s.attributes, key_value);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    number(out, s.dropped_attributes_count);
    out.push(b'}');
}

fn span(out: &mut Vec<u8>, s: &Span) {
    out.extend_from_slice(b"{\"traceId\":");
    hex(out, &s.trace_id);
    out.extend_from_slice(b",\"spanId\":");
    hex(out, &s.span_id);
    out.extend_from_slice(b",\"traceState\":");
    string(out, &s.trace_state);
    out.extend_from_slice(b",\"parentSpanId\":");
    hex(out, &s.parent_span_id);
    out.extend_from_slice(b",\"flags\":");
    number(out, s.flags);
    out.extend_from_slice(b",\"name\":");
    string(out, &s.name);
    out.extend_from_slice(b",\"kind\":");
    number(out, s.kind);
    out.extend_from_slice(b",\"startTimeUnixNano\":");
    quoted(out, s.start_time_unix_nano);
    out.extend_from_slice(b",\"endTimeUnixNano\":");
    quoted(out, s.end_time_unix_nano);
    out.extend_from_slice(b",\"attributes\":");
    list(out, &s.attributes, key_value);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    number(out, s.dropped_attributes_count);
    out.extend_from_slice(b",\"events\":");
    list(out, &s.events, event);
    out.extend_from_slice(b",\"droppedEventsCount\":");
    number(out, s.dropped_events_count);
    out.extend_from_slice(b",\"links\":");
    list(out, &s.links, link);
    out.extend_from_slice(b",\"droppedLinksCount\":");
    number(out, s.dropped_links_count);
    out.extend_from_slice(b",\"status\":");
    optional(out, s.status.as_ref(), status);
    out.push(b'}');
}

fn event(out: &mut Vec<u8>, e: &Event) {
    out.extend_from_slice(b"{\"timeUnixNano\":");
    quoted(out, e.time_unix_nano);
    out.extend_from_slice(b",\"name\":");
    string(out, &e.name);
    out.extend_from_slice(b",\"attributes\":");
    list(out, &e.attributes, key_value);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    number(out, e.dropped_attributes_count);
    out.push(b'}');
}

fn link(out: &mut Vec<u8>, l: &Link) {
    out.extend_from_slice(b"{\"traceId\":");
    hex(out, &l.trace_id);
    out.extend_from_slice(b",\"spanId\":");
    hex(out, &l.span_id);
    out.extend_from_slice(b",\"traceState\":");
    string(out, &l.trace_state);
    out.extend_from_slice(b",\"attributes\":");
    list(out, &l.attributes, key_value);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    number(out, l.dropped_attributes_count);
    out.extend_from_slice(b",\"flags\":");
    number(out, l.flags);
    out.push(b'}');
}

fn status(out: &mut Vec<u8>, s: &Status) {
    out.extend_from_slice(b"{\"message\":");
    string(out, &s.message);
    out.extend_from_slice(b",\"code\":");
    number(out, s.code);
    out.push(b'}');
}

fn key_value(out: &mut Vec<u8>, kv: &KeyValue) {
    out.extend_from_slice(b"{\"key\":");
    string(out, &kv.key);
    out.extend_from_slice(b",\"value\":");
    optional(out, kv.value.as_ref(), any_value);
    if kv.key_strindex != 0 {
        out.extend_from_slice(b",\"keyStrindex\":");
        number(out, kv.key_strindex);
    }
    out.push(b'}');
}

fn any_value(out: &mut Vec<u8>, v: &AnyValue) {
    match &v.value {
        None => out.extend_from_slice(b"{}"),
        Some(Value::StringValue(s)) => {
            out.extend_from_slice(b"{\"stringValue\":");
            string(out, s);
            out.push(b'}');
        }
        Some(Value::BoolValue(b)) => {
            out.extend_from_slice(if *b {
                b"{\"boolValue\":true}"
            } else {
                b"{\"boolValue\":false}"
            });
        }
        Some(Value::IntValue(i)) => {
            out.extend_from_slice(b"{\"intValue\":\"");
            number(out, *i);
            out.extend_from_slice(b"\"}");
        }
        Some(Value::DoubleValue(d)) => {
            out.extend_from_slice(b"{\"doubleValue\":");
            if d.is_nan() {
                out.extend_from_slice(b"\"NaN\"");
            } else if *d == f64::INFINITY {
                out.extend_from_slice(b"\"Infinity\"");
            } else if *d == f64::NEG_INFINITY {
                out.extend_from_slice(b"\"-Infinity\"");
            } else {
                number(out, *d);
            }
            out.push(b'}');
        }
        Some(Value::ArrayValue(a)) => {
            out.extend_from_slice(b"{\"arrayValue\":{\"values\":");
            list(out, &a.values, any_value);
            out.extend_from_slice(b"}}");
        }
        Some(Value::KvlistValue(l)) => {
            out.extend_from_slice(b"{\"kvlistValue\":{\"values\":");
            list(out, &l.values, key_value);
            out.extend_from_slice(b"}}");
        }
        Some(Value::BytesValue(b)) => {
            out.extend_from_slice(b"{\"bytesValue\":\"");
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(b)
                    .as_bytes(),
            );
            out.extend_from_slice(b"\"}");
        }
        Some(Value::StringValueStrindex(i)) => {
            out.extend_from_slice(b"{\"stringValueStrindex\":");
            number(out, *i);
            out.push(b'}');
        }
    }
}

/// The writer's first implementation, serde_json over opentelemetry-proto's serde derives with
/// NaN and ±Infinity respelled by `nonfinite`: what [`Otlp`] must write byte for byte. For the
/// unit tests and the fuzz targets only.
#[doc(hidden)]
pub fn serde_rendering(out: &mut Vec<u8>, batch: &[ResourceSpans]) {
    if crate::format::span_count(batch) == 0 {
        return;
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Line<'a> {
        resource_spans: &'a [ResourceSpans],
    }
    let line = Line {
        resource_spans: batch,
    };
    if super::nonfinite::queue_resource_spans(batch) {
        let keeping = super::nonfinite::Keeping::new(super::nonfinite::Spelling::Proto3);
        let mut ser = serde_json::Serializer::with_formatter(&mut *out, keeping);
        serde::Serialize::serialize(&line, &mut ser).expect("serialising spans to memory");
        super::nonfinite::clear();
    } else {
        serde_json::to_writer(&mut *out, &line).expect("serialising spans to memory");
    }
    out.push(b'\n');
}

/// Whether [`Otlp`] writes `batch` exactly as [`serde_rendering`] does; `Err` shows both
/// renderings from the first byte that differs. For the unit tests and the fuzz targets.
#[doc(hidden)]
pub fn agrees_with_serde(batch: &[ResourceSpans]) -> Result<(), String> {
    let mut written = Vec::new();
    Otlp.write(&mut written, batch);
    let mut oracle = Vec::new();
    serde_rendering(&mut oracle, batch);
    if written == oracle {
        return Ok(());
    }
    let at = written
        .iter()
        .zip(&oracle)
        .take_while(|(a, b)| a == b)
        .count();
    let around = |b: &[u8]| {
        String::from_utf8_lossy(&b[at.saturating_sub(80)..b.len().min(at + 80)]).into_owned()
    };
    Err(format!(
        "the otlp writer and serde differ at byte {at}:\n writer: {}\n  serde: {}",
        around(&written),
        around(&oracle),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};

    fn any(v: Value) -> AnyValue {
        AnyValue { value: Some(v) }
    }

    fn agrees(batch: &[ResourceSpans]) {
        agrees_with_serde(batch).unwrap_or_else(|e| panic!("{e}"));
    }

    const AWKWARD: &str =
        "q\"b\\s/\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} \u{7f}é€😀\u{2028}\u{2029}";

    /// Every value kind, nested, with the doubles and strings serde_json spells its own way.
    fn attributes() -> Vec<KeyValue> {
        let scalars = vec![
            attr::string("s", AWKWARD),
            attr::string("", ""),
            attr::boolean("t", true),
            attr::boolean("f", false),
            attr::int("min", i64::MIN),
            attr::int("max", i64::MAX),
            attr::int("zero", 0),
            attr::double("nan", f64::NAN),
            attr::double("-nan", -f64::NAN),
            attr::double("inf", f64::INFINITY),
            attr::double("-inf", f64::NEG_INFINITY),
            attr::double("-0", -0.0),
            attr::double("0", 0.0),
            attr::double("third", 1.0 / 3.0),
            attr::double("tiny", 5e-324),
            attr::double("big", f64::MAX),
            attr::double("whole", 1e21),
            attr::kv("bytes", Value::BytesValue(vec![0, 255, 16, 62, 63])),
            attr::kv("bytes1", Value::BytesValue(vec![251])),
            attr::kv("nobytes", Value::BytesValue(vec![])),
            attr::kv("strindex", Value::StringValueStrindex(-3)),
            KeyValue {
                key: "no value".into(),
                value: None,
                key_strindex: 0,
            },
            KeyValue {
                key: "empty value".into(),
                value: Some(AnyValue { value: None }),
                key_strindex: 7,
            },
            KeyValue {
                key: String::new(),
                value: Some(any(Value::IntValue(1))),
                key_strindex: -1,
            },
        ];
        let array = Value::ArrayValue(ArrayValue {
            values: scalars
                .iter()
                .filter_map(|kv| kv.value.clone())
                .chain([
                    AnyValue { value: None },
                    any(Value::ArrayValue(ArrayValue { values: vec![] })),
                    any(Value::ArrayValue(ArrayValue {
                        values: vec![any(Value::DoubleValue(f64::NAN))],
                    })),
                    any(Value::KvlistValue(KeyValueList { values: vec![] })),
                ])
                .collect(),
        });
        let map = Value::KvlistValue(KeyValueList {
            values: scalars
                .iter()
                .cloned()
                .chain([
                    attr::kv("list", array.clone()),
                    attr::kv(
                        "inner",
                        Value::KvlistValue(KeyValueList {
                            values: vec![attr::double("inf", f64::INFINITY)],
                        }),
                    ),
                ])
                .collect(),
        });
        let mut all = scalars;
        all.push(attr::kv("list", array));
        all.push(attr::kv("map", map));
        all
    }

    /// Every field of every message set to something unusual, and every optional one absent.
    fn everything() -> Vec<ResourceSpans> {
        let full = Span {
            trace_id: (0..16).collect(),
            span_id: vec![0xff, 0, 0xa0, 1, 2, 3, 4, 0x0f],
            trace_state: "k=v,a\"b".into(),
            parent_span_id: vec![0xab; 8],
            flags: u32::MAX,
            name: AWKWARD.into(),
            kind: SpanKind::Consumer as i32,
            start_time_unix_nano: u64::MAX,
            end_time_unix_nano: 1_700_000_000_123_456_789,
            attributes: attributes(),
            dropped_attributes_count: u32::MAX,
            events: vec![
                Event {
                    time_unix_nano: 5,
                    name: "e\u{0}".into(),
                    attributes: attributes(),
                    dropped_attributes_count: 2,
                },
                Event::default(),
            ],
            dropped_events_count: 3,
            links: vec![
                Link {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    trace_state: "x=y".into(),
                    attributes: attributes(),
                    dropped_attributes_count: 4,
                    flags: 0x301,
                },
                Link::default(),
            ],
            dropped_links_count: 9,
            status: Some(Status {
                message: AWKWARD.into(),
                code: StatusCode::Error as i32,
            }),
        };
        let odd = Span {
            // Ids of no proper length, a kind and a status code outside their enums.
            trace_id: vec![7],
            span_id: vec![],
            kind: -1,
            status: Some(Status {
                message: String::new(),
                code: 99,
            }),
            ..Default::default()
        };
        vec![
            ResourceSpans {
                resource: Some(Resource {
                    attributes: attributes(),
                    dropped_attributes_count: 1,
                    entity_refs: vec![
                        EntityRef {
                            schema_url: "https://e/\"1".into(),
                            r#type: "host".into(),
                            id_keys: vec!["host.id".into(), AWKWARD.into()],
                            description_keys: vec!["host.name".into()],
                        },
                        EntityRef::default(),
                    ],
                }),
                scope_spans: vec![
                    ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "lib\\".into(),
                            version: "1.0\n".into(),
                            attributes: attributes(),
                            dropped_attributes_count: 6,
                        }),
                        spans: vec![full.clone(), odd],
                        schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
                    },
                    // Without scope, and without spans.
                    ScopeSpans {
                        scope: None,
                        spans: vec![Span::default()],
                        schema_url: String::new(),
                    },
                    ScopeSpans::default(),
                ],
                schema_url: AWKWARD.into(),
            },
            // Without resource.
            ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope::default()),
                    spans: vec![Span {
                        status: None,
                        ..full
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
            ResourceSpans {
                resource: Some(Resource::default()),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn every_field_and_value_is_written_as_serde_writes_it() {
        let batch = everything();
        agrees(&batch);
        for rs in &batch {
            agrees(std::slice::from_ref(rs));
        }
        // The awkward cases made it into the output.
        let mut out = Vec::new();
        Otlp.write(&mut out, &batch);
        let line = String::from_utf8(out).unwrap();
        for needle in [
            r#"{"doubleValue":"NaN"}"#,
            r#"{"doubleValue":"-Infinity"}"#,
            r#"{"doubleValue":-0.0}"#,
            r#"{"intValue":"-9223372036854775808"}"#,
            r#"{"bytesValue":"AP8QPj8="}"#,
            r#""value":null"#,
            r#""value":{}"#,
            r#""keyStrindex":7"#,
            r#""traceId":"07""#,
            r#""spanId":"""#,
            r#""resource":null"#,
            r#""scope":null"#,
            r#""status":null"#,
            r#""entityRefs":[{"schemaUrl""#,
            r#""startTimeUnixNano":"18446744073709551615""#,
            "\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \u{7f}é€😀\u{2028}",
        ] {
            assert!(line.contains(needle), "{needle} missing: {line}");
        }
    }

    /// Fragments share a line exactly when the proto types are equal, also where that differs
    /// from equal JSON: NaN is not equal to itself, 0.0 equals -0.0 (written differently), in the
    /// resource or the scope, nested or not; and no line holds more than `max` spans.
    #[test]
    fn lines_group_exactly_as_the_proto_types_compare() {
        let one = |x: f64, scope_x: f64, schema: &str| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    attr::string("host.name", "a"),
                    attr::kv(
                        "nested",
                        Value::ArrayValue(ArrayValue {
                            values: vec![any(Value::DoubleValue(x))],
                        }),
                    ),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "s".into(),
                    attributes: vec![attr::double("y", scope_x)],
                    ..Default::default()
                }),
                spans: vec![Span {
                    name: format!("{x} {scope_x}"),
                    ..Default::default()
                }],
                schema_url: schema.into(),
            }],
            ..Default::default()
        };
        let nan = f64::NAN;
        let cases = [
            (1.5, 1.0, ""),
            (1.5, 1.0, ""),
            (0.0, 1.0, ""),
            (-0.0, 1.0, ""),
            (0.0, 1.0, "other"),
            (nan, 1.0, ""),
            (nan, 1.0, ""),
            (2.0, 0.0, ""),
            (2.0, -0.0, ""),
            (2.0, nan, ""),
            (2.0, 1.0, ""),
            (2.0, 1.0, ""),
            (2.0, 1.0, ""),
        ];
        let spans: Vec<_> = cases.iter().map(|&(x, y, s)| one(x, y, s)).collect();
        for max in [1, 2, 512] {
            lines_agree_with_grouped_types(&spans, max).unwrap();
        }
        let mut out = Vec::new();
        let mut lines = Lines::new(512);
        let mut fragment = Vec::new();
        for rs in &spans {
            fragment.clear();
            super::fragment(&mut fragment, Parts::of(rs));
            lines.place(&mut out, &fragment).unwrap();
        }
        lines.flush(&mut out);
        let lines = out.split(|&b| b == b'\n').count() - 1;
        // 1.5 twice; ±0.0; another schema URL; NaN, NaN; ±0.0 in the scope; NaN; 1.0 thrice.
        assert_eq!(lines, 8);
    }

    /// A fragment cut short or otherwise wrong is an error, never a panic.
    #[test]
    fn a_corrupt_fragment_is_an_error() {
        let mut fragment = Vec::new();
        super::fragment(&mut fragment, Parts::of(&everything()[0]));
        crate::export::fragment::every_cut_is_an_error(&fragment, |cut| {
            Lines::new(512).place(&mut Vec::new(), cut)
        });
        let mut lines = Lines::new(512);
        assert!(lines.place(&mut Vec::new(), b"?").is_err());
    }

    #[test]
    fn a_batch_without_spans_writes_nothing() {
        let mut out = Vec::new();
        Otlp.write(&mut out, &[]);
        Otlp.write(&mut out, &[ResourceSpans::default()]);
        assert!(out.is_empty());
        agrees(&[ResourceSpans::default()]);
    }

    /// Every line of the fuzz corpora that reads, in whatever shape the readers leave it.
    #[test]
    fn every_corpus_line_is_written_as_serde_writes_it() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut parsed = 0;
        for target in ["otlp_line", "python_line", "span_file"] {
            for entry in std::fs::read_dir(root.join(target)).unwrap() {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                for line in data.split(|b| *b == b'\n') {
                    let Ok(traces) = crate::format::parse_line(line) else {
                        continue;
                    };
                    parsed += 1;
                    agrees_with_serde(&traces.resource_spans)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                }
            }
        }
        assert!(parsed >= 15, "only {parsed} corpus lines read");
    }
}
