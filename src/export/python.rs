//! The `python` line format's writer: one line per span, as OpenTelemetry Python's
//! `ReadableSpan.to_json(indent=None)` writes it, plus `instrumentation_scope` and nanosecond
//! times. Its reader, and the names both share, are `format::python`.

use super::nonfinite::{queue, Keeping, Spelling};
use super::SpanWriter;
use crate::format::python::{kind_name, status_name, trace_state_to_python};
use crate::format::time::IsoMicros;
use base64::prelude::{Engine, BASE64_STANDARD};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, Status};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

pub struct Python;

impl SpanWriter for Python {
    fn write(&mut self, out: &mut Vec<u8>, batch: &[ResourceSpans]) {
        for rs in batch {
            write_resource_spans(out, rs);
        }
    }
}

/// Appends one line (with trailing newline) per span of `rs`.
fn write_resource_spans(out: &mut Vec<u8>, rs: &ResourceSpans) {
    let empty_resource = Resource::default();
    let resource = rs.resource.as_ref().unwrap_or(&empty_resource);
    // Every line repeats the resource and scope; serialise them once per batch, not per span
    // (string escaping of attribute maps was the hottest part of the sink).
    let mut resource_json = Vec::with_capacity(256);
    let resource_out = ResourceOut {
        attributes: AttrsOut(&resource.attributes),
        schema_url: &rs.schema_url,
    };
    let mut ser =
        serde_json::Serializer::with_formatter(&mut resource_json, Keeping::new(Spelling::Bare));
    resource_out
        .serialize(&mut ser)
        .expect("serialising to memory");
    let empty_scope = InstrumentationScope::default();
    for ss in &rs.scope_spans {
        let scope = ss.scope.as_ref().unwrap_or(&empty_scope);
        let mut tail = Vec::with_capacity(resource_json.len() + 128);
        tail.extend_from_slice(b",\"resource\":");
        tail.extend_from_slice(&resource_json);
        tail.extend_from_slice(b",\"instrumentation_scope\":");
        let scope_out = ScopeOut {
            name: &scope.name,
            version: &scope.version,
            schema_url: &ss.schema_url,
            attributes: (!scope.attributes.is_empty()).then_some(AttrsOut(&scope.attributes)),
        };
        let mut ser =
            serde_json::Serializer::with_formatter(&mut tail, Keeping::new(Spelling::Bare));
        scope_out
            .serialize(&mut ser)
            .expect("serialising to memory");
        tail.extend_from_slice(b"}\n");
        for span in &ss.spans {
            write_span_fields(out, span);
            out.pop(); // the closing brace: resource and scope follow
            out.extend_from_slice(&tail);
        }
    }
}

/// The span's own fields as a JSON object (no resource, no scope).
fn write_span_fields(out: &mut Vec<u8>, span: &Span) {
    let line = PySpanOut {
        name: &span.name,
        context: ContextOut {
            trace_id: &span.trace_id,
            span_id: &span.span_id,
            trace_state: &span.trace_state,
        },
        kind: kind_name(span.kind),
        parent_id: (!span.parent_span_id.is_empty()).then_some(HexId(&span.parent_span_id)),
        start_time: Time(span.start_time_unix_nano),
        end_time: Time(span.end_time_unix_nano),
        status: StatusOut::from(span.status.as_ref()),
        attributes: AttrsOut(&span.attributes),
        events: span
            .events
            .iter()
            .map(|e| EventOut {
                name: &e.name,
                timestamp: Time(e.time_unix_nano),
                attributes: AttrsOut(&e.attributes),
            })
            .collect(),
        links: span
            .links
            .iter()
            .map(|l| LinkOut {
                context: ContextOut {
                    trace_id: &l.trace_id,
                    span_id: &l.span_id,
                    trace_state: &l.trace_state,
                },
                attributes: AttrsOut(&l.attributes),
            })
            .collect(),
    };
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, Keeping::new(Spelling::Bare));
    line.serialize(&mut ser)
        .expect("serialising a span to memory");
}

#[derive(Serialize)]
struct PySpanOut<'a> {
    name: &'a str,
    context: ContextOut<'a>,
    kind: &'static str,
    parent_id: Option<HexId<'a>>,
    start_time: Time,
    end_time: Time,
    status: StatusOut<'a>,
    attributes: AttrsOut<'a>,
    events: Vec<EventOut<'a>>,
    links: Vec<LinkOut<'a>>,
}

struct ContextOut<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    trace_state: &'a str,
}

impl Serialize for ContextOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("trace_id", &HexId(self.trace_id))?;
        m.serialize_entry("span_id", &HexId(self.span_id))?;
        m.serialize_entry("trace_state", &trace_state_to_python(self.trace_state))?;
        m.end()
    }
}

/// `0x` + lowercase hex, formatted on the stack (ids are at most 16 bytes).
struct HexId<'a>(&'a [u8]);

impl Serialize for HexId<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 2 + 2 * 32];
        buf[..2].copy_from_slice(b"0x");
        let bytes = &self.0[..self.0.len().min(32)];
        for (i, b) in bytes.iter().enumerate() {
            buf[2 + 2 * i] = DIGITS[(b >> 4) as usize];
            buf[3 + 2 * i] = DIGITS[(b & 15) as usize];
        }
        s.serialize_str(std::str::from_utf8(&buf[..2 + 2 * bytes.len()]).expect("ASCII hex"))
    }
}

#[derive(Serialize)]
struct StatusOut<'a> {
    status_code: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
}

impl<'a> From<Option<&'a Status>> for StatusOut<'a> {
    fn from(status: Option<&'a Status>) -> Self {
        let (code, description) = status
            .map(|s| (s.code, s.message.as_str()))
            .unwrap_or((0, ""));
        StatusOut {
            status_code: status_name(code),
            description,
        }
    }
}

#[derive(Serialize)]
struct EventOut<'a> {
    name: &'a str,
    timestamp: Time,
    attributes: AttrsOut<'a>,
}

#[derive(Serialize)]
struct LinkOut<'a> {
    context: ContextOut<'a>,
    attributes: AttrsOut<'a>,
}

#[derive(Serialize)]
struct ResourceOut<'a> {
    attributes: AttrsOut<'a>,
    schema_url: &'a str,
}

#[derive(Serialize)]
struct ScopeOut<'a> {
    name: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    schema_url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    attributes: Option<AttrsOut<'a>>,
}

struct AttrsOut<'a>(&'a [KeyValue]);

impl Serialize for AttrsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for kv in self.0 {
            m.serialize_entry(
                &kv.key,
                &AnyOut(kv.value.as_ref().and_then(|v| v.value.as_ref())),
            )?;
        }
        m.end()
    }
}

/// OTLP values as native JSON, as Python writes attribute values: non-finite doubles as Python's
/// `json` writes them (bare `NaN`, `Infinity`, `-Infinity`, see `nonfinite`). Bytes (which Python
/// attributes cannot hold) become base64 strings; use the otlp format when those must survive
/// exactly.
struct AnyOut<'a>(Option<&'a Value>);

impl Serialize for AnyOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_none(),
            Some(Value::StringValue(v)) => s.serialize_str(v),
            Some(Value::BoolValue(v)) => s.serialize_bool(*v),
            Some(Value::IntValue(v)) => s.serialize_i64(*v),
            Some(Value::DoubleValue(v)) => {
                if !v.is_finite() {
                    // Written by `Keeping` where serde_json writes this value's `null`.
                    queue(*v);
                }
                s.serialize_f64(*v)
            }
            Some(Value::BytesValue(v)) => s.serialize_str(&BASE64_STANDARD.encode(v)),
            Some(Value::ArrayValue(a)) => {
                let mut seq = s.serialize_seq(Some(a.values.len()))?;
                for v in &a.values {
                    seq.serialize_element(&AnyOut(v.value.as_ref()))?;
                }
                seq.end()
            }
            Some(Value::KvlistValue(l)) => AttrsOut(&l.values).serialize(s),
            // Dictionary references only exist inside profiles; there is no table to resolve them.
            Some(Value::StringValueStrindex(_)) => s.serialize_none(),
        }
    }
}

/// A span time, formatted where serde writes it, as OpenTelemetry Python writes it.
struct Time(u64);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&IsoMicros(self.0))
    }
}
