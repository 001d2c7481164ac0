//! The loopback sink: real OpenTelemetry SDK children (Python over HTTP and gRPC, Rust over HTTP)
//! configured by environment only land every span in the rank file, adopted into the job's trace;
//! unauthenticated, oversized and malformed requests are refused and the sink keeps serving.

mod common;
use common::attack_support::{gzip, http_post, request};
use common::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use serde_json::Value as Json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn python_child(dir: &Path, protocol: &str, extra: &[&str]) -> (std::process::Output, Json) {
    let report = dir.join("report.json");
    let out = exit_within(
        otel_run(dir)
            .env("PY_CHILD_REPORT", &report)
            .args(["--sink-protocol", protocol])
            .args(extra)
            .args(["--", &python()])
            .arg(support("py_child.py")),
        Duration::from_secs(120),
    );
    let report: Json = serde_json::from_str(
        &std::fs::read_to_string(&report)
            .unwrap_or_else(|e| panic!("report: {e}; stderr {}", text(&out.stderr))),
    )
    .unwrap();
    (out, report)
}

fn value(v: Option<&Value>) -> Json {
    match v {
        Some(Value::StringValue(s)) => Json::from(s.clone()),
        Some(Value::BoolValue(b)) => Json::from(*b),
        Some(Value::IntValue(i)) => Json::from(*i),
        Some(Value::DoubleValue(d)) => Json::from(*d),
        Some(Value::ArrayValue(a)) => {
            Json::Array(a.values.iter().map(|v| value(v.value.as_ref())).collect())
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn python_child_spans_land_in_the_rank_file_over_http_and_grpc() {
    for protocol in ["http/protobuf", "grpc"] {
        let dir = tempdir();
        let (out, report) = python_child(dir.path(), protocol, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{protocol}: {}",
            text(&out.stderr)
        );
        assert_eq!(report["exporter"], format!("otlp/{protocol}"));
        assert_eq!(
            report["export_results"],
            serde_json::json!(["SUCCESS"]),
            "{protocol}"
        );
        let spans = read_dir_spans(dir.path());
        let process = spans.iter().find(|s| role(s) == Some("process")).unwrap();
        let trace = process.span.trace_id.clone();
        let created = report["spans"].as_array().unwrap();
        assert_eq!(
            spans.len(),
            created.len() + 1,
            "{protocol}: every child span plus the process span"
        );
        for c in created {
            let name = c["name"].as_str().unwrap();
            let s = spans
                .iter()
                .find(|s| s.span.name == name)
                .unwrap_or_else(|| panic!("{protocol}: {name} missing"));
            assert_eq!(s.span.trace_id, trace, "{name} adopted into the job trace");
            assert_eq!(
                attr_str(&s.span.attributes, "otel_run.original_trace_id"),
                c["trace_id"].as_str(),
                "{name}"
            );
            assert_eq!(hex(&s.span.span_id), c["span_id"].as_str().unwrap());
            match c["parent_id"].as_str() {
                Some(p) => assert_eq!(hex(&s.span.parent_span_id), p, "{name}: parent intact"),
                None => assert_eq!(
                    s.span.parent_span_id, process.span.span_id,
                    "{name}: root under the process span"
                ),
            }
            assert_eq!(s.scope, "py_child");
            assert_eq!(
                attr_str(&s.resource, "service.name"),
                Some("python"),
                "{name}: resource from OTEL_SERVICE_NAME"
            );
            assert_eq!(
                attr_str(&s.resource, "mpi.rank"),
                Some("0"),
                "{name}: resource from OTEL_RESOURCE_ATTRIBUTES"
            );
        }
        let root = spans
            .iter()
            .find(|s| s.span.name == "py-child.root")
            .unwrap();
        assert_eq!(root.span.kind, 2, "SERVER");
        let expected = serde_json::json!({
            "child.str": "value", "child.bool": true, "child.int": 123, "child.float": 2.5,
            "child.list.str": ["a", "b"], "child.list.bool": [true, false], "child.list.int": [1, 2, 3], "child.list.float": [0.25, 0.5],
        });
        for (k, v) in expected.as_object().unwrap() {
            assert_eq!(
                &value(attr(&root.span.attributes, k)),
                v,
                "{protocol}: attribute {k}"
            );
        }
        let io = spans.iter().find(|s| s.span.name == "py-child.io").unwrap();
        let status = io.span.status.as_ref().unwrap();
        assert_eq!(
            (status.code, status.message.as_str()),
            (2, "simulated failure")
        );
        assert_eq!(io.span.events[0].name, "retry");
        assert_eq!(
            attr_int(&io.span.events[0].attributes, "retry.attempt"),
            Some(2)
        );
        let work = spans
            .iter()
            .find(|s| s.span.name == "py-child.work")
            .unwrap();
        let setup = spans
            .iter()
            .find(|s| s.span.name == "py-child.setup")
            .unwrap();
        assert_eq!(work.span.links.len(), 1);
        assert_eq!(work.span.links[0].span_id, setup.span.span_id);
        assert_eq!(
            attr_str(&work.span.links[0].attributes, "link.reason"),
            Some("after-setup")
        );
    }
}

#[test]
fn rust_child_spans_land_in_the_rank_file() {
    let child = example("otlp_child");
    let dir = tempdir();
    let out = run(otel_run(dir.path()).arg("--").arg(&child));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed: Vec<Vec<String>> = text(&out.stdout)
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    let spans = read_dir_spans(dir.path());
    let process = spans.iter().find(|s| role(s) == Some("process")).unwrap();
    assert_eq!(spans.len(), 3);
    for p in &printed {
        let s = spans.iter().find(|s| s.span.name == p[0]).unwrap();
        assert_eq!(hex(&s.span.span_id), p[1]);
        assert_eq!(s.span.trace_id, process.span.trace_id);
        if p[2] == "-" {
            assert_eq!(s.span.parent_span_id, process.span.span_id);
        } else {
            assert_eq!(hex(&s.span.parent_span_id), p[2]);
        }
    }
    let root = spans.iter().find(|s| s.span.name == "rust.root").unwrap();
    assert_eq!(
        value(attr(&root.span.attributes, "as")),
        serde_json::json!(["x", "y"])
    );
    assert_eq!(
        value(attr(&root.span.attributes, "ai")),
        serde_json::json!([1, 2, 3])
    );
    assert_eq!(
        value(attr(&root.span.attributes, "d")),
        serde_json::json!(2.5)
    );
    let child_span = spans.iter().find(|s| s.span.name == "rust.child").unwrap();
    assert_eq!(
        child_span.span.status.as_ref().unwrap().message,
        "solver diverged"
    );
    assert_eq!(child_span.span.events[0].name, "checkpoint");
    assert_eq!(child_span.span.links[0].span_id, root.span.span_id);
    assert_eq!(
        attr_str(&child_span.resource, "telemetry.sdk.language"),
        Some("rust")
    );
}

#[test]
fn python_children_under_srun_and_mpirun_form_one_trace() {
    slurm();
    let launchers: [&[&str]; 2] = [&["srun", "-n", "4"], &["mpirun.openmpi", "-n", "4"]];
    for launcher in launchers {
        let dir = tempdir();
        let mut cmd = Command::new(launcher[0]);
        scrub(&mut cmd);
        cmd.current_dir(dir.path()).args(&launcher[1..]);
        cmd.args([
            bin(),
            "--jsonlines-path",
            "rank{rank}_*.jsonlines",
            "--",
            &python(),
        ])
        .arg(support("py_child.py"));
        let out = run(&mut cmd);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{launcher:?}: {}",
            text(&out.stderr)
        );
        let spans = assert_one_job_trace(dir.path(), 4, true);
        assert_eq!(
            spans.len(),
            1 + 4 + 4 * 4,
            "{launcher:?}: step, 4 process spans, 4 child spans per rank"
        );
        for f in span_files(dir.path()) {
            let in_file = read_spans(&f);
            let process = in_file.iter().find(|s| role(s) == Some("process")).unwrap();
            let root = in_file
                .iter()
                .find(|s| s.span.name == "py-child.root")
                .unwrap();
            assert_eq!(
                root.span.parent_span_id,
                process.span.span_id,
                "{launcher:?} {}: child root under its own rank's process span",
                f.display()
            );
            assert_eq!(
                attr_str(&root.resource, "mpi.rank"),
                Some(
                    attr_int(&process.resource, "mpi.rank")
                        .unwrap()
                        .to_string()
                        .as_str()
                )
            );
        }
    }
}

/// A running otel-run whose program waits, exposing the sink's endpoint and token.
struct LiveSink {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
    token: String,
}

impl LiveSink {
    fn start(extra: &[&str]) -> LiveSink {
        let dir = tempdir();
        let script = "printf '%s\\n%s\\n' \"$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT\" \"$OTEL_EXPORTER_OTLP_TRACES_HEADERS\" > env.tmp && mv env.tmp env.txt; while [ ! -e done ]; do sleep 0.02; done";
        let child = otel_run(dir.path())
            .args(["--jsonlines-path", "rank.jsonlines"])
            .args(extra)
            .args(["--", "sh", "-c", script])
            .spawn()
            .unwrap();
        let env_file = dir.path().join("env.txt");
        wait_for(Duration::from_secs(10), "the program to start", || {
            env_file.exists()
        });
        let env = std::fs::read_to_string(&env_file).unwrap();
        let mut lines = env.lines();
        let endpoint = lines.next().unwrap();
        let port = endpoint
            .trim_start_matches("http://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let token = lines.next().unwrap().split_once('=').unwrap().1.to_string();
        LiveSink {
            child,
            dir,
            port,
            token,
        }
    }

    fn finish(mut self) -> Vec<Found> {
        std::fs::write(self.dir.path().join("done"), "").unwrap();
        assert!(self.child.wait().unwrap().success());
        read_spans(&self.dir.path().join("rank.jsonlines"))
    }
}

fn valid_request(name: &str) -> Vec<u8> {
    request(vec![opentelemetry_proto::tonic::trace::v1::Span {
        trace_id: vec![3; 16],
        span_id: vec![4; 8],
        name: name.into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Default::default()
    }])
}

#[test]
fn bad_requests_are_refused_and_the_sink_keeps_serving() {
    let sink = LiveSink::start(&["--sink-body-limit", "1"]);
    let token = sink.token.clone();
    let pb = ("content-type", "application/x-protobuf");
    let auth = ("x-otel-run-token", token.as_str());
    let big = vec![b'x'; 2 << 20];
    let bomb = gzip(&vec![0u8; 8 << 20]);
    // (what, headers, body, expected HTTP status)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("no token", vec![pb], valid_request("bad"), 401),
        (
            "wrong token",
            vec![pb, ("x-otel-run-token", "0123456789abcdef0123456789abcdef")],
            valid_request("bad"),
            401,
        ),
        ("oversized", vec![pb, auth], big, 413),
        (
            "gzip bomb",
            vec![pb, auth, ("content-encoding", "gzip")],
            bomb,
            413,
        ),
        (
            "garbage",
            vec![pb, auth],
            b"\xff\xff\xff\xff garbage".to_vec(),
            400,
        ),
        (
            "wrong content type",
            vec![("content-type", "text/plain"), auth],
            valid_request("bad"),
            415,
        ),
        (
            "bad json",
            vec![("content-type", "application/json"), auth],
            b"{\"resourceSpans\": 5}".to_vec(),
            400,
        ),
        (
            "valid after all that",
            vec![pb, auth],
            valid_request("good"),
            200,
        ),
        (
            "valid gzip",
            vec![pb, auth, ("content-encoding", "gzip")],
            gzip(&valid_request("good-gzip")),
            200,
        ),
    ];
    for (what, headers, body, want) in &cases {
        assert_eq!(http_post(sink.port, headers, body).0, *want, "{what}");
    }
    // gRPC refusals, through a real HTTP/2 client.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (headers, want) in [
        (vec![], "status 16"),
        (
            vec![("x-otel-run-token".to_string(), "wrong".to_string())],
            "status 16",
        ),
    ] {
        let client = grpc_client(sink.port, headers);
        let err = rt.block_on(client.export(opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::default())).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    let client = grpc_client(sink.port, vec![("x-otel-run-token".into(), token.clone())]);
    let request = prost::Message::decode(&valid_request("good-grpc")[..]).unwrap();
    rt.block_on(client.export(request))
        .expect("valid gRPC request accepted");
    // Close the HTTP/2 connection, as an exiting program would, so shutdown need not wait for it.
    drop(client);
    drop(rt);

    let names: Vec<String> = sink.finish().into_iter().map(|s| s.span.name).collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("good")).count(),
        3,
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n == "bad"),
        "nothing refused was written: {names:?}"
    );
}

fn grpc_client(port: u16, headers: Vec<(String, String)>) -> otel_run::otlp::OtlpClient {
    otel_run::otlp::OtlpClient::new(otel_run::otlp::OtlpConfig {
        protocol: otel_run::otlp::Protocol::Grpc,
        endpoint: format!("http://127.0.0.1:{port}"),
        headers,
        timeout: Duration::from_secs(5),
        gzip: false,
        certificate: None,
    })
    .unwrap()
}

#[test]
fn forwarding_to_a_real_collector_and_without_one() {
    let rotel = Rotel::start();
    let dir = tempdir();
    let endpoint = format!("http://127.0.0.1:{}", rotel.http);
    let (out, report) = python_child(
        dir.path(),
        "grpc",
        &[
            "--traces-exporter",
            "jsonlines,otlp",
            "--exporter-otlp-endpoint",
            &endpoint,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let spans = read_dir_spans(dir.path());
    assert_eq!(spans.len(), report["spans"].as_array().unwrap().len() + 1);
    rotel.wait_spans(spans.len());
    let mut got = rotel.span_ids();
    let mut want: Vec<String> = spans.iter().map(|s| hex(&s.span.span_id)).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "the collector got the same spans as the file");

    // Collector down: the file is complete, the exit status is the program's, time is bounded.
    let dir = tempdir();
    let refused = refused_port();
    let dead = format!("http://127.0.0.1:{}", refused.port);
    let (out, report) = python_child(
        dir.path(),
        "http/protobuf",
        &[
            "--traces-exporter",
            "jsonlines,otlp",
            "--exporter-otlp-endpoint",
            &dead,
            "--exporter-otlp-timeout",
            "1500",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        read_dir_spans(dir.path()).len(),
        report["spans"].as_array().unwrap().len() + 1
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not acknowledged") && stderr.contains("otel-run replay"),
        "{stderr}"
    );
}

#[test]
fn grpcio_raw_calls_get_the_grpc_status_codes() {
    let sink = LiveSink::start(&["--sink-body-limit", "1"]);
    let out = run(Command::new(python())
        .arg(support("grpc_raw.py"))
        .arg(sink.port.to_string())
        .arg(&sink.token));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let results: Json = serde_json::from_slice(&out.stdout).unwrap();
    // (case, gRPC status, spans rejected by partial success when OK)
    let want = [
        ("no token", "UNAUTHENTICATED", None),
        ("wrong token", "UNAUTHENTICATED", None),
        ("valid", "OK", Some(0)),
        ("valid gzip", "OK", Some(0)),
        ("invalid span id", "OK", Some(1)),
        ("garbage", "INVALID_ARGUMENT", None),
        ("oversized", "RESOURCE_EXHAUSTED", None),
        ("gzip bomb", "RESOURCE_EXHAUSTED", None),
        ("unknown method", "UNIMPLEMENTED", None),
        ("valid after all that", "OK", Some(0)),
    ];
    for (case, code, rejected) in want {
        let got = &results[case];
        assert_eq!(got[0], code, "{case}: {got}");
        assert_eq!(got[1].as_i64(), rejected, "{case}: {got}");
    }
    let names: Vec<String> = sink.finish().into_iter().map(|s| s.span.name).collect();
    let mut raw: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("raw-"))
        .collect();
    raw.sort();
    assert_eq!(raw, ["raw-grpc", "raw-grpc-gzip", "raw-grpc-last"]);
    assert!(
        !names.iter().any(|n| n == "bad"),
        "nothing refused was written: {names:?}"
    );
}

/// `--traces-exporter console` alone still runs the sink: the program's spans (a real Python SDK
/// child and a Rust otel-run-sdk child) are printed with otel-run's own, none is lost, and the
/// program's export succeeds at once instead of retrying its default localhost:4318.
#[test]
fn console_exporter_prints_the_programs_spans() {
    let dir = tempdir();
    let (out, report) = python_child(
        dir.path(),
        "http/protobuf",
        &["--traces-exporter", "console"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(report["exporter"], "otlp/http/protobuf");
    assert_eq!(
        report["export_results"],
        serde_json::json!(["SUCCESS"]),
        "{stderr}"
    );
    for name in [
        "py-child.root",
        "py-child.work",
        "py-child.io",
        "py-child.setup",
        "process ",
    ] {
        assert!(
            stderr.contains(&format!("span \"{name}")),
            "{name} not printed:\n{stderr}"
        );
    }
    assert!(
        span_files(dir.path()).is_empty(),
        "console only: no span file"
    );
    assert!(
        !stderr.contains("discarded"),
        "printed spans are not discarded:\n{stderr}"
    );

    let dir = tempdir();
    let out = exit_within(
        otel_run(dir.path())
            .args(["--traces-exporter", "console", "--"])
            .arg(example("sdk_child")),
        Duration::from_secs(120),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout), "sum 45\n");
    for name in ["work", "inner", "solve", "process sdk_child"] {
        assert!(
            stderr.contains(&format!("span \"{name}\"")),
            "{name} not printed:\n{stderr}"
        );
    }
    assert!(
        span_files(dir.path()).is_empty(),
        "console only: no span file"
    );
    assert!(
        !stderr.contains("discarded"),
        "printed spans are not discarded:\n{stderr}"
    );
}
