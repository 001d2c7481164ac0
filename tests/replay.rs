//! `otel-run replay` against a real collector (rotel, printing every span it receives): lossless
//! round trips of both line formats and of the Python SDK's own file over gRPC and HTTP, the time
//! shift, dead, killed, refusing and partially accepting collectors, and the bad-input table.

mod common;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use otel_run::attr;
use otel_run::export::render;
use otel_run::format::LineFormat;
use prost::Message;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------- inputs

fn kv(key: &str, value: Value) -> KeyValue {
    attr::kv(key, value)
}

fn any(v: Value) -> AnyValue {
    AnyValue { value: Some(v) }
}

/// Spans with everything the formats carry: every attribute type, events, links with trace
/// state, span trace state, every kind and status, nanosecond times, two resources and scopes.
/// `otlp` adds what only the otlp format keeps: bytes, kind UNSPECIFIED (Python has none) and a
/// scope schema URL.
fn rich(otlp: bool, seed: u8) -> Vec<ResourceSpans> {
    let t0 = 1_700_000_000_123_456_789u64;
    let mut attributes = vec![
        attr::string("s", "text with \"quotes\" and ünïcode"),
        attr::boolean("b", false),
        attr::int("i", i64::MIN),
        attr::double("d", 0.1),
        attr::double("d.integral", 2.0),
        kv(
            "a.s",
            Value::ArrayValue(ArrayValue {
                values: vec![
                    any(Value::StringValue("x".into())),
                    any(Value::StringValue("y".into())),
                ],
            }),
        ),
        kv(
            "a.i",
            Value::ArrayValue(ArrayValue {
                values: vec![any(Value::IntValue(1)), any(Value::IntValue(-2))],
            }),
        ),
        kv(
            "m",
            Value::KvlistValue(KeyValueList {
                values: vec![attr::int("inner", 7), attr::string("name", "v")],
            }),
        ),
    ];
    if otlp {
        attributes.push(kv("bytes", Value::BytesValue(vec![0, 1, 254])));
    }
    let id = |n: u8| {
        let mut v = vec![seed; 8];
        v[7] = n;
        v
    };
    let trace = vec![seed; 16];
    let spans = (0..6u8)
        .map(|n| Span {
            trace_id: trace.clone(),
            span_id: id(n + 1),
            parent_span_id: if n == 0 { vec![] } else { id(1) },
            trace_state: if n == 2 {
                "vendor=a,other=b".into()
            } else {
                String::new()
            },
            name: format!("span {n}"),
            kind: if otlp { n as i32 % 6 } else { n as i32 % 5 + 1 },
            start_time_unix_nano: t0 + n as u64 * 1_000_001,
            end_time_unix_nano: t0 + n as u64 * 1_000_001 + 999_999_999,
            attributes: if n == 1 {
                attributes.clone()
            } else {
                vec![attr::int("n", n as i64)]
            },
            events: if n == 1 {
                vec![
                    span::Event {
                        time_unix_nano: t0 + 5,
                        name: "checkpoint".into(),
                        attributes: vec![attr::double("residual", 1.5e-3)],
                        dropped_attributes_count: 0,
                    },
                    span::Event {
                        time_unix_nano: t0 + 7,
                        name: "bare".into(),
                        attributes: vec![],
                        dropped_attributes_count: 0,
                    },
                ]
            } else {
                vec![]
            },
            links: if n == 3 {
                vec![
                    span::Link {
                        trace_id: vec![0xee; 16],
                        span_id: vec![0xdd; 8],
                        trace_state: "k=v".into(),
                        attributes: vec![attr::string("why", "follows")],
                        dropped_attributes_count: 0,
                        flags: 0,
                    },
                    span::Link {
                        trace_id: trace.clone(),
                        span_id: id(1),
                        trace_state: String::new(),
                        attributes: vec![],
                        dropped_attributes_count: 0,
                        flags: 0,
                    },
                ]
            } else {
                vec![]
            },
            status: Some(Status {
                code: n as i32 % 3,
                message: if n % 3 == 2 {
                    "boom: it failed".into()
                } else {
                    String::new()
                },
            }),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    let resource = |rank: i64| Resource {
        attributes: vec![
            attr::string("service.name", "sim"),
            attr::int("mpi.rank", rank),
            attr::strings("tags", ["hpc".to_string(), "test".to_string()]),
        ],
        ..Default::default()
    };
    let scope = |name: &str| InstrumentationScope {
        name: name.into(),
        version: "1.2".into(),
        attributes: vec![attr::boolean("scoped", true)],
        dropped_attributes_count: 0,
    };
    vec![
        ResourceSpans {
            resource: Some(resource(0)),
            scope_spans: vec![
                ScopeSpans {
                    scope: Some(scope("lib.a")),
                    spans: spans[..3].to_vec(),
                    schema_url: if otlp {
                        "https://scope/1".into()
                    } else {
                        String::new()
                    },
                },
                ScopeSpans {
                    scope: Some(scope("lib.b")),
                    spans: spans[3..5].to_vec(),
                    schema_url: String::new(),
                },
            ],
            schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
        },
        ResourceSpans {
            resource: Some(resource(1)),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope("lib.a")),
                spans: spans[5..].to_vec(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        },
    ]
}

fn write_file(path: &Path, format: LineFormat, data: &[ResourceSpans]) {
    let mut buf = Vec::new();
    render(&mut buf, format, data);
    std::fs::write(path, buf).unwrap();
}

/// The full data of a file (resource, scope and schema URLs included), via otel-run's reader.
fn read_data(path: &Path) -> Vec<ResourceSpans> {
    let file = std::fs::File::open(path).unwrap();
    let mut reader =
        otel_run::format::Reader::new(path.display().to_string(), BufReader::new(file));
    let mut out = Vec::new();
    while let Some((_, data)) = reader.next_data().unwrap() {
        out.extend(data.resource_spans);
    }
    out
}

/// The real Python SDK's file (tests/support/py_reference.py).
fn sdk_file(dir: &Path) -> PathBuf {
    python_sdk_file(dir, "sdk.jsonl")
}

/// The real Python SDK's file (tests/support/py_reference.py) reads line by line in every detail
/// a reader can keep, and a sketch (what merge and replay's first pass read) holds the same ids,
/// times, kind and status as the whole span.
#[test]
fn every_detail_reads_the_sdk_file() {
    use otel_run::format::{parse, Detail};
    let dir = tempdir();
    let text = std::fs::read_to_string(sdk_file(dir.path())).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(lines.len() >= 5, "{text}");
    for line in &lines {
        let (full, _) = parse(line.as_bytes(), Detail::Full).unwrap();
        let (shared, resource) = parse(line.as_bytes(), Detail::SharedResource).unwrap();
        let (sketch, _) = parse(line.as_bytes(), Detail::Sketch).unwrap();
        let mut rebuilt = shared.resource_spans[0].clone();
        let resource = resource.unwrap();
        rebuilt.resource = Some(resource.resource.clone());
        rebuilt.schema_url = resource.schema_url.clone();
        assert_eq!(rebuilt, full.resource_spans[0], "{line}");
        let (a, b) = (
            &full.resource_spans[0].scope_spans[0].spans[0],
            &sketch.resource_spans[0].scope_spans[0].spans[0],
        );
        let key = |s: &Span| {
            (
                s.trace_id.clone(),
                s.span_id.clone(),
                s.parent_span_id.clone(),
                s.start_time_unix_nano,
                s.end_time_unix_nano,
                s.kind,
                s.status.as_ref().map(|s| s.code),
                s.events
                    .iter()
                    .map(|e| e.time_unix_nano)
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(key(a), key(b), "{line}");
    }
}

/// Span files written by the otel-run binary itself, in both formats.
fn launcher_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (name, format, cmd) in [
        ("run-python.jsonl", "python", "exit 3"),
        ("run-otlp.jsonl", "otlp", "true"),
    ] {
        let out = run(otel_run(dir).args([
            "--jsonlines-path",
            name,
            "--jsonlines-format",
            format,
            "--",
            "sh",
            "-c",
            cmd,
        ]));
        assert!(out.status.code().is_some(), "{}", text(&out.stderr));
        files.push(dir.join(name));
    }
    files
}

fn replay(dir: &Path, args: &[&str]) -> Output {
    run(otel_run(dir).arg("replay").args(args))
}

fn args<'a>(fixed: &[&'a str], more: &'a [String]) -> Vec<&'a str> {
    fixed
        .iter()
        .copied()
        .chain(more.iter().map(String::as_str))
        .collect()
}

/// The `sent N of M` of a failed replay's error.
fn sent_of(stderr: &str) -> (u64, u64) {
    let at = stderr
        .find("; sent ")
        .unwrap_or_else(|| panic!("no 'sent N of M' in: {stderr}"));
    let words: Vec<&str> = stderr[at + 2..].split_whitespace().collect();
    assert_eq!(words[2], "of", "{stderr}");
    (
        words[1].parse().unwrap(),
        words[3].trim_end_matches(';').parse().unwrap(),
    )
}

const UNANSWERED: &str = "sent without an answer (the collector may have them)";
const ANSWERED_RETRYABLE: &str = "answered with an error (retryable)";
const ANSWERED_FINAL: &str = "answered with an error (not retryable)";
const NOT_SENT: &str = "not sent";

/// What a failed replay's error says became of the spans it did not send: `N what` after
/// `sent N of M spans; `, as what → N.
fn failure_counts(stderr: &str) -> BTreeMap<String, u64> {
    let line = stderr
        .lines()
        .find(|l| l.contains("error: export to"))
        .unwrap_or_else(|| panic!("no export error in: {stderr}"));
    let at = line
        .rfind(" spans; ")
        .unwrap_or_else(|| panic!("no counts in: {line}"));
    line[at + " spans; ".len()..]
        .split(", ")
        .map(|part| {
            let (n, what) = part.split_once(' ').unwrap();
            let n = n.parse().unwrap_or_else(|_| panic!("{part:?} in {line}"));
            (what.to_string(), n)
        })
        .collect()
}

/// Requests answered "retry" until the export timeout: each ends answered with a retryable
/// error, unless a retry was still on its way when the timeout came, which makes it "sent without
/// an answer" (the collector may have it). Which of the two depends on timing, so both are
/// accepted; every span is counted exactly once, in one of them, and nothing else.
fn retried_until_the_timeout(stderr: &str) {
    let found = failure_counts(stderr);
    assert!(
        found
            .keys()
            .all(|k| k == ANSWERED_RETRYABLE || k == UNANSWERED),
        "{stderr}"
    );
    assert_eq!(found.values().sum::<u64>(), 6, "{stderr}");
}

fn counts(parts: &[(&str, u64)]) -> BTreeMap<String, u64> {
    parts.iter().map(|(w, n)| (w.to_string(), *n)).collect()
}

fn assert_no_panic(out: &Output) {
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// ---------------------------------------------------------------- tests

#[test]
fn round_trip_is_lossless_over_grpc_and_http() {
    let dir = tempdir();
    let d = dir.path();
    let mut files = Vec::new();
    for (name, format, otlp, seed) in [
        ("rich.otlp.jsonl", LineFormat::Otlp, true, 0x11),
        ("rich.python.jsonl", LineFormat::Python, false, 0x22),
    ] {
        let mut data = rich(otlp, seed);
        if format == LineFormat::Python {
            micros(&mut data);
        }
        write_file(&d.join(name), format, &data);
        // What was built, not what the reader makes of it: the comparison checks the reader too.
        files.push((d.join(name), data));
    }
    for path in launcher_files(d).into_iter().chain([sdk_file(d)]) {
        let data = read_data(&path);
        files.push((path, data));
    }
    let total: usize = files
        .iter()
        .map(|(_, d)| otel_run::format::span_count(d))
        .sum();
    let paths: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    for protocol in ["grpc", "http/protobuf"] {
        let rotel = Rotel::start();
        let ep = endpoint_args(&rotel, protocol);
        let mut a = args(&["--keep-timestamps", "--batch-size", "4"], &ep);
        a.extend(paths.iter().map(String::as_str));
        let out = replay(d, &a);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{protocol}: {stderr}");
        assert!(
            stderr.contains(&format!("5 files, {total} spans read, {total} sent, 0 rejected, 0 lines skipped, timestamps kept")),
            "{protocol}: {stderr}"
        );
        assert_received_exactly(&rotel, &files, 0);
    }
}

#[test]
fn default_shift_moves_the_latest_end_to_now_and_keeps_every_offset() {
    let dir = tempdir();
    let path = sdk_file(dir.path());
    let data = read_data(&path);
    let latest = data
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.end_time_unix_nano)
        .max()
        .unwrap();
    let rotel = Rotel::start();
    let ep = endpoint_args(&rotel, "http/protobuf");
    let mut a = args(&["--service-name", "replayed"], &ep);
    a.push("sdk.jsonl");
    let out = replay(dir.path(), &a);
    let now = otel_run::format::time::now_nanos() as i128;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The summary states the shift exactly; every time moved by exactly that much.
    let shown = stderr
        .split("time shift +")
        .nth(1)
        .unwrap_or_else(|| panic!("{stderr}"));
    let (secs, nanos) = shown.split_once(" s").unwrap().0.split_once('.').unwrap();
    let shift = secs.parse::<i128>().unwrap() * 1_000_000_000 + nanos.parse::<i128>().unwrap();
    let new_latest = latest as i128 + shift;
    assert!(
        new_latest <= now && now - new_latest < 1_000_000_000,
        "latest end {new_latest}, now {now}"
    );
    let renamed: Vec<ResourceSpans> = data
        .into_iter()
        .map(|mut rs| {
            let r = rs.resource.get_or_insert_with(Default::default);
            attr::upsert(&mut r.attributes, attr::string("service.name", "replayed"));
            rs
        })
        .collect();
    assert_received_exactly(&rotel, &[(path, renamed)], shift);
}

#[test]
fn globs_gzip_and_stdin_are_read_and_counted() {
    let dir = tempdir();
    let d = dir.path();
    let a = rich(true, 0x31);
    let b = rich(false, 0x32);
    let c = rich(true, 0x33);
    write_file(&d.join("rank0.jsonl"), LineFormat::Python, &b);
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(d.join("rank1.jsonl.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    let mut buf = Vec::new();
    render(&mut buf, LineFormat::Otlp, &a);
    gz.write_all(&buf).unwrap();
    gz.finish().unwrap();
    let mut piped = Vec::new();
    render(&mut piped, LineFormat::Otlp, &c);
    // Stdin is gzip too, and is read twice (default time shift): through the temporary copy.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&piped).unwrap();
    let piped = gz.finish().unwrap();
    let rotel = Rotel::start();
    let ep = endpoint_args(&rotel, "grpc");
    let mut child = otel_run(d)
        .arg("replay")
        .args(&ep)
        .args(["rank*", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&piped).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr
            .contains("3 files, 18 spans read, 18 sent, 0 rejected, 0 lines skipped, time shift +"),
        "{stderr}"
    );
    rotel.wait_spans(18);
    let got = printed(&rotel.output());
    for data in [&a, &b, &c] {
        for s in data
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
        {
            assert_eq!(
                got.get(&hex(&s.span_id)).map(Vec::len),
                Some(1),
                "{}",
                s.name
            );
        }
    }
}

#[test]
fn dry_run_validates_and_counts_without_a_collector() {
    let dir = tempdir();
    write_file(
        &dir.path().join("a.jsonl"),
        LineFormat::Python,
        &rich(false, 0x41),
    );
    // A collector that would accept a connection: the dry run must never make one.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let out = replay(
        dir.path(),
        &[
            "--dry-run",
            "--exporter-otlp-endpoint",
            &endpoint,
            "a.jsonl",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("1 file, 6 spans read, dry run: none sent, 0 lines skipped, time shift +"),
        "{stderr}"
    );
    listener.set_nonblocking(true).unwrap();
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the dry run connected to the collector"
    );
    // -q: errors only, so no summary.
    let out = replay(dir.path(), &["-q", "--dry-run", "a.jsonl"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn dead_collector_fails_in_bounded_time_with_exact_counts() {
    let dir = tempdir();
    write_file(
        &dir.path().join("a.jsonl"),
        LineFormat::Python,
        &rich(false, 0x51),
    );
    let refused = refused_port(); // bound, never listening: connections are refused
    let port = refused.port;
    for protocol in ["grpc", "http/protobuf"] {
        // Retried (connection refused is transient) until the 1 s timeout, then given up.
        // Three requests of 2 spans in flight, none of which ever had a connection.
        let out = exit_within(
            otel_run(dir.path()).arg("replay").args([
                "--batch-size",
                "2",
                "--exporter-otlp-timeout",
                "1000",
                "--exporter-otlp-protocol",
                protocol,
                "--exporter-otlp-endpoint",
                &format!("http://127.0.0.1:{port}"),
                "a.jsonl",
            ]),
            Duration::from_secs(60),
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{protocol}: {stderr}");
        assert!(
            stderr.contains("otel-run replay: error: export to http://127.0.0.1:")
                && stderr.contains("Connection refused"),
            "{stderr}"
        );
        assert_eq!(sent_of(&stderr), (0, 6), "{stderr}");
        assert_eq!(
            failure_counts(&stderr),
            counts(&[(NOT_SENT, 6)]),
            "{protocol}: a refused connection sends nothing: {stderr}"
        );
        assert!(
            stderr.contains("6 spans read, 0 sent, 0 rejected, 6 not sent, 0 lines skipped"),
            "{protocol}: {stderr}"
        );
        assert_no_panic(&out);
    }
}

#[test]
fn collector_killed_mid_replay_reports_exactly_what_it_accepted() {
    let dir = tempdir();
    let path = dir.path().join("big.jsonl");
    let n = 20_000u64;
    let mut buf = Vec::new();
    let mut data = rich(false, 0x61);
    let template = data[0].scope_spans[0].spans[0].clone();
    data.truncate(1);
    data[0].scope_spans.truncate(1);
    for i in 0..n {
        let mut s = template.clone();
        s.span_id = (i + 1).to_be_bytes().to_vec();
        data[0].scope_spans[0].spans = vec![s];
        render(&mut buf, LineFormat::Python, &data);
    }
    std::fs::write(&path, buf).unwrap();
    for protocol in ["grpc", "http/protobuf"] {
        let mut rotel = Rotel::start();
        let ep = endpoint_args(&rotel, protocol);
        let mut child = otel_run(dir.path())
            .arg("replay")
            .args(["--batch-size", "100", "--exporter-otlp-timeout", "1000"])
            .args(&ep)
            .arg("big.jsonl")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        rotel.wait_spans(1);
        // SIGTERM: rotel acknowledges a request before its debug exporter prints it, so after
        // a SIGKILL its log could miss acknowledged spans; on SIGTERM it prints what it holds.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(rotel.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        rotel.child.wait().unwrap();
        let mut stderr = String::new();
        let read = child.stderr.take().unwrap().read_to_string(&mut stderr);
        read.unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(1), "{protocol}: {stderr}");
        let (sent, total) = sent_of(&stderr);
        let received = rotel.span_ids().len() as u64;
        assert_eq!(total, n, "{stderr}");
        assert!(
            sent < n,
            "{protocol}: the kill came too late to test anything: {stderr}"
        );
        // Every span read is exactly one of: sent, sent without an answer, answered with an
        // error (rotel shutting down may answer UNAVAILABLE / 503), not sent.
        let c = failure_counts(&stderr);
        let unanswered = c.get(UNANSWERED).copied().unwrap_or(0);
        let answered = c.get(ANSWERED_RETRYABLE).copied().unwrap_or(0);
        let not_sent = c.get(NOT_SENT).copied().unwrap_or(0);
        assert_eq!(
            c.keys()
                .filter(|k| ![UNANSWERED, ANSWERED_RETRYABLE, NOT_SENT].contains(&k.as_str()))
                .count(),
            0,
            "{protocol}: {stderr}"
        );
        assert_eq!(
            sent + unanswered + answered + not_sent,
            n,
            "{protocol}: {stderr}"
        );
        // Acknowledged spans all arrived; of the requests that got no answer (at most the four
        // in flight), rotel may have printed some before it died; nothing "not sent" or
        // answered with an error reached it.
        assert!(
            sent <= received && received <= sent + unanswered,
            "{protocol}: {sent} acknowledged, {unanswered} unanswered, {received} at rotel: {stderr}"
        );
        assert!(unanswered + answered <= 4 * 100, "{protocol}: {stderr}");
        let mut summary = format!("{n} spans read, {sent} sent, 0 rejected");
        for (what, k) in [
            (UNANSWERED, unanswered),
            (ANSWERED_RETRYABLE, answered),
            (NOT_SENT, not_sent),
        ] {
            if k > 0 {
                summary.push_str(&format!(", {k} {what}"));
            }
        }
        assert!(
            stderr.contains(&summary),
            "{protocol}: want {summary:?} in {stderr}"
        );
    }
}

/// A fake OTLP/HTTP collector answering every request with `status` and a protobuf `body`;
/// returns its port and the number of requests it has answered so far.
fn fake_collector(status: u16, body: Vec<u8>) -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = answered.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let body = body.clone();
            let counter = counter.clone();
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut request = vec![0; length];
                    reader.read_exact(&mut request).unwrap();
                    counter.fetch_add(1, Ordering::SeqCst);
                    let head = format!("HTTP/1.1 {status} X\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n", body.len());
                    if conn
                        .write_all(head.as_bytes())
                        .and_then(|_| conn.write_all(&body))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, answered)
}

#[test]
fn partial_success_is_counted_as_rejected_not_sent() {
    let dir = tempdir();
    write_file(
        &dir.path().join("a.jsonl"),
        LineFormat::Python,
        &rich(false, 0x71),
    );
    let body = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 1,
            error_message: "too old".into(),
        }),
    }
    .encode_to_vec();
    let (port, _) = fake_collector(200, body);
    // 6 spans in requests of 4 and 2: one rejected in each.
    let out = replay(
        dir.path(),
        &[
            "--batch-size",
            "4",
            "--exporter-otlp-endpoint",
            &format!("http://127.0.0.1:{port}"),
            "a.jsonl",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("rejected 2 spans") && stderr.contains("too old"),
        "{stderr}"
    );
    assert_eq!(sent_of(&stderr), (4, 6));
    assert!(
        stderr.contains("6 spans read, 4 sent, 2 rejected"),
        "{stderr}"
    );
}

#[test]
fn refusing_collector_stops_at_once() {
    let dir = tempdir();
    write_file(
        &dir.path().join("a.jsonl"),
        LineFormat::Python,
        &rich(false, 0x72),
    );
    let (port, answered) = fake_collector(401, b"no token".to_vec());
    let out = replay(
        dir.path(),
        &[
            "--exporter-otlp-endpoint",
            &format!("http://127.0.0.1:{port}"),
            "a.jsonl",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        answered.load(Ordering::SeqCst),
        1,
        "401 is not retried: {stderr}"
    );
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("no token"),
        "{stderr}"
    );
    assert_eq!(sent_of(&stderr), (0, 6));
    assert_eq!(failure_counts(&stderr), counts(&[(ANSWERED_FINAL, 6)]));
}

/// A collector that is down when the replay starts and up before its timeout: retries deliver
/// every span, for both protocols.
#[test]
fn collector_down_then_up_within_the_timeout_gets_everything() {
    let dir = tempdir();
    let data = rich(false, 0x81);
    let path = dir.path().join("a.jsonl");
    write_file(&path, LineFormat::Python, &data);
    let want: Vec<String> = {
        let mut ids: Vec<String> = data
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|s| hex(&s.span_id))
            .collect();
        ids.sort();
        ids
    };
    for protocol in ["grpc", "http/protobuf"] {
        // Ports the collector chose itself; stopped, it leaves the replay a dead endpoint.
        let mut rotel = Rotel::start();
        let (grpc, http) = (rotel.grpc, rotel.http);
        let ep = endpoint_args(&rotel, protocol);
        rotel.stop();
        let log = dir.path().join("replay.err");
        let mut child = otel_run(dir.path())
            .args(["replay", "-vv", "--exporter-otlp-timeout", "60000"])
            .args(&ep)
            .arg("a.jsonl")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
        wait_for(
            Duration::from_secs(30),
            "a failed export to be retried",
            || stderr().contains("retrying in"),
        );
        let rotel = Rotel::start_on(grpc, http);
        wait_for(Duration::from_secs(60), "the replay to finish", || {
            child.try_wait().unwrap().is_some()
        });
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{protocol}: {}", stderr());
        assert!(
            stderr().contains("6 spans read, 6 sent, 0 rejected"),
            "{protocol}: {}",
            stderr()
        );
        rotel.wait_spans(want.len());
        let mut got = rotel.span_ids();
        got.sort();
        assert_eq!(got, want, "{protocol}");
    }
}

/// A collector that accepts connections but never answers: every attempt times out, and the
/// retries stop at the configured timeout with exact counts.
#[test]
fn silent_collector_is_given_up_at_the_timeout() {
    let dir = tempdir();
    write_file(
        &dir.path().join("a.jsonl"),
        LineFormat::Python,
        &rich(false, 0x82),
    );
    // Never accepted: the kernel completes the handshakes, nobody reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    for protocol in ["grpc", "http/protobuf"] {
        let out = exit_within(
            otel_run(dir.path()).arg("replay").args([
                "--exporter-otlp-timeout",
                "1000",
                "--exporter-otlp-protocol",
                protocol,
                "--exporter-otlp-endpoint",
                &format!("http://127.0.0.1:{port}"),
                "a.jsonl",
            ]),
            Duration::from_secs(60),
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{protocol}: {stderr}");
        assert_eq!(sent_of(&stderr), (0, 6), "{protocol}: {stderr}");
        assert_eq!(
            failure_counts(&stderr),
            counts(&[(UNANSWERED, 6)]),
            "{protocol}: {stderr}"
        );
        assert_no_panic(&out);
    }
    drop(silent);
}

/// tests/support/http_status.py: a Python HTTP server answering every POST with one status;
/// killed by pid when dropped.
struct StatusServer {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl StatusServer {
    fn start(status: &str, retry_after: Option<&str>) -> StatusServer {
        let dir = tempdir();
        let child = Command::new(python())
            .arg(support("http_status.py"))
            .arg(dir.path())
            .arg(status)
            .args(retry_after)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let port_file = dir.path().join("port");
        wait_for(Duration::from_secs(30), "the HTTP server to listen", || {
            port_file.exists()
        });
        let port = std::fs::read_to_string(&port_file)
            .unwrap()
            .parse()
            .unwrap();
        StatusServer { child, dir, port }
    }

    fn requests(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("requests"))
            .unwrap_or_default()
            .lines()
            .count()
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A collector that answers with an error did not take the spans, and said so: they are
/// "answered with an error", never "sent without an answer", and retryable answers (503, 429,
/// gRPC UNAVAILABLE) are told apart from final ones (400).
#[test]
fn error_answers_are_counted_as_answered_not_unanswered() {
    let dir = tempdir();
    write_file(
        &dir.path().join("a.jsonl"),
        LineFormat::Python,
        &rich(false, 0x84),
    );
    let replay_to = |protocol: &str, endpoint: String, batch: &str| {
        exit_within(
            otel_run(dir.path()).arg("replay").args([
                "--batch-size",
                batch,
                "--exporter-otlp-timeout",
                "1000",
                "--exporter-otlp-protocol",
                protocol,
                "--exporter-otlp-endpoint",
                &endpoint,
                "a.jsonl",
            ]),
            Duration::from_secs(60),
        )
    };
    // 503 is retried until the timeout: all three requests of 2 spans are in flight by then.
    // 429 with Retry-After beyond the timeout and 400 end at the first answer: one request of 6.
    for (status, retry_after, batch, what) in [
        ("503", None, "2", ANSWERED_RETRYABLE),
        ("429", Some("5"), "512", ANSWERED_RETRYABLE),
        ("400", None, "512", ANSWERED_FINAL),
    ] {
        let server = StatusServer::start(status, retry_after);
        let out = replay_to(
            "http/protobuf",
            format!("http://127.0.0.1:{}", server.port),
            batch,
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{status}: {stderr}");
        assert!(stderr.contains(&format!("HTTP {status}")), "{stderr}");
        assert_eq!(sent_of(&stderr), (0, 6), "{status}: {stderr}");
        if batch == "2" {
            retried_until_the_timeout(&stderr);
        } else {
            assert_eq!(
                failure_counts(&stderr),
                counts(&[(what, 6)]),
                "{status}: {stderr}"
            );
            assert!(
                stderr.contains(&format!(
                    "6 spans read, 0 sent, 0 rejected, 6 {what}, 0 lines"
                )),
                "{status}: {stderr}"
            );
        }
        assert!(
            server.requests() >= if batch == "2" { 3 } else { 1 },
            "{status}"
        );
        assert_no_panic(&out);
    }
    let collector = GrpcCollector::start("unavailable", None);
    let out = replay_to("grpc", format!("http://127.0.0.1:{}", collector.port), "2");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Unavailable"), "{stderr}");
    retried_until_the_timeout(&stderr);
    assert!(collector.requests().len() >= 3, "{stderr}");
}

/// The scripted grpcio collector of tests/support/grpc_collector.py; killed by pid when dropped.
struct GrpcCollector {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl GrpcCollector {
    fn start(answers: &str, tls: Option<&TestCa>) -> GrpcCollector {
        let dir = tempdir();
        let mut cmd = Command::new(python());
        cmd.arg(support("grpc_collector.py"))
            .arg(dir.path())
            .arg(answers)
            .stdin(Stdio::null());
        if let Some(ca) = tls {
            cmd.arg(&ca.server_cert).arg(&ca.server_key);
        }
        let child = cmd.spawn().unwrap();
        let port_file = dir.path().join("port");
        wait_for(
            Duration::from_secs(30),
            "the grpcio collector to listen",
            || port_file.exists(),
        );
        let port = std::fs::read_to_string(&port_file)
            .unwrap()
            .parse()
            .unwrap();
        GrpcCollector { child, dir, port }
    }

    /// (answer given, spans in the request) per request received.
    fn requests(&self) -> Vec<(String, u64)> {
        std::fs::read_to_string(self.dir.path().join("requests"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["answer"].as_str().unwrap().to_string(),
                    v["spans"].as_u64().unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for GrpcCollector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throw-away CA and a server certificate for localhost / 127.0.0.1, made with the openssl CLI.
struct TestCa {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

fn test_ca() -> TestCa {
    let dir = tempdir();
    let d = dir.path();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap_or_else(|e| {
                panic!("openssl: {e} (scripts/install-deps.sh installs Debian's openssl)")
            });
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            text(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
            &["-subj", "/CN=otel-run test CA"],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    TestCa {
        ca: d.join("ca.pem"),
        server_cert: d.join("server.pem"),
        server_key: d.join("server.key"),
        _dir: dir,
    }
}

/// A TCP relay to 127.0.0.1:`to` on a port of its own; counts the bytes the client sent.
fn counting_relay(to: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let server = std::net::TcpStream::connect(("127.0.0.1", to)).unwrap();
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = c_in.read(&mut buf) {
                    counter.fetch_add(n, Ordering::SeqCst);
                    if s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, sent)
}

/// --exporter-otlp-compression gzip really compresses gRPC requests (grpcio's server decompresses
/// them and hides the encoding, so the bytes on the wire are counted).
#[test]
fn grpc_gzip_shrinks_what_goes_on_the_wire() {
    let dir = tempdir();
    let data: Vec<ResourceSpans> = (0..20).flat_map(|i| rich(false, 0x90 + i)).collect();
    write_file(&dir.path().join("a.jsonl"), LineFormat::Python, &data);
    let mut bytes = Vec::new();
    for compression in ["none", "gzip"] {
        let collector = GrpcCollector::start("ok", None);
        let (port, sent) = counting_relay(collector.port);
        let out = exit_within(
            otel_run(dir.path())
                .args(["replay", "--exporter-otlp-protocol", "grpc"])
                .args(["--exporter-otlp-compression", compression])
                .arg("--exporter-otlp-endpoint")
                .arg(format!("http://127.0.0.1:{port}"))
                .arg("a.jsonl"),
            Duration::from_secs(60),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(collector.requests().iter().all(|(a, _)| a == "ok"));
        let spans: u64 = collector.requests().iter().map(|(_, n)| n).sum();
        assert_eq!(spans, 120, "{compression}");
        bytes.push(sent.load(Ordering::SeqCst));
    }
    assert!(
        bytes[1] * 2 < bytes[0],
        "gzip sent {} bytes, uncompressed {}",
        bytes[1],
        bytes[0]
    );
}

/// gRPC over TLS with the CA from --exporter-otlp-certificate, gzip, and the OTLP retry rule for
/// RESOURCE_EXHAUSTED: retried after the collector's RetryInfo delay, not retried without one.
/// Partial success of the retried request is counted exactly.
#[test]
fn grpc_tls_gzip_and_resource_exhausted_follow_the_spec() {
    let dir = tempdir();
    write_file(
        &dir.path().join("a.jsonl"),
        LineFormat::Python,
        &rich(false, 0x83),
    );
    let ca = test_ca();
    let replay_to = |collector: &GrpcCollector, extra: &[&str]| {
        exit_within(
            otel_run(dir.path())
                .arg("replay")
                .args([
                    "--exporter-otlp-protocol",
                    "grpc",
                    "--exporter-otlp-timeout",
                    "20000",
                ])
                .arg("--exporter-otlp-endpoint")
                .arg(format!("https://localhost:{}", collector.port))
                .args(extra)
                .arg("a.jsonl"),
            Duration::from_secs(60),
        )
    };
    let cert = ca.ca.to_str().unwrap();

    let collector = GrpcCollector::start("exhausted-retryinfo,reject1", Some(&ca));
    let out = replay_to(
        &collector,
        &[
            "--exporter-otlp-certificate",
            cert,
            "--exporter-otlp-compression",
            "gzip",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("6 spans read, 5 sent, 1 rejected") && stderr.contains("one span too old"),
        "{stderr}"
    );
    let answered: Vec<(String, u64)> = ["exhausted-retryinfo", "reject1"]
        .iter()
        .map(|a| (a.to_string(), 6))
        .collect();
    assert_eq!(
        collector.requests(),
        answered,
        "retried once, after RetryInfo"
    );

    let collector = GrpcCollector::start("exhausted", Some(&ca));
    let out = replay_to(&collector, &["--exporter-otlp-certificate", cert]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("status 8 (ResourceExhausted): over quota"),
        "{stderr}"
    );
    assert_eq!(
        collector.requests().len(),
        1,
        "not retried without RetryInfo: {stderr}"
    );

    // Without the CA the collector's certificate is refused (the webpki roots do not know it).
    let collector = GrpcCollector::start("ok", Some(&ca));
    let out = exit_within(
        otel_run(dir.path())
            .arg("replay")
            .args([
                "--exporter-otlp-protocol",
                "grpc",
                "--exporter-otlp-timeout",
                "1000",
            ])
            .arg("--exporter-otlp-endpoint")
            .arg(format!("https://localhost:{}", collector.port))
            .arg("a.jsonl"),
        Duration::from_secs(60),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    assert!(collector.requests().is_empty(), "{stderr}");
    assert_no_panic(&out);
}

const GOOD: &str = r#"{"name":"ok","context":{"trace_id":"0x0af7651916cd43dd8448eb211c80319c","span_id":"0x00f067aa0ba902b7","trace_state":"[]"},"kind":"SpanKind.INTERNAL","parent_id":null,"start_time":"2024-01-01T00:00:00.000001Z","end_time":"2024-01-01T00:00:01Z","status":{"status_code":"UNSET"},"attributes":{},"events":[],"links":[],"resource":{"attributes":{"service.name":"t"},"schema_url":""}}"#;

#[test]
fn bad_input_is_reported_as_file_line_reason() {
    let rotel = Rotel::start();
    let ep = endpoint_args(&rotel, "http/protobuf");
    let good2 = GOOD.replace("00f067aa0ba902b7", "00f067aa0ba902b8");
    // (case, bad line, what the message must say)
    let cases = [
        ("invalid JSON", GOOD[..60].to_string(), "EOF while parsing"),
        ("not an object", "[1,2]".to_string(), "invalid type"),
        ("wrong type", GOOD.replace(r#""name":"ok""#, r#""name":5"#), "invalid type: integer `5`, expected a string"),
        ("bad hex id", GOOD.replace("0x0af7651916cd43dd8448eb211c80319c", "0xnothex"), "context.trace_id \"0xnothex\" is not a non-zero 32-digit hex id"),
        ("all-zero id", GOOD.replace("0x00f067aa0ba902b7", "0x0000000000000000"), "context.span_id"),
        ("missing field", GOOD.replace(r#""name":"ok","#, ""), "missing field `name`"),
        ("missing time", GOOD.replace(r#""start_time":"2024-01-01T00:00:00.000001Z","#, ""), "start_time is missing"),
        ("bad time", GOOD.replace("2024-01-01T00:00:01Z", "yesterday"), "end_time: invalid timestamp \"yesterday\""),
        ("bad kind", GOOD.replace("SpanKind.INTERNAL", "SpanKind.SIDEWAYS"), "unknown span kind"),
        ("bad otlp id", r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7","spanId":"00f067aa0ba902b9","name":"x"}]}]}]}"#.to_string(), "traceId must be 32 hex digits"),
    ];
    for (case, bad, reason) in &cases {
        let dir = tempdir();
        std::fs::write(
            dir.path().join("in.jsonl"),
            format!("{GOOD}\n{bad}\n{good2}\n"),
        )
        .unwrap();
        let out = replay(dir.path(), &args(&["in.jsonl"], &ep));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        assert!(
            stderr.contains("in.jsonl:2: ") && stderr.contains(reason),
            "{case}: want {reason:?} in {stderr}"
        );
        assert!(stderr.contains("--skip-invalid"), "{case}: {stderr}");
        assert_no_panic(&out);
        // --skip-invalid: the other lines go, the bad one is counted.
        let out = replay(dir.path(), &args(&["--skip-invalid", "in.jsonl"], &ep));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{case}: {stderr}");
        assert!(
            stderr.contains("in.jsonl:2: ") && stderr.contains("(skipped)"),
            "{case}: {stderr}"
        );
        assert!(
            stderr.contains("2 spans read, 2 sent, 0 rejected, 1 lines skipped"),
            "{case}: {stderr}"
        );
    }
    // A bad line stops the replay before anything is sent: only the --skip-invalid runs arrived.
    rotel.wait_spans(2 * cases.len());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rotel.span_ids().len(), 2 * cases.len());
}

#[test]
fn torn_last_line_and_bad_arguments() {
    let dir = tempdir();
    let d = dir.path();
    let good2 = GOOD.replace("00f067aa0ba902b7", "00f067aa0ba902b8");
    std::fs::write(
        d.join("torn.jsonl"),
        format!("{GOOD}\n{good2}\n{}", &GOOD[..100]),
    )
    .unwrap();
    let out = replay(d, &["--dry-run", "torn.jsonl"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: torn.jsonl:3: torn last line"),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 spans read, dry run: none sent, 1 lines skipped"),
        "{stderr}"
    );

    std::fs::write(d.join("empty.jsonl"), "").unwrap();
    let out = replay(d, &["--dry-run", "empty.jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("0 spans read"),
        "{}",
        text(&out.stderr)
    );

    // (arguments, exit status, message)
    let cases: &[(&[&str], i32, &str)] = &[
        // Usage errors, as in every subcommand (tests/exit_codes.rs).
        (
            &["nomatch_*.jsonl"],
            2,
            "nomatch_*.jsonl: pattern matches no file",
        ),
        (&["missing.jsonl"], 2, "missing.jsonl: no such file"),
        (&["-", "-"], 2, "- (stdin) is given more than once"),
        (
            &["--exporter-otlp-compression", "zstd", "empty.jsonl"],
            2,
            "not gzip or none",
        ),
        (&["--batch-size", "0", "empty.jsonl"], 2, "--batch-size"),
        (&[], 2, "FILE|GLOB|-"),
    ];
    for (a, code, message) in cases {
        let out = replay(d, a);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{a:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{a:?}: want {message:?} in {stderr}"
        );
        assert_no_panic(&out);
    }
}
