//! The `console` exporter: a human-readable rendering of spans on stderr.

use super::SpanWriter;
use crate::attr;
use crate::ids::hex;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use std::fmt::Write;

pub struct Console;

impl SpanWriter for Console {
    fn write(&mut self, out: &mut Vec<u8>, batch: &[ResourceSpans]) {
        out.extend_from_slice(render(batch).as_bytes());
    }
}

/// The spans as text for a person: name, duration, status, ids, attributes, events.
pub fn render(resource_spans: &[ResourceSpans]) -> String {
    let mut out = String::new();
    for rs in resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let status = span.status.as_ref();
                let code = match status.map(|s| s.code) {
                    Some(1) => "OK",
                    Some(2) => "ERROR",
                    _ => "UNSET",
                };
                let dur = span
                    .end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano) as f64
                    / 1e9;
                let _ = writeln!(
                    out,
                    "span {:?} {:.6}s status={code}{}\n  trace={} span={} parent={}",
                    span.name,
                    dur,
                    status
                        .filter(|s| !s.message.is_empty())
                        .map(|s| format!(" ({})", s.message))
                        .unwrap_or_default(),
                    hex(&span.trace_id),
                    hex(&span.span_id),
                    if span.parent_span_id.is_empty() {
                        "-".to_string()
                    } else {
                        hex(&span.parent_span_id)
                    },
                );
                let _ = writeln!(
                    out,
                    "  service={}",
                    attr::get_str(resource, "service.name").unwrap_or("?")
                );
                for kv in &span.attributes {
                    let _ = writeln!(out, "  {}={}", kv.key, value_text(kv));
                }
                for ev in &span.events {
                    let _ = writeln!(
                        out,
                        "  event {:?} at +{:.6}s",
                        ev.name,
                        ev.time_unix_nano.saturating_sub(span.start_time_unix_nano) as f64 / 1e9
                    );
                }
            }
        }
    }
    out
}

fn value_text(kv: &KeyValue) -> String {
    fn any(v: Option<&AnyValue>) -> String {
        match v.and_then(|v| v.value.as_ref()) {
            None => "null".into(),
            Some(Value::StringValue(s)) => format!("{s:?}"),
            Some(Value::BoolValue(b)) => b.to_string(),
            Some(Value::IntValue(i)) => i.to_string(),
            Some(Value::DoubleValue(d)) => d.to_string(),
            Some(Value::BytesValue(b)) => format!("0x{}", hex(b)),
            Some(Value::ArrayValue(a)) => format!(
                "[{}]",
                a.values
                    .iter()
                    .map(|v| any(Some(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(Value::StringValueStrindex(i)) => format!("strindex:{i}"),
            Some(Value::KvlistValue(l)) => format!(
                "{{{}}}",
                l.values
                    .iter()
                    .map(|kv| format!("{}={}", kv.key, any(kv.value.as_ref())))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    any(kv.value.as_ref())
}
