//! Small constructors and accessors around OTLP's `KeyValue`/`AnyValue`, so code that builds or
//! reads spans stays short. (Helpers only: the proto types remain the one data model.)

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, ArrayValue, KeyValue};

pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub fn string(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

pub fn int(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

pub fn double(key: &str, value: f64) -> KeyValue {
    kv(key, Value::DoubleValue(value))
}

pub fn boolean(key: &str, value: bool) -> KeyValue {
    kv(key, Value::BoolValue(value))
}

pub fn strings(key: &str, values: impl IntoIterator<Item = String>) -> KeyValue {
    let values = values
        .into_iter()
        .map(|s| AnyValue {
            value: Some(Value::StringValue(s)),
        })
        .collect();
    kv(key, Value::ArrayValue(ArrayValue { values }))
}

/// The value of `key`, if present.
pub fn get<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .rev()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()
}

pub fn get_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match get(attrs, key)? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

pub fn get_int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match get(attrs, key)? {
        Value::IntValue(i) => Some(*i),
        Value::StringValue(s) => s.parse().ok(),
        _ => None,
    }
}

/// Sets `key` to `value`, replacing an existing entry (attribute keys must be unique in OTLP).
pub fn upsert(attrs: &mut Vec<KeyValue>, item: KeyValue) {
    match attrs.iter_mut().find(|kv| kv.key == item.key) {
        Some(existing) => *existing = item,
        None => attrs.push(item),
    }
}

/// The rank a span belongs to: `mpi.rank` on its resource (where otel-run and SDKs reading
/// OTEL_RESOURCE_ATTRIBUTES put it), else on the span itself (where bsb-otel puts it). The
/// integer 3 and the string "3" are the same rank.
pub fn rank(resource: &[KeyValue], span: &[KeyValue]) -> Option<i64> {
    get_int(resource, crate::semconv::MPI_RANK).or_else(|| get_int(span, crate::semconv::MPI_RANK))
}
