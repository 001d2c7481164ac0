//! The environment contract (ARCHITECTURE.md §6): what the child finds in its environment. The child is
//! configured only through variables every OpenTelemetry SDK already reads — no LD_PRELOAD, no
//! sitecustomize — and everything else of the user's environment passes through untouched.

use crate::ids::TraceParent;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use std::path::PathBuf;

/// Where the child's SDK should export (the loopback sink), when one runs.
#[derive(Debug, Clone)]
pub struct SinkEndpoint {
    /// `http://127.0.0.1:PORT` — one port serves gRPC and HTTP.
    pub endpoint: String,
    /// `grpc` or `http/protobuf`: what we tell the child to use.
    pub protocol: &'static str,
    /// Per-launch secret; requests without it are refused.
    pub token: String,
}

/// Header that carries the sink's token (gRPC metadata keys are lowercase HTTP headers).
pub const SINK_TOKEN_HEADER: &str = "x-otel-run-token";

/// Everything the child's environment gets from otel-run.
#[derive(Debug, Clone)]
pub struct Contract {
    /// Points at the rank's process span.
    pub traceparent: TraceParent,
    /// The incoming `TRACESTATE`, kept only when the incoming TRACEPARENT was valid.
    pub tracestate: Option<String>,
    pub service_name: String,
    /// Merged resource attributes as strings (an environment variable carries no types).
    pub resource_attributes: Vec<(String, String)>,
    /// Resolved per-rank span file, for children with a native `jsonlines` exporter.
    pub jsonlines_path: Option<PathBuf>,
    pub sink: Option<SinkEndpoint>,
}

impl Contract {
    /// Variables to set in the child's environment (all others are inherited unchanged), and the
    /// ones to remove.
    pub fn child_env(&self) -> (Vec<(String, String)>, Vec<&'static str>) {
        let mut set = vec![
            ("TRACEPARENT".to_string(), self.traceparent.to_string()),
            ("OTEL_SERVICE_NAME".to_string(), self.service_name.clone()),
            (
                "OTEL_RESOURCE_ATTRIBUTES".to_string(),
                encode_resource_attributes(&self.resource_attributes),
            ),
        ];
        let mut remove = Vec::new();
        match &self.tracestate {
            Some(ts) => set.push(("TRACESTATE".into(), ts.clone())),
            // A TRACESTATE that came with an invalid TRACEPARENT describes nothing we continue.
            None => remove.push("TRACESTATE"),
        }
        if let Some(path) = &self.jsonlines_path {
            set.push((
                "OTEL_EXPORTER_JSONLINES_PATH".into(),
                path.display().to_string(),
            ));
        }
        if let Some(sink) = &self.sink {
            // Keep the user's own values of what the sink overrides, so a nested otel-run (a
            // rank under `otel-run -- job.sh`) or `otel-run replay` in the program can restore
            // them instead of mistaking this sink for the user's collector.
            set.push((OUTER_SINK_VAR.into(), sink.endpoint.clone()));
            for var in SINK_VARS {
                if let Ok(original) = std::env::var(var) {
                    set.push((format!("{SAVED_PREFIX}{var}"), original));
                }
            }
            // Traces-specific names: they beat the generic OTEL_EXPORTER_OTLP_* in every SDK, so
            // the user's metrics/logs settings stay as they are.
            set.push(("OTEL_TRACES_EXPORTER".into(), "otlp".into()));
            let endpoint = match sink.protocol {
                "grpc" => sink.endpoint.clone(),
                _ => format!("{}/v1/traces", sink.endpoint),
            };
            set.push(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(), endpoint));
            set.push((
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL".into(),
                sink.protocol.into(),
            ));
            set.push((
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS".into(),
                format!("{SINK_TOKEN_HEADER}={}", sink.token),
            ));
            // TLS settings for a remote collector would break the plaintext loopback connection.
            set.push(("OTEL_EXPORTER_OTLP_TRACES_INSECURE".into(), "true".into()));
            remove.extend([
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            ]);
        }
        (set, remove)
    }
}

/// Marks an environment prepared by an outer otel-run's sink; holds the sink's endpoint.
pub const OUTER_SINK_VAR: &str = "OTEL_RUN_OUTER_SINK";
const SAVED_PREFIX: &str = "OTEL_RUN_SAVED_";
/// What the sink sets (or clears) in the program's environment.
const SINK_VARS: [&str; 7] = [
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
];

/// Undoes an outer otel-run's sink settings in this process's environment, restoring the user's
/// values it saved — as long as the traces endpoint still points at that sink (a job script that
/// set its own exporter meant it). Call before anything reads the environment: a rank under
/// `otel-run -- job.sh` must write its own file (the outer sink may be on another node), and
/// `otel-run replay` in a wrapped script must reach the user's collector.
pub fn restore_outer_environment() {
    let Ok(outer) = std::env::var(OUTER_SINK_VAR) else {
        return;
    };
    let still_outer =
        std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_ok_and(|e| e.starts_with(&outer));
    if still_outer {
        for var in SINK_VARS {
            match std::env::var(format!("{SAVED_PREFIX}{var}")) {
                Ok(original) => std::env::set_var(var, original),
                Err(_) => std::env::remove_var(var),
            }
        }
    }
    std::env::remove_var(OUTER_SINK_VAR);
    for var in SINK_VARS {
        std::env::remove_var(format!("{SAVED_PREFIX}{var}"));
    }
}

/// Parses `key1=value1,key2=value2` (W3C Baggage-style percent-encoding) as OTEL_RESOURCE_ATTRIBUTES
/// is specified. Empty members are ignored; a member without `=` or with an empty key is an error.
pub fn parse_resource_attributes(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for member in s.split(',') {
        let member = member.trim();
        if member.is_empty() {
            continue;
        }
        let (k, v) = member
            .split_once('=')
            .ok_or_else(|| format!("{member:?} is not key=value"))?;
        let key = percent_decode(k.trim()).map_err(|e| format!("key {k:?}: {e}"))?;
        if key.is_empty() {
            return Err(format!("{member:?} has an empty key"));
        }
        let value = percent_decode(v.trim()).map_err(|e| format!("value of {key:?}: {e}"))?;
        out.push((key, value));
    }
    Ok(out)
}

/// Encodes pairs so that any SDK's OTEL_RESOURCE_ATTRIBUTES parser gets them back exactly: every
/// byte outside the W3C baggage-octet set (and `%`, `,`, `=` in keys) is percent-encoded.
pub fn encode_resource_attributes(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k, true), percent_encode(v, false)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Bytes outside the W3C baggage-octet set (%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E): what
/// values must escape. Non-ASCII bytes are always escaped.
const VALUE_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'%')
    .add(b',')
    .add(b';')
    .add(b'\\');
/// Keys also escape `=`, which separates them from the value.
const KEY_ESCAPES: &AsciiSet = &VALUE_ESCAPES.add(b'=');

fn percent_encode(s: &str, is_key: bool) -> String {
    let set = if is_key { KEY_ESCAPES } else { VALUE_ESCAPES };
    utf8_percent_encode(s, set).to_string()
}

/// Strict decoding: the crate passes a malformed escape through as text, but a `%` that is not
/// followed by two hex digits is a mistake worth naming.
fn percent_decode(s: &str) -> Result<String, String> {
    for (i, _) in s.match_indices('%') {
        let hex = s.get(i + 1..i + 3).ok_or("truncated %-escape")?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("bad %-escape %{hex}"));
        }
    }
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| "%-escapes do not form UTF-8".to_string())
}

/// Merges attribute lists; a later list wins for a key, and first-seen key order is kept.
pub fn merge_attributes(layers: &[&[(String, String)]]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for layer in layers {
        for (k, v) in layer.iter() {
            match out.iter_mut().find(|(ek, _)| ek == k) {
                Some(e) => e.1 = v.clone(),
                None => out.push((k.clone(), v.clone())),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_attributes_round_trip_with_awkward_characters() {
        let pairs = vec![
            ("service.name".to_string(), "my sim, v2".to_string()),
            ("k=ey".to_string(), "a=b;c%d\"é\\".to_string()),
            ("empty".to_string(), String::new()),
        ];
        let encoded = encode_resource_attributes(&pairs);
        assert_eq!(
            encoded,
            "service.name=my%20sim%2C%20v2,k%3Dey=a=b%3Bc%25d%22%C3%A9%5C,empty="
        );
        assert_eq!(parse_resource_attributes(&encoded).unwrap(), pairs);
    }

    #[test]
    fn parses_spec_examples_and_rejects_bad_members() {
        assert_eq!(
            parse_resource_attributes(" a = 1 ,, b=x%20y ").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x y".into())]
        );
        assert!(parse_resource_attributes("novalue")
            .unwrap_err()
            .contains("not key=value"));
        assert!(parse_resource_attributes("=v")
            .unwrap_err()
            .contains("empty key"));
        assert!(parse_resource_attributes("a=%zz")
            .unwrap_err()
            .contains("bad %-escape"));
        assert!(parse_resource_attributes("a=%4")
            .unwrap_err()
            .contains("truncated"));
    }

    #[test]
    fn later_layers_win() {
        let a = vec![
            ("x".to_string(), "1".to_string()),
            ("y".to_string(), "1".to_string()),
        ];
        let b = vec![("y".to_string(), "2".to_string())];
        assert_eq!(
            merge_attributes(&[&a, &b]),
            vec![("x".into(), "1".into()), ("y".into(), "2".into())]
        );
    }
}
