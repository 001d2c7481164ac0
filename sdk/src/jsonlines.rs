//! A span exporter that writes otel-run's `python` line format: one span per line, as
//! OpenTelemetry Python's `ReadableSpan.to_json(indent=None)` writes it (plus
//! `instrumentation_scope`), so `otel-run merge|replay|summary` and bsb-otel read the file like the
//! launcher's own. Each line is one `write(2)` on an `O_APPEND` file created 0600: ranks and
//! processes may share a file, and a crash leaves at most one torn last line.
//!
//! Times are written as Python writes them (`%Y-%m-%dT%H:%M:%S.%fZ`, microseconds): every
//! `strptime('%f')` reader and Python <= 3.10's `fromisoformat` accept that and nothing longer.

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes spans to a JSON Lines file (`OTEL_EXPORTER_JSONLINES_PATH`); the Rust twin of bsb-otel's
/// `JSONLinesSpanExporter`. The file is opened on the first export, so a program that ends no
/// span leaves no empty file behind.
#[derive(Debug)]
pub struct JsonLinesExporter {
    path: PathBuf,
    file: Mutex<Option<File>>,
    resource_json: String,
}

impl JsonLinesExporter {
    pub fn new(path: impl Into<PathBuf>) -> JsonLinesExporter {
        JsonLinesExporter {
            path: path.into(),
            file: Mutex::new(None),
            resource_json: resource_json(&Resource::builder_empty().build()),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn write_batch(&self, batch: &[SpanData]) -> std::io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            use std::os::unix::fs::OpenOptionsExt;
            *guard = Some(
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .open(&self.path)?,
            );
        }
        let mut file = guard.as_ref().expect("opened above");
        let mut line = Vec::with_capacity(1024);
        for span in batch {
            line.clear();
            write_line(&mut line, span, &self.resource_json);
            // One write(2) per line; a short write (disk full) is completed rather than dropped.
            let n = file.write(&line)?;
            if n < line.len() {
                file.write_all(&line[n..])?;
            }
        }
        Ok(())
    }
}

impl SpanExporter for JsonLinesExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.write_batch(&batch)
            .map_err(|e| OTelSdkError::InternalFailure(format!("{}: {e}", self.path.display())))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource_json = resource_json(resource);
    }
}

/// The resource object of every line, serialised once.
pub fn resource_json(resource: &Resource) -> String {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"attributes\":");
    let attrs: Vec<KeyValue> = resource
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    write_attrs(&mut out, &attrs);
    out.extend_from_slice(b",\"schema_url\":");
    write_str(&mut out, resource.schema_url().unwrap_or(""));
    out.push(b'}');
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// Appends one python-format line, newline included.
pub fn write_line(out: &mut Vec<u8>, span: &SpanData, resource_json: &str) {
    let sc = &span.span_context;
    out.extend_from_slice(b"{\"name\":");
    write_str(out, &span.name);
    out.extend_from_slice(b",\"context\":");
    write_context(
        out,
        sc.trace_id().to_bytes(),
        sc.span_id().to_bytes(),
        &sc.trace_state().header(),
    );
    out.extend_from_slice(b",\"kind\":");
    write_str(
        out,
        match span.span_kind {
            SpanKind::Server => "SpanKind.SERVER",
            SpanKind::Client => "SpanKind.CLIENT",
            SpanKind::Producer => "SpanKind.PRODUCER",
            SpanKind::Consumer => "SpanKind.CONSUMER",
            SpanKind::Internal => "SpanKind.INTERNAL",
        },
    );
    out.extend_from_slice(b",\"parent_id\":");
    if span.parent_span_id == opentelemetry::trace::SpanId::INVALID {
        out.extend_from_slice(b"null");
    } else {
        write_hex(out, &span.parent_span_id.to_bytes());
    }
    out.extend_from_slice(b",\"start_time\":");
    write_time(out, span.start_time);
    out.extend_from_slice(b",\"end_time\":");
    write_time(out, span.end_time);
    out.extend_from_slice(b",\"status\":{\"status_code\":");
    match &span.status {
        Status::Unset => out.extend_from_slice(b"\"UNSET\""),
        Status::Ok => out.extend_from_slice(b"\"OK\""),
        Status::Error { description } => {
            out.extend_from_slice(b"\"ERROR\"");
            if !description.is_empty() {
                out.extend_from_slice(b",\"description\":");
                write_str(out, description);
            }
        }
    }
    out.extend_from_slice(b"},\"attributes\":");
    write_attrs(out, &span.attributes);
    out.extend_from_slice(b",\"events\":");
    write_list(out, &span.events.events, |out, e| {
        out.extend_from_slice(b"{\"name\":");
        write_str(out, &e.name);
        out.extend_from_slice(b",\"timestamp\":");
        write_time(out, e.timestamp);
        out.extend_from_slice(b",\"attributes\":");
        write_attrs(out, &e.attributes);
        out.push(b'}');
    });
    out.extend_from_slice(b",\"links\":");
    write_list(out, &span.links.links, |out, l| {
        out.extend_from_slice(b"{\"context\":");
        let lc = &l.span_context;
        write_context(
            out,
            lc.trace_id().to_bytes(),
            lc.span_id().to_bytes(),
            &lc.trace_state().header(),
        );
        out.extend_from_slice(b",\"attributes\":");
        write_attrs(out, &l.attributes);
        out.push(b'}');
    });
    out.extend_from_slice(b",\"resource\":");
    out.extend_from_slice(resource_json.as_bytes());
    out.extend_from_slice(b",\"instrumentation_scope\":{\"name\":");
    let scope = &span.instrumentation_scope;
    write_str(out, scope.name());
    out.extend_from_slice(b",\"version\":");
    write_str(out, scope.version().unwrap_or(""));
    if let Some(url) = scope.schema_url() {
        out.extend_from_slice(b",\"schema_url\":");
        write_str(out, url);
    }
    if scope.attributes().next().is_some() {
        out.extend_from_slice(b",\"attributes\":");
        let attrs: Vec<KeyValue> = scope.attributes().cloned().collect();
        write_attrs(out, &attrs);
    }
    out.extend_from_slice(b"}}\n");
}

fn write_context(out: &mut Vec<u8>, trace: [u8; 16], span: [u8; 8], trace_state: &str) {
    out.extend_from_slice(b"{\"trace_id\":");
    write_hex(out, &trace);
    out.extend_from_slice(b",\"span_id\":");
    write_hex(out, &span);
    out.extend_from_slice(b",\"trace_state\":");
    // Python writes repr(TraceState): `[]` or `['{key=k, value=v}', ...]`.
    let items: Vec<String> = trace_state
        .split(',')
        .filter_map(|kv| kv.trim().split_once('='))
        .map(|(k, v)| format!("'{{key={k}, value={v}}}'"))
        .collect();
    write_str(out, &format!("[{}]", items.join(", ")));
    out.push(b'}');
}

fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\"0x");
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
    out.push(b'"');
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing JSON to memory");
}

fn write_attrs(out: &mut Vec<u8>, attrs: &[KeyValue]) {
    out.push(b'{');
    for (i, kv) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, kv.key.as_str());
        out.push(b':');
        write_value(out, &kv.value);
    }
    out.push(b'}');
}

fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        serde_json::to_writer(&mut *out, &v).expect("writing JSON to memory");
    } else {
        // Bare, as Python's `json` (and so OpenTelemetry Python, bsb-otel and otel-run's own
        // writer) writes them: a string "NaN" would read back as a string attribute.
        out.extend_from_slice(if v.is_nan() {
            b"NaN"
        } else if v > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        });
    }
}

/// `[item,item,…]`, `f` writing each item.
fn write_list<T>(out: &mut Vec<u8>, items: &[T], mut f: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        f(out, x);
    }
    out.push(b']');
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::I64(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::F64(f) => write_f64(out, *f),
        Value::String(s) => write_str(out, s.as_str()),
        Value::Array(Array::Bool(a)) => write_list(out, a, |o, b| {
            o.extend_from_slice(if *b { b"true" } else { b"false" })
        }),
        Value::Array(Array::I64(a)) => {
            write_list(out, a, |o, n| o.extend_from_slice(n.to_string().as_bytes()))
        }
        Value::Array(Array::F64(a)) => write_list(out, a, |o, f| write_f64(o, *f)),
        Value::Array(Array::String(a)) => write_list(out, a, |o, s| write_str(o, s.as_str())),
        // Future value kinds (the enum is non-exhaustive): their display form beats a lost attribute.
        other => write_str(out, &other.to_string()),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds: Python's `%f`).
fn write_time(out: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let micros = d.subsec_micros();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let s = format!(
        "\"{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z\"",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    out.extend_from_slice(s.as_bytes());
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Expands a span file template: each `*` becomes 8 random `[a-z0-9]` (bsb-otel's rule), and
/// `{rank}`, `{size}`, `{job}`, `{step}`, `{host}`, `{pid}` this process's values read from the
/// launcher's environment (under otel-run the path arrives already expanded).
pub fn expand_path(template: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let first = |names: &[&str], default: &str| {
        names
            .iter()
            .find_map(|n| var(n).filter(|v| !v.is_empty()))
            .unwrap_or_else(|| default.to_string())
    };
    let mut rng = rand::rng();
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        match c {
            '*' => {
                out.extend((0..8).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char));
                rest = &rest[1..];
            }
            '{' => {
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("unclosed '{{' in path template {template:?}"))?;
                let value = match &rest[1..end] {
                    // MPI launcher variables first: mpirun inside sbatch inherits SLURM_PROCID=0.
                    "rank" => first(&["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"], "0"),
                    "size" => first(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"], "1"),
                    "job" => first(&["SLURM_JOB_ID"], "local"),
                    "step" => first(&["SLURM_STEP_ID"], "0"),
                    "host" => nix::unistd::gethostname()
                        .map(|h| h.to_string_lossy().into_owned())
                        .unwrap_or_else(|_| "localhost".into()),
                    "pid" => std::process::id().to_string(),
                    other => {
                        return Err(format!(
                            "unknown placeholder {{{other}}} in path template {template:?} (known: {{rank}} {{size}} {{job}} {{step}} {{host}} {{pid}} and *)"
                        ))
                    }
                };
                // Values come from the environment: never let them add or climb a directory
                // (SLURM_JOB_ID=../x), the launcher's rule (src/format/path.rs).
                out.push_str(&safe_component(&value));
                rest = &rest[end + 1..];
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    Ok(out)
}

/// `value` reduced to a safe file-name alphabet `[A-Za-z0-9._+-]`, no leading `.`, never empty
/// (the same rule as the launcher's path templates).
fn safe_component(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '+' | '-' | '.' => c,
            _ => '_',
        })
        .collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry::InstrumentationScope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::time::Duration;

    #[test]
    fn placeholders_from_the_environment_cannot_leave_the_directory() {
        assert_eq!(safe_component("../x"), "_._x");
        assert_eq!(safe_component("a/b"), "a_b");
        assert_eq!(safe_component(""), "_");
        assert_eq!(safe_component("12345.0"), "12345.0");
        // The same table as in src/format/path.rs (the launcher): the two copies of the rule must agree.
        for (value, safe_name) in [
            ("../x", "_._x"),
            ("..", "_."),
            ("a/b", "a_b"),
            ("", "_"),
            (".hidden", "_hidden"),
            ("12345.0", "12345.0"),
            ("n1.cluster-a", "n1.cluster-a"),
            ("a b+c\\d", "a_b+c_d"),
            ("nœud\0", "n_ud_"),
        ] {
            assert_eq!(safe_component(value), safe_name, "{value:?}");
        }
    }

    fn span() -> SpanData {
        let mut events = SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "SIGTERM",
            UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
            vec![KeyValue::new("signal.number", 15)],
            0,
        ));
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
                SpanId::from_hex("b7ad6b7169203331").unwrap(),
                TraceFlags::SAMPLED,
                false,
                "k=v".parse::<TraceState>().unwrap(),
            ),
            parent_span_id: SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            parent_span_is_remote: true,
            span_kind: SpanKind::Internal,
            name: "halo \"x\"".into(),
            start_time: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_000_000),
            end_time: UNIX_EPOCH + Duration::from_nanos(1_700_000_001_999_999_999),
            attributes: vec![
                KeyValue::new("mpi.rank", 3),
                KeyValue::new("x", f64::NAN),
                KeyValue::new("list", Value::Array(Array::I64(vec![1, 2]))),
                KeyValue::new("up", f64::INFINITY),
                KeyValue::new("down", Value::Array(Array::F64(vec![f64::NEG_INFINITY]))),
            ],
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status: Status::error("terminated by SIGTERM"),
            instrumentation_scope: InstrumentationScope::builder("otel-run-sdk")
                .with_version("0.1.0")
                .build(),
        }
    }

    #[test]
    fn writes_the_python_line_format() {
        let mut out = Vec::new();
        let resource = Resource::builder_empty()
            .with_attribute(KeyValue::new("service.name", "sim"))
            .build();
        write_line(&mut out, &span(), &resource_json(&resource));
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        assert_eq!(
            line,
            concat!(
                r#"{"name":"halo \"x\"","context":{"trace_id":"0x0af7651916cd43dd8448eb211c80319c","span_id":"0xb7ad6b7169203331","trace_state":"['{key=k, value=v}']"},"#,
                r#""kind":"SpanKind.INTERNAL","parent_id":"0x00f067aa0ba902b7","start_time":"2023-11-14T22:13:20.000000Z","end_time":"2023-11-14T22:13:21.999999Z","#,
                r#""status":{"status_code":"ERROR","description":"terminated by SIGTERM"},"attributes":{"mpi.rank":3,"x":NaN,"list":[1,2],"up":Infinity,"down":[-Infinity]},"#,
                r#""events":[{"name":"SIGTERM","timestamp":"2023-11-14T22:13:20.123456Z","attributes":{"signal.number":15}}],"links":[],"#,
                r#""resource":{"attributes":{"service.name":"sim"},"schema_url":""},"instrumentation_scope":{"name":"otel-run-sdk","version":"0.1.0"}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn dates_match_the_calendar() {
        for (days, want) in [
            (0, (1970, 1, 1)),
            (11_016, (2000, 2, 29)),
            (-1, (1969, 12, 31)),
            (20_454, (2026, 1, 1)),
        ] {
            assert_eq!(civil_from_days(days), want);
        }
    }

    #[test]
    fn path_templates() {
        let env = |k: &str| match k {
            "PMI_RANK" => Some("2".to_string()),
            "SLURM_PROCID" => Some("0".to_string()),
            "SLURM_JOB_ID" => Some("77".to_string()),
            _ => None,
        };
        assert_eq!(
            expand_path("t_{job}.{step}_{rank}of{size}.jsonl", &env).unwrap(),
            "t_77.0_2of1.jsonl"
        );
        let s = expand_path("traces_*.jsonlines", &env).unwrap();
        assert_eq!(s.len(), "traces_.jsonlines".len() + 8);
        assert!(expand_path("{ranks}", &env)
            .unwrap_err()
            .contains("unknown placeholder"));
    }
}
