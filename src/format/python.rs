//! The `python` line format: one span per line, exactly as OpenTelemetry Python's
//! `ReadableSpan.to_json(indent=None)` writes it (bsb-otel's `jsonlines` exporter and replay),
//! plus `instrumentation_scope` and nanosecond times (DESIGN.md §4).

use super::time::{parse_iso, IsoTime};
use crate::ids::decode_hex_any;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::{Event, Link, SpanKind},
    status::StatusCode,
    ResourceSpans, ScopeSpans, Span, Status,
};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

// ---------------------------------------------------------------- writing

/// Appends one python-format line (with trailing newline) per span of `rs`.
pub fn write_resource_spans(out: &mut Vec<u8>, rs: &ResourceSpans) {
    let empty_resource = Resource::default();
    let resource = rs.resource.as_ref().unwrap_or(&empty_resource);
    // Every line repeats the resource and scope; serialise them once per batch, not per span
    // (string escaping of attribute maps was the hottest part of the sink).
    let mut resource_json = Vec::with_capacity(256);
    let resource_out = ResourceOut {
        attributes: AttrsOut(&resource.attributes),
        schema_url: &rs.schema_url,
    };
    serde_json::to_writer(&mut resource_json, &resource_out).expect("serialising to memory");
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
        serde_json::to_writer(&mut tail, &scope_out).expect("serialising to memory");
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
        start_time: Iso(span.start_time_unix_nano),
        end_time: Iso(span.end_time_unix_nano),
        status: StatusOut::from(span.status.as_ref()),
        attributes: AttrsOut(&span.attributes),
        events: span
            .events
            .iter()
            .map(|e| EventOut {
                name: &e.name,
                timestamp: Iso(e.time_unix_nano),
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
    serde_json::to_writer(&mut *out, &line).expect("serialising a span to memory");
}

#[derive(Serialize)]
struct PySpanOut<'a> {
    name: &'a str,
    context: ContextOut<'a>,
    kind: &'static str,
    parent_id: Option<HexId<'a>>,
    start_time: Iso,
    end_time: Iso,
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
        if self.trace_state.is_empty() {
            m.serialize_entry("trace_state", "[]")?;
        } else {
            m.serialize_entry("trace_state", &trace_state_to_python(self.trace_state))?;
        }
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

struct Iso(u64);

impl Serialize for Iso {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(IsoTime::new(self.0).as_str())
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
        let status_code = match StatusCode::try_from(code) {
            Ok(StatusCode::Ok) => "OK",
            Ok(StatusCode::Error) => "ERROR",
            _ => "UNSET",
        };
        StatusOut {
            status_code,
            description,
        }
    }
}

#[derive(Serialize)]
struct EventOut<'a> {
    name: &'a str,
    timestamp: Iso,
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

/// OTLP values as native JSON, as Python writes attribute values. Bytes (which Python attributes
/// cannot hold) become base64 strings, and non-finite doubles strings; use the otlp format when
/// those must survive exactly.
struct AnyOut<'a>(Option<&'a Value>);

impl Serialize for AnyOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_none(),
            Some(Value::StringValue(v)) => s.serialize_str(v),
            Some(Value::BoolValue(v)) => s.serialize_bool(*v),
            Some(Value::IntValue(v)) => s.serialize_i64(*v),
            Some(Value::DoubleValue(v)) if v.is_finite() => s.serialize_f64(*v),
            Some(Value::DoubleValue(v)) => s.serialize_str(if v.is_nan() {
                "NaN"
            } else if *v > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            }),
            Some(Value::BytesValue(v)) => s.serialize_str(&base64_encode(v)),
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

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Server) => "SpanKind.SERVER",
        Ok(SpanKind::Client) => "SpanKind.CLIENT",
        Ok(SpanKind::Producer) => "SpanKind.PRODUCER",
        Ok(SpanKind::Consumer) => "SpanKind.CONSUMER",
        // Python has no UNSPECIFIED kind; INTERNAL is its default.
        _ => "SpanKind.INTERNAL",
    }
}

fn kind_from_name(name: &str) -> Result<i32, String> {
    let bare = name.strip_prefix("SpanKind.").unwrap_or(name);
    Ok(match bare {
        "INTERNAL" => SpanKind::Internal,
        "SERVER" => SpanKind::Server,
        "CLIENT" => SpanKind::Client,
        "PRODUCER" => SpanKind::Producer,
        "CONSUMER" => SpanKind::Consumer,
        "UNSPECIFIED" => SpanKind::Unspecified,
        _ => return Err(format!("unknown span kind {name:?}")),
    } as i32)
}

/// W3C `k1=v1,k2=v2` → Python's `repr(TraceState)`: `['{key=k1, value=v1}', ...]`.
fn trace_state_to_python(w3c: &str) -> String {
    let items: Vec<String> = w3c
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| format!("'{{key={k}, value={v}}}'"))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Python's `repr(TraceState)` (or a plain W3C string) → W3C `k1=v1,k2=v2`.
fn trace_state_from_python(repr: &str) -> String {
    // What nearly every line holds.
    if repr == "[]" {
        return String::new();
    }
    let repr = repr.trim();
    let Some(inner) = repr.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return repr.to_string();
    };
    let mut pairs = Vec::new();
    let mut rest = inner;
    while let Some(start) = rest.find("{key=") {
        let after = &rest[start + 5..];
        let Some(mid) = after.find(", value=") else {
            break;
        };
        let key = &after[..mid];
        let value_part = &after[mid + 8..];
        let Some(end) = value_part.find('}') else {
            break;
        };
        pairs.push(format!("{key}={}", &value_part[..end]));
        rest = &value_part[end..];
    }
    pairs.join(",")
}

// ---------------------------------------------------------------- reading

/// A string borrowed from the line when it holds no escapes, owned otherwise.
struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

// Strings that are converted right away (ids, times, enums) are borrowed from the line when they
// hold no escapes, and the resource — half of every line, the same on every line of a rank file —
// is parsed once per distinct text: this is what makes `replay` fast.

#[derive(Deserialize)]
struct PySpanIn<'a> {
    name: String,
    #[serde(borrow)]
    context: ContextIn<'a>,
    #[serde(default, borrow)]
    kind: Option<Text<'a>>,
    #[serde(default, borrow)]
    parent_id: Option<Text<'a>>,
    #[serde(borrow)]
    start_time: Option<Text<'a>>,
    #[serde(borrow)]
    end_time: Option<Text<'a>>,
    #[serde(default, borrow)]
    status: Option<StatusIn<'a>>,
    #[serde(default)]
    attributes: Option<AttrsIn>,
    #[serde(default, borrow)]
    events: Option<Vec<EventIn<'a>>>,
    #[serde(default, borrow)]
    links: Option<Vec<LinkIn<'a>>>,
    #[serde(default, borrow)]
    resource: Option<&'a RawValue>,
    #[serde(default)]
    instrumentation_scope: Option<ScopeIn>,
}

#[derive(Deserialize)]
struct ContextIn<'a> {
    #[serde(borrow)]
    trace_id: Text<'a>,
    #[serde(borrow)]
    span_id: Text<'a>,
    #[serde(default, borrow)]
    trace_state: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct StatusIn<'a> {
    #[serde(borrow)]
    status_code: Text<'a>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct EventIn<'a> {
    name: String,
    #[serde(borrow)]
    timestamp: Text<'a>,
    #[serde(default)]
    attributes: Option<AttrsIn>,
}

#[derive(Deserialize)]
struct LinkIn<'a> {
    #[serde(borrow)]
    context: ContextIn<'a>,
    #[serde(default)]
    attributes: Option<AttrsIn>,
}

#[derive(Deserialize)]
struct ResourceIn {
    #[serde(default)]
    attributes: Option<AttrsIn>,
    #[serde(default)]
    schema_url: Option<String>,
}

#[derive(Deserialize)]
struct ScopeIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    schema_url: Option<String>,
    #[serde(default)]
    attributes: Option<AttrsIn>,
}

/// A JSON object of attributes, kept in file order, converted straight into OTLP key-values.
struct AttrsIn(Vec<KeyValue>);

impl<'de> Deserialize<'de> for AttrsIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AttrsIn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttrsIn, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(key) = map.next_key::<String>()? {
                    let AnyIn(value) = map.next_value()?;
                    out.push(KeyValue {
                        key,
                        value: Some(value),
                        ..Default::default()
                    });
                }
                Ok(AttrsIn(out))
            }
        }
        d.deserialize_map(V)
    }
}

struct AnyIn(AnyValue);

impl<'de> Deserialize<'de> for AnyIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn some(v: Value) -> AnyIn {
            AnyIn(AnyValue { value: Some(v) })
        }
        impl<'de> Visitor<'de> for V {
            type Value = AnyIn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an attribute value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<AnyIn, E> {
                Ok(some(Value::BoolValue(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AnyIn, E> {
                Ok(some(Value::IntValue(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AnyIn, E> {
                match i64::try_from(v) {
                    Ok(i) => Ok(some(Value::IntValue(i))),
                    Err(_) => Err(E::custom(format!(
                        "integer {v} does not fit a 64-bit signed attribute"
                    ))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<AnyIn, E> {
                Ok(some(Value::DoubleValue(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyIn, E> {
                Ok(some(Value::StringValue(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<AnyIn, E> {
                Ok(some(Value::StringValue(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<AnyIn, E> {
                Ok(AnyIn(AnyValue { value: None }))
            }
            fn visit_none<E: de::Error>(self) -> Result<AnyIn, E> {
                Ok(AnyIn(AnyValue { value: None }))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyIn, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(AnyIn(v)) = seq.next_element()? {
                    values.push(v);
                }
                Ok(some(Value::ArrayValue(ArrayValue { values })))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AnyIn, A::Error> {
                let AttrsIn(values) =
                    AttrsIn::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(some(Value::KvlistValue(KeyValueList { values })))
            }
        }
        d.deserialize_any(V)
    }
}

fn id<const N: usize>(field: &str, s: &str) -> Result<[u8; N], String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    decode_hex_any::<N>(digits)
        .filter(|id| id.iter().any(|b| *b != 0))
        .ok_or_else(|| format!("{field} {s:?} is not a non-zero {}-digit hex id", 2 * N))
}

fn attrs(a: Option<AttrsIn>) -> Vec<KeyValue> {
    a.map(|a| a.0).unwrap_or_default()
}

fn time(field: &str, s: Option<&str>) -> Result<u64, String> {
    let s = s.ok_or_else(|| format!("{field} is missing or null"))?;
    parse_iso(s).map_err(|e| format!("{field}: {e}"))
}

/// Distinct resources remembered per thread; a merged file of this many ranks still hits.
const RESOURCE_CACHE: usize = 4096;

/// Resources already parsed on this thread, by their JSON text, with their schema URL.
#[derive(Default)]
struct ResourceCache {
    parsed: HashMap<String, Arc<SharedResource>, BuildHasherDefault<TextHasher>>,
    /// The distinct text lengths in `parsed` (a few: rank files differ in a number or two),
    /// while there are at most [`RESOURCE_LENGTHS`] of them.
    lengths: Vec<usize>,
}

const RESOURCE_LENGTHS: usize = 8;

thread_local! {
    static RESOURCES: RefCell<ResourceCache> = RefCell::default();
}

/// A multiply-rotate hash (FxHash) over 8-byte words: resource texts are hashed for every line,
/// and SipHash cost more than the lookup. Span files are the user's own input, not an attacker's.
#[derive(Default)]
struct TextHasher(u64);

impl Hasher for TextHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        // Four independent lanes over 32-byte blocks, so the multiplications overlap: resource
        // texts are a few hundred bytes.
        let mut lanes = [self.0, self.0 ^ K, self.0.rotate_left(1), self.0 ^ 1];
        let mut blocks = bytes.chunks_exact(32);
        for block in &mut blocks {
            for (lane, w) in lanes.iter_mut().zip(block.chunks_exact(8)) {
                let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
                *lane = (lane.rotate_left(5) ^ w).wrapping_mul(K);
            }
        }
        let mut h = lanes[0]
            ^ lanes[1].rotate_left(16)
            ^ lanes[2].rotate_left(32)
            ^ lanes[3].rotate_left(48);
        let mut words = blocks.remainder().chunks_exact(8);
        for w in &mut words {
            let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            h = (h.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in words.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A python line's resource and its schema URL, parsed once per distinct text and shared by the
/// lines that carry it (see [`ResourceMode::Shared`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedResource {
    pub resource: Resource,
    pub schema_url: String,
}

/// What becomes of a python line's resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceMode {
    /// Copied into the `ResourceSpans`.
    Copy,
    /// Checked, not copied (`resource` is `None`): for passes that only validate and count.
    Skip,
    /// Checked and handed out shared, beside a `ResourceSpans` without it: lines of the same
    /// resource give the same `Arc`, so a consumer can group by it without comparing resources.
    Shared,
}

/// The resource of `json`, parsed only the first time this text is seen.
fn with_resource(json: &str) -> Result<Arc<SharedResource>, String> {
    RESOURCES.with_borrow_mut(|cache| {
        if let Some(found) = cache.parsed.get(json) {
            return Ok(found.clone());
        }
        let r: ResourceIn = serde_json::from_str(json).map_err(|e| format!("resource: {e}"))?;
        let out = Arc::new(SharedResource {
            resource: Resource {
                attributes: attrs(r.attributes),
                ..Default::default()
            },
            schema_url: r.schema_url.unwrap_or_default(),
        });
        if cache.parsed.len() >= RESOURCE_CACHE {
            cache.parsed.clear();
            cache.lengths.clear();
        }
        if !cache.lengths.contains(&json.len()) && cache.lengths.len() < RESOURCE_LENGTHS {
            cache.lengths.push(json.len());
        }
        cache.parsed.insert(json.to_string(), out.clone());
        Ok(out)
    })
}

/// The resource of the cached text that `rest` starts with, and that text's length. A cached text
/// is a whole JSON object (it parsed), so when the line continues with it, that is exactly the
/// resource value: no need to find where the value ends.
fn cached_resource(rest: &str) -> Option<(usize, Arc<SharedResource>)> {
    RESOURCES.with_borrow(|cache| {
        if cache.lengths.len() >= RESOURCE_LENGTHS {
            return None;
        }
        cache.lengths.iter().find_map(|&n| {
            let text = rest.get(..n).filter(|t| t.ends_with('}'))?;
            Some((n, cache.parsed.get(text)?.clone()))
        })
    })
}

/// A line's resource (`None`: the line has none, or null) as `mode` wants it: in the
/// `ResourceSpans` (with its schema URL) or shared beside it.
type Resolved = (Option<Resource>, String, Option<Arc<SharedResource>>);

fn resolve(found: Option<Arc<SharedResource>>, mode: ResourceMode) -> Resolved {
    match (found, mode) {
        (None, ResourceMode::Copy) => (Some(Resource::default()), String::new(), None),
        (_, ResourceMode::Skip) => (None, String::new(), None),
        (None, ResourceMode::Shared) => (None, String::new(), Some(Arc::default())),
        (Some(r), ResourceMode::Copy) => (Some(r.resource.clone()), r.schema_url.clone(), None),
        (Some(r), ResourceMode::Shared) => (None, String::new(), Some(r)),
    }
}

/// Parses one python-format line into a `ResourceSpans` holding exactly that span.
pub fn parse_line(line: &[u8]) -> Result<ResourceSpans, String> {
    parse(line, ResourceMode::Copy).map(|(rs, _)| rs)
}

/// Like [`parse_line`] for passes that only validate and count: the resource is checked but not
/// copied out (`resource` is `None`), which saves a fifth of the time.
pub fn parse_line_without_resource(line: &[u8]) -> Result<ResourceSpans, String> {
    parse(line, ResourceMode::Skip).map(|(rs, _)| rs)
}

/// Parses one python-format line, its resource as `mode` says (shared beside it, or not).
pub fn parse(
    line: &[u8],
    mode: ResourceMode,
) -> Result<(ResourceSpans, Option<Arc<SharedResource>>), String> {
    // One UTF-8 check for the whole line instead of one per string.
    let line = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
    match parse_fast(line, mode) {
        Some(parsed) => Ok(parsed),
        None => parse_serde(line, mode),
    }
}

/// Whether the scanner reads `line` (`Ok(false)`: it leaves it to serde) and, if it does,
/// whether it reads exactly what serde reads, with and without the resource copy (`Err` says
/// how they differ). For tests.
#[doc(hidden)]
pub fn scanner_agrees(line: &str) -> Result<bool, String> {
    let mut taken = Vec::new();
    for mode in [ResourceMode::Copy, ResourceMode::Skip, ResourceMode::Shared] {
        let fast = parse_fast(line, mode);
        if let Some(fast) = &fast {
            let serde = parse_serde(line, mode);
            if serde.as_ref() != Ok(fast) {
                return Err(format!("scanner: {fast:?}\nserde: {serde:?}\nline: {line}"));
            }
        }
        taken.push(fast.is_some());
    }
    match taken[..] {
        [a, b, c] if a == b && b == c => Ok(a),
        _ => Err(format!("taken in some resource modes only: {line}")),
    }
}

/// The reference reading of a python line: serde, with its error messages.
fn parse_serde(
    line: &str,
    mode: ResourceMode,
) -> Result<(ResourceSpans, Option<Arc<SharedResource>>), String> {
    let py: PySpanIn = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let trace_id = id::<16>("context.trace_id", &py.context.trace_id)?;
    let span_id = id::<8>("context.span_id", &py.context.span_id)?;
    let parent = match py.parent_id.as_deref() {
        None => Vec::new(),
        Some(p) => id::<8>("parent_id", p)?.to_vec(),
    };
    let kind = match py.kind.as_deref() {
        None => SpanKind::Internal as i32,
        Some(k) => kind_from_name(k)?,
    };
    let status = match py.status {
        None => None,
        Some(s) => {
            let code = match s
                .status_code
                .strip_prefix("StatusCode.")
                .unwrap_or(&s.status_code[..])
            {
                "UNSET" => StatusCode::Unset,
                "OK" => StatusCode::Ok,
                "ERROR" => StatusCode::Error,
                other => return Err(format!("unknown status_code {other:?}")),
            };
            Some(Status {
                code: code as i32,
                message: s.description.unwrap_or_default(),
            })
        }
    };
    let mut events = Vec::new();
    for e in py.events.unwrap_or_default() {
        events.push(Event {
            time_unix_nano: time("events[].timestamp", Some(&e.timestamp))?,
            name: e.name,
            attributes: attrs(e.attributes),
            dropped_attributes_count: 0,
        });
    }
    let mut links = Vec::new();
    for l in py.links.unwrap_or_default() {
        links.push(Link {
            trace_id: id::<16>("links[].context.trace_id", &l.context.trace_id)?.to_vec(),
            span_id: id::<8>("links[].context.span_id", &l.context.span_id)?.to_vec(),
            trace_state: trace_state_from_python(l.context.trace_state.as_deref().unwrap_or("")),
            attributes: attrs(l.attributes),
            dropped_attributes_count: 0,
            flags: 0,
        });
    }
    let span = Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        trace_state: trace_state_from_python(py.context.trace_state.as_deref().unwrap_or("")),
        parent_span_id: parent,
        flags: 0,
        name: py.name,
        kind,
        start_time_unix_nano: time("start_time", py.start_time.as_deref())?,
        end_time_unix_nano: time("end_time", py.end_time.as_deref())?,
        attributes: attrs(py.attributes),
        dropped_attributes_count: 0,
        events,
        dropped_events_count: 0,
        links,
        dropped_links_count: 0,
        status,
    };
    let found = match py.resource {
        None => None,
        Some(raw) => Some(with_resource(raw.get())?),
    };
    let (resource, resource_schema, shared) = resolve(found, mode);
    let (scope, scope_schema) = match py.instrumentation_scope {
        None => (InstrumentationScope::default(), String::new()),
        Some(s) => (
            InstrumentationScope {
                name: s.name.unwrap_or_default(),
                version: s.version.unwrap_or_default(),
                attributes: attrs(s.attributes),
                dropped_attributes_count: 0,
            },
            s.schema_url.unwrap_or_default(),
        ),
    };
    let rs = ResourceSpans {
        resource,
        scope_spans: vec![ScopeSpans {
            scope: Some(scope),
            spans: vec![span],
            schema_url: scope_schema,
        }],
        schema_url: resource_schema,
    };
    Ok((rs, shared))
}

// ---------------------------------------------------------------- fast reading

// The serde path above is the reference. Most lines are plain: the keys Python and otel-run
// write, strings without escapes. Those are read by a hand-written scanner straight into the
// proto types, borrowing from the line until a field is owned. Anything the scanner does not
// expect (an escape, an unknown or repeated key, any error at all) makes it give up, and the
// line is read again by serde: results and error messages are serde's whatever the line.

/// A cursor over a line that is valid UTF-8.
struct Scan<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// Bytes that may stand in a string the scanner reads: not a quote, backslash or control.
static PLAIN: [bool; 256] = {
    let mut t = [true; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = false;
        c += 1;
    }
    t[b'"' as usize] = false;
    t[b'\\' as usize] = false;
    t
};

/// The high bit of each byte of `w` (little-endian) that is a quote, a backslash or a control
/// character, and possibly of bytes after the first such byte (borrows): the lowest one is exact.
fn special_bytes(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let quote = w ^ (LO * b'"' as u64);
    let backslash = w ^ (LO * b'\\' as u64);
    (quote.wrapping_sub(LO) & !quote
        | backslash.wrapping_sub(LO) & !backslash
        | w.wrapping_sub(LO * 0x20) & !w)
        & HI
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && is_ws(self.b[self.i]) {
            self.i += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn word(&mut self, w: &[u8]) -> bool {
        self.ws();
        let hit = self.b[self.i..].starts_with(w);
        if hit {
            self.i += w.len();
        }
        hit
    }

    /// A string without escapes or control characters, borrowed from the line.
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        // Eight bytes at a time, then byte by byte: most strings are a few dozen bytes long, too
        // short for memchr to pay off.
        let mut i = start;
        while let Some(word) = self.b.get(i..i + 8) {
            let special = special_bytes(u64::from_le_bytes(word.try_into().expect("8 bytes")));
            if special != 0 {
                i += special.trailing_zeros() as usize / 8;
                break;
            }
            i += 8;
        }
        while i < self.b.len() && PLAIN[self.b[i] as usize] {
            i += 1;
        }
        if self.b.get(i) != Some(&b'"') {
            return None;
        }
        self.i = i + 1;
        // Both ends are next to an ASCII quote: character boundaries.
        Some(&self.s[start..i])
    }

    /// A string or null.
    fn opt_str(&mut self) -> Option<Option<&'a str>> {
        if self.word(b"null") {
            Some(None)
        } else {
            self.str().map(Some)
        }
    }

    /// An object: `f` reads the value of each key.
    fn object(&mut self, mut f: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.str()?;
            self.eat(b':')?;
            f(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array: `f` reads each element.
    fn array(&mut self, mut f: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            f(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An attribute object, or null (no attributes).
    fn attrs(&mut self) -> Option<Vec<KeyValue>> {
        if self.word(b"null") {
            return Some(Vec::new());
        }
        self.attr_map()
    }

    fn attr_map(&mut self) -> Option<Vec<KeyValue>> {
        let mut out = Vec::with_capacity(4);
        self.object(|s, key| {
            let value = s.any()?;
            out.push(KeyValue {
                key: key.to_string(),
                value: Some(value),
                ..Default::default()
            });
            Some(())
        })?;
        Some(out)
    }

    fn any(&mut self) -> Option<AnyValue> {
        let value = match self.peek()? {
            b'"' => Value::StringValue(self.str()?.to_string()),
            b't' if self.word(b"true") => Value::BoolValue(true),
            b'f' if self.word(b"false") => Value::BoolValue(false),
            b'n' if self.word(b"null") => return Some(AnyValue { value: None }),
            b'[' => {
                let mut values = Vec::with_capacity(4);
                self.array(|s| {
                    values.push(s.any()?);
                    Some(())
                })?;
                Value::ArrayValue(ArrayValue { values })
            }
            b'{' => Value::KvlistValue(KeyValueList {
                values: self.attr_map()?,
            }),
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return None,
        };
        Some(AnyValue { value: Some(value) })
    }

    /// A JSON number as serde_json reads it into an attribute: integers that fit i64 (but not
    /// `-0`, a double for serde_json) here, anything with a fraction or exponent through
    /// serde_json's own float parser, anything else (huge integers) left to the serde path.
    fn number(&mut self) -> Option<Value> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let neg = b[i] == b'-';
        if neg {
            i += 1;
        }
        let digits = |mut i: usize| {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            i
        };
        let int_start = i;
        i = digits(i);
        let int_end = i;
        if int_end == int_start || (b[int_start] == b'0' && int_end - int_start > 1) {
            return None;
        }
        if matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
            if b[i] == b'.' {
                let frac = i + 1;
                i = digits(frac);
                if i == frac {
                    return None;
                }
            }
            if matches!(b.get(i), Some(b'e' | b'E')) {
                i += 1;
                if matches!(b.get(i), Some(b'+' | b'-')) {
                    i += 1;
                }
                let exp = i;
                i = digits(exp);
                if i == exp {
                    return None;
                }
            }
            let v: f64 = serde_json::from_str(&self.s[start..i]).ok()?;
            self.i = i;
            return Some(Value::DoubleValue(v));
        }
        let n = b[int_start..int_end].iter().try_fold(0u64, |n, &c| {
            n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        })?;
        let v = match neg {
            false => i64::try_from(n).ok()?,
            true if n == 0 || n > 1 << 63 => return None,
            true => (n as i64).wrapping_neg(),
        };
        self.i = i;
        Some(Value::IntValue(v))
    }

    /// `context{trace_id, span_id, trace_state?}`.
    fn context(&mut self) -> Option<(&'a str, &'a str, Option<&'a str>)> {
        let (mut trace, mut span, mut state) = (None, None, None);
        self.object(|s, key| {
            match key {
                "trace_id" if trace.is_none() => trace = Some(s.str()?),
                "span_id" if span.is_none() => span = Some(s.str()?),
                "trace_state" if state.is_none() => state = Some(s.opt_str()?),
                _ => return None,
            }
            Some(())
        })?;
        Some((trace?, span?, state.flatten()))
    }

    /// The text of an object value, for the resource cache: its end is found by matching braces
    /// outside strings. Whether it is valid JSON is for `with_resource` to check (it parses every
    /// text the first time it sees it).
    fn raw_object(&mut self) -> Option<&'a str> {
        let b = self.b;
        if self.peek()? != b'{' {
            return None;
        }
        let start = self.i;
        let mut i = start;
        let mut depth = 0usize;
        loop {
            let j = i + memchr::memchr3(b'"', b'{', b'}', &b[i..])?;
            match b[j] {
                b'"' => {
                    let mut k = j + 1;
                    loop {
                        let q = k + memchr::memchr2(b'"', b'\\', b.get(k..)?)?;
                        k = q + if b[q] == b'\\' { 2 } else { 1 };
                        if b[q] == b'"' {
                            break;
                        }
                    }
                    i = k;
                }
                b'{' => {
                    depth += 1;
                    i = j + 1;
                }
                _ => {
                    depth -= 1;
                    i = j + 1;
                    if depth == 0 {
                        break;
                    }
                }
            }
        }
        self.i = i;
        Some(&self.s[start..i])
    }
}

/// Marks `bit` as seen; `None` when it was already (a repeated key: serde reports it).
fn once(seen: &mut u32, bit: u32) -> Option<()> {
    let first = *seen & bit == 0;
    *seen |= bit;
    first.then_some(())
}

/// The scanner's reading of a python line; `None` leaves the line to the serde path.
fn parse_fast(
    line: &str,
    mode: ResourceMode,
) -> Option<(ResourceSpans, Option<Arc<SharedResource>>)> {
    let mut s = Scan {
        s: line,
        b: line.as_bytes(),
        i: 0,
    };
    let mut seen = 0u32;
    let mut span = Span::default();
    let mut context = None;
    let mut kind = None;
    let mut parent = None;
    let (mut start, mut end) = (None, None);
    let mut resource = None;
    let mut scope = None;
    s.object(|s, key| {
        match key {
            "name" => {
                once(&mut seen, 1)?;
                span.name = s.str()?.to_string();
            }
            "context" => {
                once(&mut seen, 2)?;
                context = Some(s.context()?);
            }
            "kind" => {
                once(&mut seen, 4)?;
                kind = s.opt_str()?;
            }
            "parent_id" => {
                once(&mut seen, 8)?;
                parent = s.opt_str()?;
            }
            "start_time" => {
                once(&mut seen, 16)?;
                start = s.opt_str()?;
            }
            "end_time" => {
                once(&mut seen, 32)?;
                end = s.opt_str()?;
            }
            "status" => {
                once(&mut seen, 64)?;
                if !s.word(b"null") {
                    let (mut code, mut description) = (None, None);
                    s.object(|s, key| {
                        match key {
                            "status_code" if code.is_none() => code = Some(s.str()?),
                            "description" if description.is_none() => {
                                description = Some(s.opt_str()?)
                            }
                            _ => return None,
                        }
                        Some(())
                    })?;
                    let code = match code?.strip_prefix("StatusCode.").unwrap_or(code?) {
                        "UNSET" => StatusCode::Unset,
                        "OK" => StatusCode::Ok,
                        "ERROR" => StatusCode::Error,
                        _ => return None,
                    };
                    span.status = Some(Status {
                        code: code as i32,
                        message: description.flatten().unwrap_or("").to_string(),
                    });
                }
            }
            "attributes" => {
                once(&mut seen, 128)?;
                span.attributes = s.attrs()?;
            }
            "events" => {
                once(&mut seen, 256)?;
                if !s.word(b"null") {
                    s.array(|s| {
                        let (mut name, mut timestamp, mut attributes) = (None, None, None);
                        s.object(|s, key| {
                            match key {
                                "name" if name.is_none() => name = Some(s.str()?),
                                "timestamp" if timestamp.is_none() => timestamp = Some(s.str()?),
                                "attributes" if attributes.is_none() => {
                                    attributes = Some(s.attrs()?)
                                }
                                _ => return None,
                            }
                            Some(())
                        })?;
                        span.events.push(Event {
                            time_unix_nano: parse_iso(timestamp?).ok()?,
                            name: name?.to_string(),
                            attributes: attributes.unwrap_or_default(),
                            dropped_attributes_count: 0,
                        });
                        Some(())
                    })?;
                }
            }
            "links" => {
                once(&mut seen, 512)?;
                if !s.word(b"null") {
                    s.array(|s| {
                        let (mut context, mut attributes) = (None, None);
                        s.object(|s, key| {
                            match key {
                                "context" if context.is_none() => context = Some(s.context()?),
                                "attributes" if attributes.is_none() => {
                                    attributes = Some(s.attrs()?)
                                }
                                _ => return None,
                            }
                            Some(())
                        })?;
                        let (trace, span_id, state) = context?;
                        span.links.push(Link {
                            trace_id: id::<16>("", trace).ok()?.to_vec(),
                            span_id: id::<8>("", span_id).ok()?.to_vec(),
                            trace_state: trace_state_from_python(state.unwrap_or("")),
                            attributes: attributes.unwrap_or_default(),
                            dropped_attributes_count: 0,
                            flags: 0,
                        });
                        Some(())
                    })?;
                }
            }
            "resource" => {
                once(&mut seen, 1024)?;
                if s.word(b"null") {
                } else if let Some((len, found)) =
                    s.peek().and_then(|_| cached_resource(&s.s[s.i..]))
                {
                    s.i += len;
                    resource = Some(Ok(found));
                } else {
                    resource = Some(Err(s.raw_object()?));
                }
            }
            "instrumentation_scope" => {
                once(&mut seen, 2048)?;
                if !s.word(b"null") {
                    let mut sc = InstrumentationScope::default();
                    let mut schema = None;
                    let mut got = 0u32;
                    s.object(|s, key| {
                        let field = match key {
                            "name" => {
                                once(&mut got, 1)?;
                                &mut sc.name
                            }
                            "version" => {
                                once(&mut got, 2)?;
                                &mut sc.version
                            }
                            "schema_url" => {
                                once(&mut got, 4)?;
                                schema.get_or_insert_with(String::new)
                            }
                            "attributes" => {
                                once(&mut got, 8)?;
                                sc.attributes = s.attrs()?;
                                return Some(());
                            }
                            _ => return None,
                        };
                        if let Some(v) = s.opt_str()? {
                            *field = v.to_string();
                        }
                        Some(())
                    })?;
                    scope = Some((sc, schema.unwrap_or_default()));
                }
            }
            _ => return None,
        }
        Some(())
    })?;
    s.ws();
    if s.i != s.b.len() || seen & 3 != 3 {
        return None;
    }
    let (trace, span_id, state) = context?;
    span.trace_id = id::<16>("", trace).ok()?.to_vec();
    span.span_id = id::<8>("", span_id).ok()?.to_vec();
    span.trace_state = trace_state_from_python(state.unwrap_or(""));
    if let Some(p) = parent {
        span.parent_span_id = id::<8>("", p).ok()?.to_vec();
    }
    span.kind = match kind {
        None => SpanKind::Internal as i32,
        Some(k) => kind_from_name(k).ok()?,
    };
    span.start_time_unix_nano = parse_iso(start?).ok()?;
    span.end_time_unix_nano = parse_iso(end?).ok()?;
    let found = match resource {
        None => None,
        Some(Ok(found)) => Some(found),
        Some(Err(raw)) => Some(with_resource(raw).ok()?),
    };
    let (resource, resource_schema, shared) = resolve(found, mode);
    let (scope, scope_schema) = scope.unwrap_or_default();
    let rs = ResourceSpans {
        resource,
        scope_spans: vec![ScopeSpans {
            scope: Some(scope),
            spans: vec![span],
            schema_url: scope_schema,
        }],
        schema_url: resource_schema,
    };
    Some((rs, shared))
}

/// Standard base64 with padding (what Python's `base64.b64encode` writes).
fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_state_round_trips_through_python_repr() {
        assert_eq!(trace_state_to_python(""), "[]");
        assert_eq!(
            trace_state_to_python("a=1,b=x y"),
            "['{key=a, value=1}', '{key=b, value=x y}']"
        );
        assert_eq!(
            trace_state_from_python("['{key=a, value=1}', '{key=b, value=x y}']"),
            "a=1,b=x y"
        );
        assert_eq!(trace_state_from_python("[]"), "");
        assert_eq!(trace_state_from_python("a=1"), "a=1");
    }

    #[test]
    fn base64_matches_python() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn escaped_strings_and_repeated_resources_read_the_same() {
        let line = |trace: &str, rank: u32| {
            format!(
                r#"{{"name":"x","context":{{"trace_id":"{trace}","span_id":"0x0000000000000001"}},"kind":"SpanKind.\u0053ERVER","start_time":"2024-01-01T00:00:00Z","end_time":"2024-01-01T00:00:01Z","resource":{{"attributes":{{"mpi.rank":{rank}}},"schema_url":"s"}}}}"#
            )
        };
        let plain = parse_line(line("0x0af7651916cd43dd8448eb211c80319c", 0).as_bytes()).unwrap();
        let escaped =
            parse_line(line("\\u0030x0af7651916cd43dd8448eb211c80319c", 0).as_bytes()).unwrap();
        assert_eq!(plain, escaped);
        assert_eq!(plain.scope_spans[0].spans[0].kind, SpanKind::Server as i32);
        // The resource cache hands back each line's own resource.
        for rank in [1, 0, 1] {
            let rs =
                parse_line(line("0x0af7651916cd43dd8448eb211c80319c", rank).as_bytes()).unwrap();
            let attrs = &rs.resource.unwrap().attributes;
            assert_eq!(crate::attr::get_int(attrs, "mpi.rank"), Some(rank as i64));
            assert_eq!(rs.schema_url, "s");
        }
    }

    /// Every line `parse_line` reads gives what serde gives: through the scanner when it takes
    /// the line (and then field for field the same), through serde itself otherwise.
    fn same_as_serde(line: &str) -> bool {
        let taken = scanner_agrees(line).unwrap();
        for mode in [ResourceMode::Copy, ResourceMode::Skip, ResourceMode::Shared] {
            assert_eq!(
                parse(line.as_bytes(), mode),
                parse_serde(line, mode),
                "{line}"
            );
        }
        // Shared: the same resource as copied, beside a ResourceSpans that is otherwise the same.
        if let (Ok((copied, _)), Ok((mut bare, Some(shared)))) = (
            parse(line.as_bytes(), ResourceMode::Copy),
            parse(line.as_bytes(), ResourceMode::Shared),
        ) {
            bare.resource = Some(shared.resource.clone());
            bare.schema_url = shared.schema_url.clone();
            assert_eq!(bare, copied, "{line}");
        }
        taken
    }

    /// The same line with Python's separators (`", "`, `": "`), keys in another order (serde_json's
    /// map sorts them), and spread over several lines.
    fn variants(line: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let python = line.replace("\",\"", "\", \"").replace("\":", "\": ");
        vec![
            line.to_string(),
            python,
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string_pretty(&v).unwrap(),
        ]
    }

    #[test]
    fn scanner_reads_what_serde_reads() {
        use crate::format::tests::sample;
        let mut written = Vec::new();
        let mut rs = sample();
        let span = &mut rs.scope_spans[0].spans[0];
        let extra = [
            ("neg", Value::IntValue(i64::MIN + 1)),
            ("max", Value::IntValue(i64::MAX)),
            ("zero", Value::IntValue(0)),
            ("tiny", Value::DoubleValue(5e-324)),
            ("third", Value::DoubleValue(1.0 / 3.0)),
            ("big", Value::DoubleValue(1.7976931348623157e308)),
            ("negd", Value::DoubleValue(-0.1)),
            ("nan", Value::DoubleValue(f64::NAN)),
            ("unicode", Value::StringValue("é✓ 𝄞 \u{7f}".into())),
            ("empty", Value::StringValue(String::new())),
            ("bytes", Value::BytesValue(vec![0, 1, 255])),
            ("f", Value::BoolValue(false)),
        ];
        for (k, v) in extra {
            span.attributes.push(KeyValue {
                key: k.into(),
                value: Some(AnyValue { value: Some(v) }),
                ..Default::default()
            });
        }
        span.name = "plain name ✓".into();
        let mut second = span.clone();
        second.parent_span_id.clear();
        second.status = None;
        second.events.clear();
        second.links.clear();
        rs.scope_spans[0].spans.push(second);
        write_resource_spans(&mut written, &rs);
        let written = String::from_utf8(written).unwrap();
        let mut lines: Vec<&str> = written.lines().collect();
        // Python's own layout, nulls and a line without resource, scope or optional fields.
        let python = r#"{"name": "a", "context": {"trace_id": "0x0af7651916cd43dd8448eb211c80319c", "span_id": "0x00f067aa0ba902b7", "trace_state": "[]"}, "kind": "SpanKind.SERVER", "parent_id": null, "start_time": "2024-01-01T00:00:00.000001Z", "end_time": "2024-01-01T00:00:01+02:00", "status": {"status_code": "ERROR", "description": "boom"}, "attributes": {"xs": [1, 2.5, "s", true, null, [], {}], "n": null}, "events": [{"name": "e", "timestamp": "2024-01-01T00:00:00.5Z", "attributes": {}}], "links": [{"context": {"trace_id": "0x0af7651916cd43dd8448eb211c80319d", "span_id": "0x00f067aa0ba902b8", "trace_state": "['{key=a, value=1}']"}, "attributes": {"k": "v"}}], "resource": {"attributes": {"service.name": "x", "nested": {"a": [1, {"b": "}{"}]}}, "schema_url": "https://s"}}"#;
        let bare = r#"{"name":"b","context":{"trace_id":"0x0af7651916cd43dd8448eb211c80319c","span_id":"0x00f067aa0ba902b7"},"start_time":"2024-01-01T00:00:00Z","end_time":"2024-01-01T00:00:00Z"}"#;
        let nulls = r#"{"name":"c","context":{"trace_id":"0x0af7651916cd43dd8448eb211c80319c","span_id":"0x00f067aa0ba902b7","trace_state":null},"kind":null,"parent_id":null,"start_time":"2024-01-01T00:00:00Z","end_time":"2024-01-01T00:00:00Z","status":null,"attributes":null,"events":null,"links":null,"resource":null,"instrumentation_scope":null}"#;
        lines.extend([python, bare, nulls]);
        for line in lines {
            for variant in variants(line) {
                assert!(same_as_serde(&variant), "the scanner declined {variant}");
                // Twice: the second time the resource comes from the cache.
                assert!(same_as_serde(&variant), "the scanner declined {variant}");
            }
        }
        // Left to serde (escapes, unknown or repeated keys, numbers it reads its own way) or bad.
        let mut escaped = Vec::new();
        write_resource_spans(&mut escaped, &crate::format::tests::sample());
        let good = bare;
        let odd = [
            String::from_utf8(escaped).unwrap().trim_end().to_string(),
            good.replace(r#""b""#, r#""b\"q\u00e9""#),
            good.replace(r#""0x0af7"#, r#""\u0030x0af7"#),
            good.replace(r#""name":"b""#, r#""name":"b","unknown":[1,{"x":null}]"#),
            good.replace(r#""name":"b""#, r#""name":"b","name":"c""#),
            good.replace(r#""name":"b""#, r#""name":"b","attributes":{"z":-0}"#),
            good.replace(
                r#""name":"b""#,
                r#""name":"b","attributes":{"z":-0.0,"e":1E3}"#,
            ),
            good.replace(
                r#""name":"b""#,
                r#""name":"b","attributes":{"z":9223372036854775808}"#,
            ),
            good.replace(
                r#""name":"b""#,
                r#""name":"b","attributes":{"z":99999999999999999999999}"#,
            ),
            good.replace(
                r#""name":"b""#,
                r#""name":"b","attributes":{"z":-9223372036854775809}"#,
            ),
            good.replace(r#""name":"b""#, r#""name":"b","attributes":{"z":1e400}"#),
            good.replace(r#""name":"b""#, r#""name":"b","attributes":{"z":01}"#),
            good.replace(r#""name":"b""#, r#""name":"b","attributes":{"z":1.}"#),
            good.replace(r#""name":"b""#, r#""name":"b","attributes":{"z":tru}"#),
            good.replace(r#""b""#, "\"b\tc\""),
            good.replace(r#""b""#, r#"null"#),
            good.replace(r#""name":"b","#, ""),
            good.replace(
                r#""span_id":"0x00f067aa0ba902b7""#,
                r#""span_id":"0x0000000000000000""#,
            ),
            good.replace("00:00:00Z\"}", "00:00:00\"}x"),
            good.replace("00:00:00Z\"}", "00:00:00\"}}"),
            good.replace(
                "00:00:00Z\"}",
                "00:00:00Z\",\"resource\":{\"attributes\":{\"a\":1},\"x\":[}]}",
            ),
            good.replace(
                "00:00:00Z\"}",
                "00:00:00Z\",\"resource\":{\"attributes\":{\"a\":\"}\\\"\"}}}",
            ),
            good.replace(
                "00:00:00Z\"}",
                "00:00:00Z\",\"resource\":{\"attributes\":5}}",
            ),
            good.replace(
                "00:00:00Z\"}",
                "00:00:00Z\",\"resource\":{\"attributes\":{}}",
            ),
            good.replace(
                "00:00:00Z\"}",
                "00:00:00Z\",\"instrumentation_scope\":{\"name\":\"n\",\"name\":\"m\"}}",
            ),
            good.replace(
                "00:00:00Z\"}",
                "00:00:00Z\",\"status\":{\"status_code\":\"MAYBE\"}}",
            ),
            good.replace("00:00:00Z\"}", "00:00:00Z\",\"events\":[{\"name\":\"e\"}]}"),
            good.replace("2024-01-01T00:00:00Z", "2024-13-01T00:00:00Z"),
            good[..good.len() - 1].to_string(),
            "[1,2]".to_string(),
            "{}".to_string(),
        ];
        for line in &odd {
            same_as_serde(line);
        }
    }

    #[test]
    fn reports_what_is_wrong() {
        let cases = [
            (r#"{"name":"x"}"#, "missing field `context`"),
            (
                r#"{"name":"x","context":{"trace_id":"0xzz","span_id":"0x0000000000000001"},"start_time":"2024-01-01T00:00:00Z","end_time":"2024-01-01T00:00:00Z"}"#,
                "context.trace_id",
            ),
            (
                r#"{"name":"x","context":{"trace_id":"0x00000000000000000000000000000001","span_id":"0x0000000000000001"},"start_time":null,"end_time":"2024-01-01T00:00:00Z"}"#,
                "start_time is missing",
            ),
            (
                r#"{"name":"x","context":{"trace_id":"0x00000000000000000000000000000001","span_id":"0x0000000000000001"},"kind":"SpanKind.WEIRD","start_time":"2024-01-01T00:00:00Z","end_time":"2024-01-01T00:00:00Z"}"#,
                "unknown span kind",
            ),
            (r#"{"name":5}"#, "invalid type"),
        ];
        for (line, want) in cases {
            let err = parse_line(line.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{line}: got {err}");
        }
    }
}
