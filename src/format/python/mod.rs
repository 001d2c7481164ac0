//! The `python` line format: one span per line, exactly as OpenTelemetry Python's
//! `ReadableSpan.to_json(indent=None)` writes it (bsb-otel's `jsonlines` exporter and replay),
//! plus `instrumentation_scope` and nanosecond times. Reading is here ([`read`]); writing is
//! `export::python`. The names below are shared by both, so the two cannot drift apart.

pub(crate) mod read;
mod resource;
mod scan;

#[doc(hidden)]
pub use read::scanner_agrees;
pub use read::{parse, parse_line, sketch};
pub use resource::SharedResource;

use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};

/// How much of a python line a reading keeps. Every detail is checked in every mode: a line one
/// mode accepts, all accept, and a bad line gets the same `reason` in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// The whole span, its resource copied into the `ResourceSpans`.
    #[default]
    Full,
    /// The whole span, its resource handed out beside it, shared: lines with the same resource
    /// text get the same `Arc`, so a consumer can group by it without comparing resources.
    SharedResource,
    /// Only what ordering, filtering and parent checks need: ids, parent, times, kind, status
    /// code and the `otel_run.span` attribute. Names, other attributes and scope strings are
    /// checked but stay empty. The resource is shared as with [`Detail::SharedResource`].
    Sketch,
}

/// Python's name of an OTLP span kind (`SpanKind.INTERNAL` for unspecified: Python has none).
pub fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Server) => "SpanKind.SERVER",
        Ok(SpanKind::Client) => "SpanKind.CLIENT",
        Ok(SpanKind::Producer) => "SpanKind.PRODUCER",
        Ok(SpanKind::Consumer) => "SpanKind.CONSUMER",
        _ => "SpanKind.INTERNAL",
    }
}

/// `SpanKind.SERVER` or `SERVER` → the OTLP kind.
pub(crate) fn kind_from_name(name: &str) -> Result<i32, String> {
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

/// Python's name of an OTLP status code.
pub fn status_name(code: i32) -> &'static str {
    match StatusCode::try_from(code) {
        Ok(StatusCode::Ok) => "OK",
        Ok(StatusCode::Error) => "ERROR",
        _ => "UNSET",
    }
}

/// `ERROR` or `StatusCode.ERROR` → the OTLP status code.
pub(crate) fn status_from_name(name: &str) -> Result<i32, String> {
    Ok(match name.strip_prefix("StatusCode.").unwrap_or(name) {
        "UNSET" => StatusCode::Unset,
        "OK" => StatusCode::Ok,
        "ERROR" => StatusCode::Error,
        other => return Err(format!("unknown status_code {other:?}")),
    } as i32)
}

/// W3C `k1=v1,k2=v2` → Python's `repr(TraceState)`: `['{key=k1, value=v1}', ...]`.
pub fn trace_state_to_python(w3c: &str) -> String {
    if w3c.is_empty() {
        return "[]".to_string();
    }
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
pub(crate) fn trace_state_from_python(repr: &str) -> String {
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
    fn names_round_trip() {
        for kind in 0..=5 {
            let back = kind_from_name(kind_name(kind)).unwrap();
            assert_eq!(back, kind.max(1), "unspecified is written as INTERNAL");
        }
        for code in 0..=2 {
            assert_eq!(status_from_name(status_name(code)), Ok(code));
        }
        assert!(kind_from_name("SpanKind.WEIRD").is_err());
        assert!(status_from_name("MAYBE").is_err());
    }
}
