//! The `otlp` line format: one `TracesData` per line in OTLP/JSON (the OpenTelemetry Collector's
//! file exporter and `otlpjsonfile` receiver format). Read here with shapes of our own rather than
//! the generated serde of `opentelemetry-proto`, because real files hold what proto3 JSON allows
//! and that serde refuses: enum names (`"SPAN_KIND_SERVER"`), 64-bit integers as strings or
//! numbers, `"doubleValue":"NaN"` / `"Infinity"` / `"-Infinity"` (and the Collector's `"+Inf"` /
//! `"-Inf"`), empty `"arrayValue":{}` / `"kvlistValue":{}`, `entityRefs` without `schemaUrl`,
//! uppercase hex. Unknown fields are ignored, as OTLP/JSON says. Its writer is `export::otlp`.

use super::python::read::Text;
use super::repair;
use crate::ids::decode_hex_any;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::{Event, Link},
    ResourceSpans, ScopeSpans, Span, Status, TracesData,
};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Parses one otlp-format line and checks what defaults would let through silently (ids).
pub fn parse_line(line: &[u8]) -> Result<TracesData, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
    let data: TracesIn = repair::tolerant(text, true, |text| {
        serde_json::from_str(text).map_err(|e| e.to_string())
    })?;
    let data = TracesData {
        resource_spans: data.resource_spans,
    };
    for rs in &data.resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                check_id("traceId", &span.trace_id, 16)?;
                check_id("spanId", &span.span_id, 8)?;
                if !span.parent_span_id.is_empty() {
                    check_id("parentSpanId", &span.parent_span_id, 8)?;
                }
                for link in &span.links {
                    check_id("links[].traceId", &link.trace_id, 16)?;
                    check_id("links[].spanId", &link.span_id, 8)?;
                }
            }
        }
    }
    Ok(data)
}

fn check_id(field: &str, id: &[u8], len: usize) -> Result<(), String> {
    if id.len() != len {
        return Err(format!(
            "{field} must be {} hex digits, found {}",
            2 * len,
            2 * id.len()
        ));
    }
    if id.iter().all(|b| *b == 0) {
        return Err(format!("{field} is all zeroes"));
    }
    Ok(())
}

// ---------------------------------------------------------------- the shapes of a line

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TracesIn {
    #[serde(default, deserialize_with = "resource_spans")]
    resource_spans: Vec<ResourceSpans>,
}

fn resource_spans<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ResourceSpans>, D::Error> {
    let v: Option<Vec<ResourceSpansIn>> = Deserialize::deserialize(d)?;
    Ok(v.unwrap_or_default()
        .into_iter()
        .map(|rs| ResourceSpans {
            resource: rs.resource.map(|r| Resource {
                attributes: r.attributes.0,
                dropped_attributes_count: r.dropped_attributes_count.0,
                entity_refs: r
                    .entity_refs
                    .unwrap_or_default()
                    .into_iter()
                    .map(|e| EntityRef {
                        schema_url: e.schema_url.unwrap_or_default(),
                        r#type: e.r#type.unwrap_or_default(),
                        id_keys: e.id_keys.unwrap_or_default(),
                        description_keys: e.description_keys.unwrap_or_default(),
                    })
                    .collect(),
            }),
            scope_spans: rs
                .scope_spans
                .unwrap_or_default()
                .into_iter()
                .map(|ss| ScopeSpans {
                    scope: ss.scope.map(|s| InstrumentationScope {
                        name: s.name.unwrap_or_default(),
                        version: s.version.unwrap_or_default(),
                        attributes: s.attributes.0,
                        dropped_attributes_count: s.dropped_attributes_count.0,
                    }),
                    spans: ss.spans.unwrap_or_default(),
                    schema_url: ss.schema_url.unwrap_or_default(),
                })
                .collect(),
            schema_url: rs.schema_url.unwrap_or_default(),
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpansIn {
    #[serde(default)]
    resource: Option<ResourceIn>,
    #[serde(default)]
    scope_spans: Option<Vec<ScopeSpansIn>>,
    #[serde(default)]
    schema_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceIn {
    #[serde(default)]
    attributes: Attrs,
    #[serde(default)]
    dropped_attributes_count: Num32,
    #[serde(default)]
    entity_refs: Option<Vec<EntityRefIn>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntityRefIn {
    #[serde(default)]
    schema_url: Option<String>,
    #[serde(default)]
    r#type: Option<String>,
    #[serde(default)]
    id_keys: Option<Vec<String>>,
    #[serde(default)]
    description_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeSpansIn {
    #[serde(default)]
    scope: Option<ScopeIn>,
    #[serde(default, deserialize_with = "spans")]
    spans: Option<Vec<Span>>,
    #[serde(default)]
    schema_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    attributes: Attrs,
    #[serde(default)]
    dropped_attributes_count: Num32,
}

fn spans<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Span>>, D::Error> {
    let v: Option<Vec<SpanIn>> = Deserialize::deserialize(d)?;
    Ok(v.map(|v| v.into_iter().map(SpanIn::into_span).collect()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpanIn<'a> {
    #[serde(default, borrow)]
    trace_id: Option<Text<'a>>,
    #[serde(default, borrow)]
    span_id: Option<Text<'a>>,
    #[serde(default)]
    trace_state: Option<String>,
    #[serde(default, borrow)]
    parent_span_id: Option<Text<'a>>,
    #[serde(default)]
    flags: Num32,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    kind: Enum<Kind>,
    #[serde(default)]
    start_time_unix_nano: Num,
    #[serde(default)]
    end_time_unix_nano: Num,
    #[serde(default)]
    attributes: Attrs,
    #[serde(default)]
    dropped_attributes_count: Num32,
    #[serde(default, borrow)]
    events: Option<Vec<EventIn<'a>>>,
    #[serde(default)]
    dropped_events_count: Num32,
    #[serde(default, borrow)]
    links: Option<Vec<LinkIn<'a>>>,
    #[serde(default)]
    dropped_links_count: Num32,
    #[serde(default)]
    status: Option<StatusIn>,
}

impl SpanIn<'_> {
    fn into_span(self) -> Span {
        Span {
            trace_id: hex(self.trace_id.as_deref()),
            span_id: hex(self.span_id.as_deref()),
            trace_state: self.trace_state.unwrap_or_default(),
            parent_span_id: hex(self.parent_span_id.as_deref()),
            flags: self.flags.0,
            name: self.name.unwrap_or_default(),
            kind: self.kind.0,
            start_time_unix_nano: self.start_time_unix_nano.0,
            end_time_unix_nano: self.end_time_unix_nano.0,
            attributes: self.attributes.0,
            dropped_attributes_count: self.dropped_attributes_count.0,
            events: self
                .events
                .unwrap_or_default()
                .into_iter()
                .map(|e| Event {
                    time_unix_nano: e.time_unix_nano.0,
                    name: e.name.unwrap_or_default(),
                    attributes: e.attributes.0,
                    dropped_attributes_count: e.dropped_attributes_count.0,
                })
                .collect(),
            dropped_events_count: self.dropped_events_count.0,
            links: self
                .links
                .unwrap_or_default()
                .into_iter()
                .map(|l| Link {
                    trace_id: hex(l.trace_id.as_deref()),
                    span_id: hex(l.span_id.as_deref()),
                    trace_state: l.trace_state.unwrap_or_default(),
                    attributes: l.attributes.0,
                    dropped_attributes_count: l.dropped_attributes_count.0,
                    flags: l.flags.0,
                })
                .collect(),
            dropped_links_count: self.dropped_links_count.0,
            status: self.status.map(|s| Status {
                message: s.message.unwrap_or_default(),
                code: s.code.0,
            }),
        }
    }
}

/// Hex ids, either case. A malformed id decodes to nothing and `check_id` names the field.
fn hex(s: Option<&str>) -> Vec<u8> {
    match s {
        None | Some("") => Vec::new(),
        Some(s) => match s.len() {
            32 => decode_hex_any::<16>(s).map(|b| b.to_vec()),
            16 => decode_hex_any::<8>(s).map(|b| b.to_vec()),
            _ => None,
        }
        // Keeps the length so the error says how many digits there were.
        .unwrap_or_else(|| vec![0; s.len() / 2]),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventIn<'a> {
    #[serde(default)]
    time_unix_nano: Num,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    attributes: Attrs,
    #[serde(default)]
    dropped_attributes_count: Num32,
    #[serde(skip)]
    _line: std::marker::PhantomData<&'a ()>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkIn<'a> {
    #[serde(default, borrow)]
    trace_id: Option<Text<'a>>,
    #[serde(default, borrow)]
    span_id: Option<Text<'a>>,
    #[serde(default)]
    trace_state: Option<String>,
    #[serde(default)]
    attributes: Attrs,
    #[serde(default)]
    dropped_attributes_count: Num32,
    #[serde(default)]
    flags: Num32,
}

#[derive(Deserialize)]
struct StatusIn {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Enum<Code>,
}

/// An unsigned integer as proto3 JSON writes it: a number or a decimal string; null is 0.
#[derive(Default)]
struct Num(u64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an unsigned integer or a string holding one")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                u64::try_from(v)
                    .map(Num)
                    .map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                if v >= 0.0 && v.fract() == 0.0 && v < 1.8446744073709552e19 {
                    Ok(Num(v as u64))
                } else {
                    Err(E::custom(format!("{v} is not an unsigned integer")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                v.parse()
                    .map(Num)
                    .map_err(|_| E::custom(format!("{v:?} is not an unsigned integer")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Num, E> {
                Ok(Num(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// A `uint32` field (flags, dropped counts): a [`Num`] that fits, else the line is refused, never
/// silently wrapped.
#[derive(Default)]
struct Num32(u32);

impl<'de> Deserialize<'de> for Num32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Num(v) = Num::deserialize(d)?;
        u32::try_from(v)
            .map(Num32)
            .map_err(|_| de::Error::custom(format!("{v} does not fit this 32-bit field")))
    }
}

/// A proto enum given by number or by name.
struct Enum<T>(i32, std::marker::PhantomData<T>);

impl<T> Default for Enum<T> {
    fn default() -> Self {
        Enum(0, std::marker::PhantomData)
    }
}

trait EnumNames {
    const WHAT: &'static str;
    fn from_name(name: &str) -> Option<i32>;
}

struct Kind;
impl EnumNames for Kind {
    const WHAT: &'static str = "span kind";
    fn from_name(name: &str) -> Option<i32> {
        Some(match name.strip_prefix("SPAN_KIND_")? {
            "UNSPECIFIED" => 0,
            "INTERNAL" => 1,
            "SERVER" => 2,
            "CLIENT" => 3,
            "PRODUCER" => 4,
            "CONSUMER" => 5,
            _ => return None,
        })
    }
}

struct Code;
impl EnumNames for Code {
    const WHAT: &'static str = "status code";
    fn from_name(name: &str) -> Option<i32> {
        Some(match name.strip_prefix("STATUS_CODE_")? {
            "UNSET" => 0,
            "OK" => 1,
            "ERROR" => 2,
            _ => return None,
        })
    }
}

impl<'de, T: EnumNames> Deserialize<'de> for Enum<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<T: EnumNames> Visitor<'_> for V<T> {
            type Value = Enum<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a {} as a number or a name", T::WHAT)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Enum<T>, E> {
                i32::try_from(v)
                    .map(|v| Enum(v, std::marker::PhantomData))
                    .map_err(|_| E::custom(format!("{} {v} is out of range", T::WHAT)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Enum<T>, E> {
                i32::try_from(v)
                    .map(|v| Enum(v, std::marker::PhantomData))
                    .map_err(|_| E::custom(format!("{} {v} is out of range", T::WHAT)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Enum<T>, E> {
                T::from_name(v)
                    .map(|v| Enum(v, std::marker::PhantomData))
                    .ok_or_else(|| E::custom(format!("unknown {} {v:?}", T::WHAT)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Enum<T>, E> {
                Ok(Enum::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// `[{"key": …, "value": {…}}, …]`; null or missing is empty.
#[derive(Default)]
struct Attrs(Vec<KeyValue>);

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Option<Vec<KeyValueIn>> = Deserialize::deserialize(d)?;
        Ok(Attrs(
            v.unwrap_or_default()
                .into_iter()
                .map(|kv| KeyValue {
                    key: kv.key.unwrap_or_default(),
                    value: kv.value.map(|v| v.0),
                    ..Default::default()
                })
                .collect(),
        ))
    }
}

#[derive(Deserialize)]
struct KeyValueIn {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<AnyIn>,
}

/// `{"stringValue": …}` and its siblings, as proto3 JSON allows them.
struct AnyIn(AnyValue);

impl<'de> Deserialize<'de> for AnyIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyIn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an OTLP AnyValue object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyIn, A::Error> {
                let mut value = None;
                while let Some(key) = map.next_key::<Text>()? {
                    let v = match &*key {
                        "stringValue" => {
                            map.next_value::<Option<String>>()?.map(Value::StringValue)
                        }
                        "boolValue" => map.next_value::<Option<bool>>()?.map(Value::BoolValue),
                        "intValue" => map.next_value::<Option<Int>>()?.map(|i| i.0),
                        "doubleValue" => map
                            .next_value::<Option<Double>>()?
                            .map(|d| Value::DoubleValue(d.0)),
                        "bytesValue" => match map.next_value::<Option<Text>>()? {
                            None => None,
                            Some(b64) => {
                                use base64::prelude::{Engine, BASE64_STANDARD};
                                Some(Value::BytesValue(
                                    BASE64_STANDARD.decode(b64.as_bytes()).map_err(|e| {
                                        de::Error::custom(format!("bytesValue: {e}"))
                                    })?,
                                ))
                            }
                        },
                        "arrayValue" => map.next_value::<Option<ArrayIn>>()?.map(|a| {
                            Value::ArrayValue(ArrayValue {
                                values: a
                                    .values
                                    .unwrap_or_default()
                                    .into_iter()
                                    .map(|v| v.0)
                                    .collect(),
                            })
                        }),
                        "kvlistValue" => map
                            .next_value::<Option<KvlistIn>>()?
                            .map(|l| Value::KvlistValue(KeyValueList { values: l.values.0 })),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            None
                        }
                    };
                    if v.is_some() {
                        value = v;
                    }
                }
                Ok(AnyIn(AnyValue { value }))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct ArrayIn {
    #[serde(default)]
    values: Option<Vec<AnyIn>>,
}

#[derive(Deserialize)]
struct KvlistIn {
    #[serde(default)]
    values: Attrs,
}

/// intValue: a number or a decimal string; beyond 64 bits a double (counted).
struct Int(Value);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string holding one")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(Value::IntValue(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                Ok(Int(match i64::try_from(v) {
                    Ok(i) => Value::IntValue(i),
                    Err(_) => {
                        repair::count_big_int();
                        Value::DoubleValue(v as f64)
                    }
                }))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int, E> {
                if v.fract() != 0.0 || !v.is_finite() {
                    return Err(E::custom(format!("intValue {v} is not an integer")));
                }
                repair::count_big_int();
                Ok(Int(Value::DoubleValue(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
                if let Ok(i) = v.parse::<i64>() {
                    return Ok(Int(Value::IntValue(i)));
                }
                let big = v.strip_prefix('-').unwrap_or(v);
                if !big.is_empty() && big.bytes().all(|b| b.is_ascii_digit()) {
                    repair::count_big_int();
                    return Ok(Int(Value::DoubleValue(v.parse().map_err(E::custom)?)));
                }
                Err(E::custom(format!("intValue {v:?} is not an integer")))
            }
        }
        d.deserialize_any(V)
    }
}

/// doubleValue: a number, or proto3 JSON's strings for non-finite values (and numeric strings).
struct Double(f64);

impl<'de> Deserialize<'de> for Double {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Double;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Double, E> {
                Ok(Double(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Double, E> {
                Ok(Double(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Double, E> {
                Ok(Double(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Double, E> {
                if let Some(f) = repair::marker(v) {
                    return Ok(Double(f));
                }
                Ok(Double(match v {
                    "NaN" | "nan" => f64::NAN,
                    "Infinity" | "+Infinity" | "Inf" | "+Inf" | "inf" | "+inf" => f64::INFINITY,
                    "-Infinity" | "-Inf" | "-inf" => f64::NEG_INFINITY,
                    _ => v
                        .parse()
                        .map_err(|_| E::custom(format!("doubleValue {v:?} is not a number")))?,
                }))
            }
        }
        d.deserialize_any(V)
    }
}
