//! Reading a python line: serde over borrowed shapes of the line, converted straight into the
//! proto types. Strings that are converted right away (ids, times, enums) or not kept (a sketch's
//! name) are borrowed from the line when they hold no escapes, and the resource — half of every
//! line — is parsed once per distinct text ([`super::resource`]). One shape serves every
//! [`Detail`]: what differs is only what attribute maps keep ([`Keep`]), so every mode checks a
//! line the same way and reports the same reason.

use super::resource::{self, SharedResource};
use super::scan::{self, Scan};
use super::{kind_from_name, status_from_name, trace_state_from_python, Detail};
use crate::format::repair;
use crate::format::time::parse_iso;
use crate::ids::decode_hex_any;
use crate::semconv;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::{Event, Link, SpanKind},
    ResourceSpans, ScopeSpans, Span, Status,
};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Parses one python line into a `ResourceSpans` holding exactly that span (resource copied).
pub fn parse_line(line: &[u8]) -> Result<ResourceSpans, String> {
    parse(line, Detail::Full).map(|(rs, _)| rs)
}

/// Parses one python line as `detail` says; the shared resource comes beside the span for every
/// detail but [`Detail::Full`].
pub fn parse(
    line: &[u8],
    detail: Detail,
) -> Result<(ResourceSpans, Option<Arc<SharedResource>>), String> {
    // One UTF-8 check for the whole line instead of one per string.
    let line = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
    let keeps = detail != Detail::Sketch;
    repair::tolerant(line, keeps, |line| match detail {
        Detail::Sketch => read::<RoleOnly>(line, detail),
        Detail::Full | Detail::SharedResource => read::<AllAttributes>(line, detail),
    })
}

/// What attribute maps keep. Both kinds check every value the same way.
pub(crate) trait Keep: DeserializeOwned {
    /// Whether descriptive strings (span, event and scope names, trace state, status
    /// description) are kept.
    const TEXT: bool;
    fn into_attributes(self) -> Vec<KeyValue>;
    /// The same reading by the scanner; `None`: serde must read the line.
    fn scan(s: &mut Scan<'_>) -> Option<Self>;
}

/// The span of a python line as a sketch (see [`Detail::Sketch`]) and its resource, without the
/// `ResourceSpans` around them: merge reads millions of these and needs only the span.
pub fn sketch(line: &[u8]) -> Result<(Span, Arc<SharedResource>), String> {
    let line = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
    let (span, _, found) = repair::tolerant(line, false, read_span::<RoleOnly>)?;
    Ok((span, found.unwrap_or_default()))
}

fn read<A: Keep>(
    line: &str,
    detail: Detail,
) -> Result<(ResourceSpans, Option<Arc<SharedResource>>), String> {
    read_via::<A>(line, detail, true)
}

/// Whether the scanner reads `line` (`Ok(false)`: it leaves it to serde) and, if it does, whether
/// it reads exactly what serde reads in every [`Detail`] (`Err` says how they differ). For the
/// unit tests and the `python_line` fuzz target, which checks it on every input.
#[doc(hidden)]
pub fn scanner_agrees(line: &str) -> Result<bool, String> {
    let mut taken = Vec::new();
    for detail in [Detail::Full, Detail::SharedResource, Detail::Sketch] {
        let (fast, serde) = match detail {
            Detail::Sketch => (
                read_via::<RoleOnly>(line, detail, true),
                read_via::<RoleOnly>(line, detail, false),
            ),
            _ => (
                read_via::<AllAttributes>(line, detail, true),
                read_via::<AllAttributes>(line, detail, false),
            ),
        };
        if fast != serde {
            return Err(format!(
                "{detail:?}\nscanner: {fast:?}\nserde:   {serde:?}\nline: {line}"
            ));
        }
        taken.push(match detail {
            Detail::Sketch => scan::span::<RoleOnly>(line).is_some(),
            _ => scan::span::<AllAttributes>(line).is_some(),
        });
    }
    match taken[..] {
        [a, b, c] if a == b && b == c => Ok(a),
        _ => Err(format!("taken in some details only: {taken:?} {line}")),
    }
}

fn read_via<A: Keep>(
    line: &str,
    detail: Detail,
    scanner: bool,
) -> Result<(ResourceSpans, Option<Arc<SharedResource>>), String> {
    let (span, (scope, scope_schema), found) = read_span_via::<A>(line, scanner)?;
    let (resource, resource_schema, shared) = match (found, detail) {
        (None, Detail::Full) => (Some(Resource::default()), String::new(), None),
        (Some(r), Detail::Full) => (Some(r.resource.clone()), r.schema_url.clone(), None),
        (found, _) => (None, String::new(), Some(found.unwrap_or_default())),
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

/// A line's span, its scope with the scope's schema URL, and its resource if it has one.
type SpanParts = (
    Span,
    (InstrumentationScope, String),
    Option<Arc<SharedResource>>,
);

fn read_span<A: Keep>(line: &str) -> Result<SpanParts, String> {
    read_span_via::<A>(line, true)
}

/// `scanner`: try the fast path first (false only to compare it with serde in tests).
fn read_span_via<A: Keep>(line: &str, scanner: bool) -> Result<SpanParts, String> {
    let fast = match scanner {
        true => scan::span(line),
        false => None,
    };
    let py: SpanIn<A> = match fast {
        Some(py) => py,
        None => serde_json::from_str(line).map_err(|e| e.to_string())?,
    };
    let text = |t: Option<Text>| match (A::TEXT, t) {
        (true, Some(t)) => t.0.into_owned(),
        _ => String::new(),
    };
    let attributes = |a: Option<A>| a.map(A::into_attributes).unwrap_or_default();
    let trace_state = |t: Option<Text>| match A::TEXT {
        true => trace_state_from_python(t.as_deref().unwrap_or("")),
        false => String::new(),
    };
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
        Some(s) => Some(Status {
            code: status_from_name(&s.status_code)?,
            message: text(s.description),
        }),
    };
    let mut events = Vec::new();
    for e in py.events.unwrap_or_default() {
        events.push(Event {
            time_unix_nano: time("events[].timestamp", Some(&e.timestamp))?,
            name: text(Some(e.name)),
            attributes: attributes(e.attributes),
            dropped_attributes_count: 0,
        });
    }
    let mut links = Vec::new();
    for l in py.links.unwrap_or_default() {
        links.push(Link {
            trace_id: id::<16>("links[].context.trace_id", &l.context.trace_id)?.to_vec(),
            span_id: id::<8>("links[].context.span_id", &l.context.span_id)?.to_vec(),
            trace_state: trace_state(l.context.trace_state),
            attributes: attributes(l.attributes),
            dropped_attributes_count: 0,
            flags: 0,
        });
    }
    let span = Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        trace_state: trace_state(py.context.trace_state),
        parent_span_id: parent,
        flags: 0,
        name: text(Some(py.name)),
        kind,
        start_time_unix_nano: time("start_time", py.start_time.as_deref())?,
        end_time_unix_nano: time("end_time", py.end_time.as_deref())?,
        attributes: attributes(py.attributes),
        dropped_attributes_count: 0,
        events,
        dropped_events_count: 0,
        links,
        dropped_links_count: 0,
        status,
    };
    let found = match py.resource {
        None => None,
        Some(ResourceIn::Text(text)) => Some(resource::shared(text)?),
        Some(ResourceIn::Found(found)) => Some(found),
    };
    let scope = match py.instrumentation_scope {
        None => (InstrumentationScope::default(), String::new()),
        Some(s) => (
            InstrumentationScope {
                name: text(s.name),
                version: text(s.version),
                attributes: attributes(s.attributes),
                dropped_attributes_count: 0,
            },
            text(s.schema_url),
        ),
    };
    Ok((span, scope, found))
}

fn id<const N: usize>(field: &str, s: &str) -> Result<[u8; N], String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    decode_hex_any::<N>(digits)
        .filter(|id| id.iter().any(|b| *b != 0))
        .ok_or_else(|| format!("{field} {s:?} is not a non-zero {}-digit hex id", 2 * N))
}

fn time(field: &str, s: Option<&str>) -> Result<u64, String> {
    let s = s.ok_or_else(|| format!("{field} is missing or null"))?;
    parse_iso(s).map_err(|e| format!("{field}: {e}"))
}

// ---------------------------------------------------------------- the shapes of a line

#[derive(Deserialize)]
pub(super) struct SpanIn<'a, A> {
    #[serde(borrow)]
    pub(super) name: Text<'a>,
    #[serde(borrow)]
    pub(super) context: ContextIn<'a>,
    #[serde(default, borrow)]
    pub(super) kind: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) parent_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) start_time: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) end_time: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) status: Option<StatusIn<'a>>,
    #[serde(default = "none")]
    pub(super) attributes: Option<A>,
    #[serde(default = "none", borrow)]
    pub(super) events: Option<Vec<EventIn<'a, A>>>,
    #[serde(default = "none", borrow)]
    pub(super) links: Option<Vec<LinkIn<'a, A>>>,
    #[serde(default, borrow)]
    pub(super) resource: Option<ResourceIn<'a>>,
    #[serde(default = "none", borrow)]
    pub(super) instrumentation_scope: Option<ScopeIn<'a, A>>,
}

/// `#[serde(default)]` without asking `A: Default`.
fn none<T>() -> Option<T> {
    None
}

#[derive(Deserialize)]
pub(super) struct ContextIn<'a> {
    #[serde(borrow)]
    pub(super) trace_id: Text<'a>,
    #[serde(borrow)]
    pub(super) span_id: Text<'a>,
    #[serde(default, borrow)]
    pub(super) trace_state: Option<Text<'a>>,
}

#[derive(Deserialize)]
pub(super) struct StatusIn<'a> {
    #[serde(borrow)]
    pub(super) status_code: Text<'a>,
    #[serde(default, borrow)]
    pub(super) description: Option<Text<'a>>,
}

#[derive(Deserialize)]
pub(super) struct EventIn<'a, A> {
    #[serde(borrow)]
    pub(super) name: Text<'a>,
    #[serde(borrow)]
    pub(super) timestamp: Text<'a>,
    #[serde(default = "none")]
    pub(super) attributes: Option<A>,
}

#[derive(Deserialize)]
pub(super) struct LinkIn<'a, A> {
    #[serde(borrow)]
    pub(super) context: ContextIn<'a>,
    #[serde(default = "none")]
    pub(super) attributes: Option<A>,
}

#[derive(Deserialize)]
pub(super) struct ScopeIn<'a, A> {
    #[serde(default, borrow)]
    pub(super) name: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) version: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) schema_url: Option<Text<'a>>,
    #[serde(default = "none")]
    pub(super) attributes: Option<A>,
}

/// A line's resource: its JSON text (serde), or already parsed (the scanner).
pub(super) enum ResourceIn<'a> {
    Text(&'a str),
    Found(Arc<SharedResource>),
}

impl<'de: 'a, 'a> Deserialize<'de> for ResourceIn<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(|raw| ResourceIn::Text(raw.get()))
    }
}

/// A string borrowed from the line when it holds no escapes, owned otherwise.
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

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

// ---------------------------------------------------------------- attribute values

/// A JSON object of attributes, kept in file order, converted straight into OTLP key-values.
pub(crate) struct AllAttributes(Vec<KeyValue>);

impl Keep for AllAttributes {
    const TEXT: bool = true;
    fn into_attributes(self) -> Vec<KeyValue> {
        self.0
    }
    fn scan(s: &mut Scan<'_>) -> Option<Self> {
        s.attribute_map().map(AllAttributes)
    }
}

impl<'de> Deserialize<'de> for AllAttributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AllAttributes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AllAttributes, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(key) = map.next_key::<String>()? {
                    let AnyIn(value) = map.next_value()?;
                    out.push(KeyValue {
                        key,
                        value: Some(value),
                        ..Default::default()
                    });
                }
                Ok(AllAttributes(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Checks every attribute but keeps only the last `otel_run.span` (what `attr::get` finds), with
/// its value if that is a string, and the last `mpi.rank` (bsb-otel puts the rank on spans): all
/// a sketch needs to know the span's role and rank.
pub(crate) struct RoleOnly(Option<KeyValue>, Option<KeyValue>);

impl Keep for RoleOnly {
    const TEXT: bool = false;
    fn into_attributes(self) -> Vec<KeyValue> {
        self.0.into_iter().chain(self.1).collect()
    }
    fn scan(s: &mut Scan<'_>) -> Option<Self> {
        /// The role is kept only when it is a string.
        fn role(v: AnyValue) -> Option<AnyValue> {
            matches!(v.value, Some(Value::StringValue(_))).then_some(v)
        }
        let [role, rank] =
            s.some_attributes([semconv::SPAN_ROLE, semconv::MPI_RANK], [role, Some])?;
        Some(RoleOnly(role, rank))
    }
}

impl<'de> Deserialize<'de> for RoleOnly {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RoleOnly;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RoleOnly, A::Error> {
                let mut role = None;
                let mut rank = None;
                while let Some(key) = map.next_key::<Text>()? {
                    if &*key == semconv::SPAN_ROLE {
                        let AnyIn(value) = map.next_value()?;
                        let value = match value.value {
                            Some(Value::StringValue(s)) => Some(AnyValue {
                                value: Some(Value::StringValue(s)),
                            }),
                            _ => None,
                        };
                        role = Some(KeyValue {
                            key: key.0.into_owned(),
                            value,
                            ..Default::default()
                        });
                    } else if &*key == semconv::MPI_RANK {
                        let AnyIn(value) = map.next_value()?;
                        rank = Some(KeyValue {
                            key: key.0.into_owned(),
                            value: Some(value),
                            ..Default::default()
                        });
                    } else {
                        map.next_value::<Checked>()?;
                    }
                }
                Ok(RoleOnly(role, rank))
            }
        }
        d.deserialize_map(V)
    }
}

/// An integer attribute: JSON (and Python) allow more than OTLP's i64; beyond it the value is
/// kept as the nearest double, and counted.
fn int(v: u64) -> Value {
    match i64::try_from(v) {
        Ok(i) => Value::IntValue(i),
        Err(_) => {
            repair::count_big_int();
            Value::DoubleValue(v as f64)
        }
    }
}

/// One attribute value as OTLP holds it: native JSON values, arrays and objects nested.
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
                Ok(some(int(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<AnyIn, E> {
                Ok(some(Value::DoubleValue(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyIn, E> {
                if let Some(f) = repair::marker(v) {
                    return Ok(some(Value::DoubleValue(f)));
                }
                Ok(some(Value::StringValue(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<AnyIn, E> {
                if let Some(f) = repair::marker(&v) {
                    return Ok(some(Value::DoubleValue(f)));
                }
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
                let AllAttributes(values) =
                    AllAttributes::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(some(Value::KvlistValue(KeyValueList { values })))
            }
        }
        d.deserialize_any(V)
    }
}

/// An attribute value checked exactly as [`AnyIn`] checks it, and not kept.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Checked;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an attribute value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_none<E: de::Error>(self) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
                while seq.next_element::<Checked>()?.is_some() {}
                Ok(Checked)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
                while map.next_key::<Text>()?.is_some() {
                    map.next_value::<Checked>()?;
                }
                Ok(Checked)
            }
        }
        d.deserialize_any(V)
    }
}
