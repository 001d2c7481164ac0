//! Reading the environment contract: the variables otel-run sets for its child plus the standard
//! OTEL_* ones. Pure functions of a variable lookup, so every rule is unit-tested without touching
//! the process environment. A malformed value yields one warning and a working default.

use std::time::Duration;

/// Ceiling of `OTEL_BSP_MAX_QUEUE_SIZE` and `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: a million ended
/// spans waiting is far beyond any real backlog, and the queue is allocated up front.
pub const MAX_QUEUE: u64 = 1 << 20;
/// Ceiling of `OTEL_BSP_SCHEDULE_DELAY`: one hour.
pub const MAX_SCHEDULE_DELAY_MS: u64 = 3_600_000;

/// Where spans go (`OTEL_TRACES_EXPORTER`, a comma list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterKind {
    Otlp,
    JsonLines,
    Console,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    HttpProtobuf,
    Grpc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// Full URL: for http/protobuf it already ends in `/v1/traces` when it came from the generic
    /// variable (the OTLP exporter spec: only the generic endpoint gets the signal path appended).
    pub endpoint: String,
    pub protocol: Protocol,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub gzip: bool,
}

/// The W3C trace context the program continues (`TRACEPARENT` / `TRACESTATE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
    /// W3C `k=v,k=v`, validated by the opentelemetry crate when used.
    pub trace_state: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub service_name: String,
    pub resource: Vec<(String, String)>,
    pub exporters: Vec<ExporterKind>,
    pub otlp: OtlpConfig,
    /// `OTEL_EXPORTER_JSONLINES_PATH` as given (a template; expanded when the file is opened).
    pub jsonlines_path: String,
    pub parent: Option<Parent>,
    /// `OTEL_BSP_SCHEDULE_DELAY`: how long an ended span may wait before its batch is exported.
    pub schedule_delay: Duration,
    /// `OTEL_BSP_MAX_QUEUE_SIZE` (at most [`MAX_QUEUE`]): ended spans waiting for the exporter
    /// thread; more are dropped.
    pub max_queue: usize,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`.
    pub max_batch: usize,
    pub warnings: Vec<String>,
}

pub const DEFAULT_JSONLINES_PATH: &str = "traces_*.jsonlines";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the contract through `var` (the process environment in production).
pub fn from_lookup(var: &dyn Fn(&str) -> Option<String>) -> Config {
    let warnings = std::cell::RefCell::new(Vec::new());
    // Empty means unset, as in every OpenTelemetry SDK.
    let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let warn = |name: &str, value: &str, what: String| {
        warnings
            .borrow_mut()
            .push(format!("ignoring {name}={value:?}: {what}"));
    };

    let sdk_disabled =
        get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));

    // Resource: OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME wins for service.name.
    let mut resource = Vec::new();
    if let Some(raw) = get("OTEL_RESOURCE_ATTRIBUTES") {
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    match (percent_decode(k.trim()), percent_decode(v.trim())) {
                        (Some(k), Some(v)) => {
                            resource.retain(|(old, _): &(String, String)| *old != k);
                            resource.push((k, v));
                        }
                        _ => warn(
                            "OTEL_RESOURCE_ATTRIBUTES",
                            item,
                            "invalid percent-encoding".into(),
                        ),
                    }
                }
                _ => warn("OTEL_RESOURCE_ATTRIBUTES", item, "want key=value".into()),
            }
        }
    }
    let service_name = get("OTEL_SERVICE_NAME")
        .map(|s| s.trim().to_string())
        .or_else(|| {
            resource
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| {
            let exe = std::env::args_os()
                .next()
                .map(std::path::PathBuf::from)
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            format!("unknown_service:{}", exe.unwrap_or_default())
        });
    resource.retain(|(k, _)| k != "service.name");

    // Exporters. Unset: a span file when a path is given, OTLP when an endpoint is given, else
    // nothing — a program run without any OpenTelemetry configuration must stay silent and cheap.
    let jsonlines_given = get("OTEL_EXPORTER_JSONLINES_PATH");
    let endpoint_given =
        get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let mut exporters = Vec::new();
    match get("OTEL_TRACES_EXPORTER") {
        Some(raw) => {
            for item in raw.split(',').map(|s| s.trim().to_ascii_lowercase()) {
                let kind = match item.as_str() {
                    "otlp" => ExporterKind::Otlp,
                    "jsonlines" => ExporterKind::JsonLines,
                    "console" => ExporterKind::Console,
                    "none" | "" => continue,
                    _ => {
                        warn(
                            "OTEL_TRACES_EXPORTER",
                            &raw,
                            format!(
                                "unknown exporter {item:?} (known: otlp, jsonlines, console, none)"
                            ),
                        );
                        continue;
                    }
                };
                if !exporters.contains(&kind) {
                    exporters.push(kind);
                }
            }
            // `none` anywhere in the list means none (the spec's rule).
            if raw
                .split(',')
                .any(|s| s.trim().eq_ignore_ascii_case("none"))
            {
                exporters.clear();
            }
        }
        None if jsonlines_given.is_some() => exporters.push(ExporterKind::JsonLines),
        None if endpoint_given.is_some() => exporters.push(ExporterKind::Otlp),
        None => {}
    }
    if sdk_disabled {
        exporters.clear();
    }

    // OTLP: the traces-specific variable beats the generic one, each independently.
    let pick = |name: &str| -> Option<(String, String)> {
        let specific = format!("OTEL_EXPORTER_OTLP_TRACES_{name}");
        let generic = format!("OTEL_EXPORTER_OTLP_{name}");
        get(&specific)
            .map(|v| (specific, v))
            .or_else(|| get(&generic).map(|v| (generic, v)))
    };
    let protocol = match pick("PROTOCOL") {
        None => Protocol::HttpProtobuf,
        Some((_, v)) if v.trim() == "http/protobuf" => Protocol::HttpProtobuf,
        Some((_, v)) if v.trim() == "grpc" => Protocol::Grpc,
        Some((name, v)) => {
            warn(
                &name,
                &v,
                "unknown protocol (known: http/protobuf, grpc); using http/protobuf".into(),
            );
            Protocol::HttpProtobuf
        }
    };
    let endpoint = match (
        get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        get("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(v), _) => checked_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v.trim(), &warn),
        (None, Some(v)) => {
            checked_url("OTEL_EXPORTER_OTLP_ENDPOINT", v.trim(), &warn).map(|base| {
                if protocol == Protocol::HttpProtobuf {
                    format!("{}/v1/traces", base.trim_end_matches('/'))
                } else {
                    base
                }
            })
        }
        (None, None) => None,
    }
    .unwrap_or_else(|| match protocol {
        Protocol::HttpProtobuf => "http://localhost:4318/v1/traces".into(),
        Protocol::Grpc => "http://localhost:4317".into(),
    });
    let mut headers = Vec::new();
    if let Some((name, raw)) = pick("HEADERS") {
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once('=') {
                Some((k, v)) if valid_header_name(k.trim()) => match percent_decode(v.trim()) {
                    Some(v) => headers.push((k.trim().to_ascii_lowercase(), v)),
                    None => warn(&name, item, "invalid percent-encoding".into()),
                },
                // Never echo a header value: it may be a credential (the sink token travels here).
                _ => warnings.borrow_mut().push(format!(
                    "ignoring an entry of {name}: want name=value with a valid header name"
                )),
            }
        }
    }
    let timeout = match pick("TIMEOUT") {
        None => DEFAULT_TIMEOUT,
        Some((name, v)) => match v.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                warn(
                    &name,
                    &v,
                    "want a positive number of milliseconds; using 10000".into(),
                );
                DEFAULT_TIMEOUT
            }
        },
    };
    let gzip = match pick("COMPRESSION") {
        None => false,
        Some((_, v)) if v.trim() == "gzip" => true,
        Some((_, v)) if v.trim() == "none" => false,
        Some((name, v)) => {
            warn(
                &name,
                &v,
                "unknown compression (known: gzip, none); using none".into(),
            );
            false
        }
    };
    if let Some((name, v)) = pick("CERTIFICATE") {
        if exporters.contains(&ExporterKind::Otlp) && endpoint.starts_with("https:") {
            warn(&name, &v, "this build has no TLS support; use an http:// endpoint (otel-run's sink is plain loopback)".into());
        }
    }

    let parent = match get("TRACEPARENT") {
        None => None,
        Some(v) => match parse_traceparent(v.trim()) {
            Ok(mut p) => {
                if let Some(ts) = get("TRACESTATE") {
                    p.trace_state = ts.trim().to_string();
                }
                Some(p)
            }
            Err(e) => {
                warn(
                    "TRACEPARENT",
                    &v,
                    format!("{e}; root spans start a new trace"),
                );
                None
            }
        },
    };

    // Every value has a ceiling: the queue is allocated up front (a bounded channel), so an
    // unbounded OTEL_BSP_MAX_QUEUE_SIZE would abort the program instead of configuring it.
    let number = |name: &str, default: u64, min: u64, max: u64| -> u64 {
        match get(name) {
            None => default,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    warnings.borrow_mut().push(format!(
                        "ignoring {name}={v:?}: want an integer from {min} to {max}; using {default}"
                    ));
                    default
                }
            },
        }
    };
    let schedule_delay = Duration::from_millis(number(
        "OTEL_BSP_SCHEDULE_DELAY",
        1000,
        1,
        MAX_SCHEDULE_DELAY_MS,
    ));
    let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", 65536, 1, MAX_QUEUE) as usize;
    let max_batch = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1, MAX_QUEUE) as usize;

    Config {
        service_name,
        resource,
        exporters,
        otlp: OtlpConfig {
            endpoint,
            protocol,
            headers,
            timeout,
            gzip,
        },
        jsonlines_path: jsonlines_given
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| DEFAULT_JSONLINES_PATH.to_string()),
        parent,
        schedule_delay,
        max_queue,
        max_batch: max_batch.min(max_queue),
        warnings: warnings.into_inner(),
    }
}

fn checked_url(name: &str, v: &str, warn: &dyn Fn(&str, &str, String)) -> Option<String> {
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Some(v.to_string()),
        _ => {
            warn(
                name,
                v,
                "want an http:// or https:// URL; using the default endpoint".into(),
            );
            None
        }
    }
}

fn valid_header_name(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `%XX` decoding (W3C Baggage / OTEL_RESOURCE_ATTRIBUTES rules); `None` on a bad escape or
/// non-UTF-8 result.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// W3C `traceparent`: `VV-<32 hex>-<16 hex>-<2 hex>`. Version `ff` and all-zero ids are invalid;
/// a future version may carry more fields after the flags.
pub fn parse_traceparent(s: &str) -> Result<Parent, String> {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() < 4 {
        return Err("want VERSION-TRACEID-SPANID-FLAGS".into());
    }
    let hex = |p: &str, n: usize, what: &str| -> Result<Vec<u8>, String> {
        if p.len() != 2 * n
            || !p
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(format!("{what} must be {} lowercase hex digits", 2 * n));
        }
        Ok((0..n)
            .map(|i| u8::from_str_radix(&p[2 * i..2 * i + 2], 16).expect("checked hex"))
            .collect())
    };
    let version = hex(parts[0], 1, "version")?[0];
    if version == 0xff {
        return Err("version ff is invalid".into());
    }
    if version == 0 && parts.len() != 4 {
        return Err("version 00 has exactly 4 fields".into());
    }
    let trace: [u8; 16] = hex(parts[1], 16, "trace id")?.try_into().expect("16 bytes");
    let span: [u8; 8] = hex(parts[2], 8, "parent id")?.try_into().expect("8 bytes");
    let flags = hex(parts[3], 1, "flags")?[0];
    if trace == [0; 16] {
        return Err("trace id is all zeros".into());
    }
    if span == [0; 8] {
        return Err("parent id is all zeros".into());
    }
    Ok(Parent {
        trace_id: trace,
        span_id: span,
        sampled: flags & 1 == 1,
        trace_state: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_lookup(&|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_exports_nothing_silently() {
        let c = config(&[]);
        assert!(c.exporters.is_empty());
        assert!(c.warnings.is_empty());
        assert!(c.parent.is_none());
    }

    #[test]
    fn exporter_selection() {
        use ExporterKind::*;
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [ExporterKind], usize);
        let cases: &[Case] = &[
            (&[("OTEL_TRACES_EXPORTER", "otlp")], &[Otlp], 0),
            (
                &[("OTEL_TRACES_EXPORTER", "jsonlines, console")],
                &[JsonLines, Console],
                0,
            ),
            (&[("OTEL_TRACES_EXPORTER", "otlp,none")], &[], 0),
            (&[("OTEL_TRACES_EXPORTER", "zipkin,otlp")], &[Otlp], 1),
            (
                &[("OTEL_EXPORTER_JSONLINES_PATH", "/tmp/x.jsonl")],
                &[JsonLines],
                0,
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")],
                &[Otlp],
                0,
            ),
            (
                &[
                    ("OTEL_TRACES_EXPORTER", "otlp"),
                    ("OTEL_SDK_DISABLED", "true"),
                ],
                &[],
                0,
            ),
        ];
        for (vars, want, warnings) in cases {
            let c = config(vars);
            assert_eq!(&c.exporters, want, "{vars:?}");
            assert_eq!(c.warnings.len(), *warnings, "{vars:?}: {:?}", c.warnings);
        }
    }

    #[test]
    fn otlp_settings_prefer_the_traces_variables() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "x-otel-run-token=s%3Dcret, B=2",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]);
        assert_eq!(c.otlp.endpoint, "http://generic:4318/v1/traces");
        assert_eq!(
            c.otlp.headers,
            vec![
                ("x-otel-run-token".into(), "s=cret".into()),
                ("b".into(), "2".into())
            ]
        );
        assert_eq!(c.otlp.timeout, Duration::from_millis(2500));
        let c = config(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://sink:1/v1/traces",
        )]);
        assert_eq!(c.otlp.endpoint, "http://sink:1/v1/traces");
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:4317"),
        ]);
        assert_eq!(
            (c.otlp.protocol, c.otlp.endpoint.as_str()),
            (Protocol::Grpc, "http://h:4317")
        );
    }

    #[test]
    fn malformed_values_warn_once_each_and_fall_back() {
        let cases: &[(&str, &str)] = &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "foo"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"),
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
            ("OTEL_RESOURCE_ATTRIBUTES", "k=%zz"),
            ("TRACEPARENT", "00-abc-def-01"),
            ("OTEL_BSP_SCHEDULE_DELAY", "-1"),
            // Allocated up front: a huge value once aborted the program instead of configuring it.
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1000000000000"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "99999999999"),
            ("OTEL_BSP_SCHEDULE_DELAY", "18446744073709551615"),
        ];
        for (k, v) in cases {
            let c = config(&[(k, v)]);
            assert_eq!(c.warnings.len(), 1, "{k}={v}: {:?}", c.warnings);
            assert!(c.warnings[0].contains(k), "{:?}", c.warnings);
        }
        let c = config(&[("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "bad header=secret")]);
        assert_eq!(c.warnings.len(), 1);
        assert!(
            !c.warnings[0].contains("secret"),
            "a header value may be a credential"
        );
    }

    #[test]
    fn resource_and_service_name() {
        let c = config(&[
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=a,mpi.rank=3,k=hello%20world",
            ),
            ("OTEL_SERVICE_NAME", "sim"),
        ]);
        assert_eq!(c.service_name, "sim");
        assert_eq!(
            c.resource,
            vec![
                ("mpi.rank".into(), "3".into()),
                ("k".into(), "hello world".into())
            ]
        );
        assert_eq!(
            config(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=a")]).service_name,
            "a"
        );
    }

    #[test]
    fn traceparent_rules() {
        let ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let p = parse_traceparent(ok).unwrap();
        assert!(p.sampled);
        assert_eq!(p.span_id, [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]);
        assert!(
            parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-extra")
                .is_ok()
        );
        for bad in [
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            "garbage",
        ] {
            assert!(parse_traceparent(bad).is_err(), "{bad}");
        }
        let c = config(&[("TRACEPARENT", ok), ("TRACESTATE", "k=v")]);
        assert_eq!(c.parent.unwrap().trace_state, "k=v");
    }
}
