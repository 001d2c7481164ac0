//! otel-run-sdk in a real Rust program (examples/sdk_child.rs): configured only by the
//! environment contract, with and without otel-run, its spans read back with otel-run's reader.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn child(dir: &Path) -> Command {
    let mut cmd = Command::new(example("sdk_child"));
    scrub(&mut cmd);
    cmd.current_dir(dir);
    cmd
}

/// Runs to completion within `limit` (polling, so a hang fails instead of blocking the suite).
fn run_bounded(cmd: &mut Command, limit: Duration) -> std::process::Output {
    exit_within(cmd.stdin(Stdio::null()), limit)
}

#[test]
fn without_any_otel_variable_it_runs_silently_and_writes_nothing() {
    let dir = tempdir();
    let out = run_bounded(&mut child(dir.path()), Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "sum 45\n");
    assert_eq!(text(&out.stderr), "", "no output on stderr");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file");
}

#[test]
fn jsonlines_file_continues_traceparent_with_instrument_fields() {
    let dir = tempdir();
    let path = dir.path().join("spans.jsonl");
    let out = run_bounded(
        child(dir.path())
            .env("OTEL_EXPORTER_JSONLINES_PATH", &path)
            .env("OTEL_SERVICE_NAME", "child")
            .env("OTEL_RESOURCE_ATTRIBUTES", "mpi.rank=3,deployment=t%20est")
            .env("TRACEPARENT", PARENT)
            .env("TRACESTATE", "k=v"),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "span files are private");
    let spans = read_spans(&path);
    let names: Vec<&str> = spans.iter().map(|f| f.span.name.as_str()).collect();
    assert_eq!(names, ["inner", "solve", "work"], "ended in this order");
    let by_name = |n: &str| spans.iter().find(|f| f.span.name == n).unwrap();
    for f in &spans {
        assert_eq!(hex(&f.span.trace_id), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(attr_str(&f.resource, "service.name"), Some("child"));
        assert_eq!(
            attr_int(&f.resource, "mpi.rank"),
            Some(3),
            "typed like otel-run's"
        );
        assert_eq!(attr_str(&f.resource, "deployment"), Some("t est"));
        assert_eq!(f.span.trace_state, "k=v");
    }
    let work = by_name("work");
    assert_eq!(
        hex(&work.span.parent_span_id),
        "b7ad6b7169203331",
        "root continues TRACEPARENT"
    );
    assert_eq!(by_name("inner").span.parent_span_id, work.span.span_id);
    assert_eq!(by_name("inner").span.events[0].name, "halfway");
    // #[tracing::instrument] span: arguments and fields are attributes, parent is the OTel span.
    let solve = by_name("solve");
    assert_eq!(solve.span.parent_span_id, work.span.span_id);
    assert_eq!(attr_str(&solve.span.attributes, "label"), Some("ten"));
    assert_eq!(attr_str(&solve.span.attributes, "phase"), Some("solve"));
    assert!(otel_run::attr::get(&solve.span.attributes, "grid").is_some());
    assert!(otel_run::attr::get(&solve.span.attributes, "iterations").is_some());
    // Python-exact times: microseconds and Z.
    let line = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let start = v["start_time"].as_str().unwrap();
    assert_eq!(start.len(), "2026-01-01T00:00:00.000000Z".len(), "{start}");
}

/// Non-finite doubles are written bare, as Python's `json` writes them (a string "NaN" would read
/// back as a string), and reach a real collector as doubles through `otel-run replay`.
#[test]
fn nonfinite_doubles_round_trip_through_replay_into_a_collector() {
    let dir = tempdir();
    let path = dir.path().join("spans.jsonl");
    let out = run_bounded(
        child(dir.path())
            .arg("nonfinite")
            .env("OTEL_EXPORTER_JSONLINES_PATH", &path),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let file = std::fs::read_to_string(&path).unwrap();
    let work = file
        .lines()
        .find(|l| l.contains(r#""name":"work""#))
        .unwrap();
    for bare in [r#""loss":NaN"#, r#""up":Infinity"#, r#""down":-Infinity"#] {
        assert!(work.contains(bare), "{bare} in {work}");
    }
    let rotel = Rotel::start();
    let out = run(otel_run(dir.path())
        .args(["replay", "--exporter-otlp-protocol", "grpc"])
        .arg("--exporter-otlp-endpoint")
        .arg(format!("http://127.0.0.1:{}", rotel.grpc))
        .arg(&path));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    rotel.wait_spans(3);
    let log = rotel.output();
    for want in [
        "-> loss: Double(NaN)",
        "-> up: Double(inf)",
        "-> down: Double(-inf)",
    ] {
        assert!(log.contains(want), "rotel did not print {want:?}:\n{log}");
    }
}

#[test]
fn malformed_contract_values_warn_once_each_and_the_program_runs() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    // (what, environment, text the one warning must contain)
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "malformed TRACEPARENT",
            vec![
                ("TRACEPARENT", "00-xyz-01".into()),
                ("OTEL_TRACES_EXPORTER", "console".into()),
            ],
            "TRACEPARENT",
        ),
        (
            "unknown protocol",
            vec![
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "foo".into()),
                ("OTEL_TRACES_EXPORTER", "none".into()),
            ],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            "unknown exporter",
            vec![("OTEL_TRACES_EXPORTER", "zipkin".into())],
            "OTEL_TRACES_EXPORTER",
        ),
        (
            "bad timeout",
            vec![("OTEL_EXPORTER_OTLP_TIMEOUT", "soon".into())],
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ),
        (
            "bad resource",
            vec![("OTEL_RESOURCE_ATTRIBUTES", "novalue".into())],
            "OTEL_RESOURCE_ATTRIBUTES",
        ),
        (
            "unreachable endpoint",
            vec![
                ("OTEL_TRACES_EXPORTER", "otlp".into()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", closed.clone()),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000".into()),
            ],
            "OTLP export to",
        ),
        (
            "bad jsonlines template",
            vec![("OTEL_EXPORTER_JSONLINES_PATH", "x_{nope}.jsonl".into())],
            "OTEL_EXPORTER_JSONLINES_PATH",
        ),
    ];
    for (what, vars, needle) in cases {
        let dir = tempdir();
        let mut cmd = child(dir.path());
        for (k, v) in &vars {
            cmd.env(k, v);
        }
        let out = run_bounded(&mut cmd, Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(0), "{what}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("sum 45"),
            "{what}: program result unchanged"
        );
        let err = text(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: exactly one warning, got {err:?}");
        assert!(
            lines[0].starts_with("otel-run-sdk: warning: ") && lines[0].contains(needle),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn under_otel_run_program_spans_are_children_of_the_process_span() {
    // Both protocols the sink offers; the sink token travels in OTEL_EXPORTER_OTLP_TRACES_HEADERS.
    for protocol in ["http/protobuf", "grpc"] {
        let dir = tempdir();
        let out = run(otel_run(dir.path())
            .args([
                "--sink-protocol",
                protocol,
                "--jsonlines-path",
                "rank.jsonlines",
                "--",
            ])
            .arg(example("sdk_child")));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{protocol}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr), "", "{protocol}");
        let spans = read_spans(&dir.path().join("rank.jsonlines"));
        let process = spans
            .iter()
            .find(|f| role(f) == Some("process"))
            .expect("process span");
        let traces: std::collections::BTreeSet<String> =
            spans.iter().map(|f| hex(&f.span.trace_id)).collect();
        assert_eq!(traces.len(), 1, "{protocol}: one trace");
        let work = spans
            .iter()
            .find(|f| f.span.name == "work")
            .expect("program span arrived");
        assert_eq!(work.span.parent_span_id, process.span.span_id, "{protocol}");
        assert!(
            otel_run::attr::get(&work.span.attributes, "otel_run.original_trace_id").is_none(),
            "{protocol}: no adoption was needed"
        );
        assert_eq!(
            spans.iter().filter(|f| f.scope != "otel-run").count(),
            3,
            "{protocol}: inner, solve, work"
        );
    }
}

#[test]
fn sigterm_ends_open_spans_as_errors_and_dies_of_the_signal() {
    for (sig, name) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let dir = tempdir();
        let path = dir.path().join("spans.jsonl");
        let mut c = child(dir.path())
            .arg("hang")
            .env("OTEL_EXPORTER_JSONLINES_PATH", &path)
            .env("OTEL_BSP_SCHEDULE_DELAY", "60000") // only the unwinder's flush can write them
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert_ne!(
                std::io::BufRead::read_line(&mut stdout, &mut line).unwrap(),
                0,
                "child ended early"
            );
            if line.trim() == "ready" {
                break;
            }
        }
        // SAFETY: signalling the child this test started.
        unsafe { libc::kill(c.id() as i32, sig) };
        let status = wait_exit(&mut c, Duration::from_secs(10), name);
        assert_eq!(
            status.signal(),
            Some(sig),
            "{name}: dies of the same signal"
        );
        let spans = read_spans(&path);
        let mut names: Vec<&str> = spans.iter().map(|f| f.span.name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            ["inner", "solve", "wait_for_signal", "work"],
            "{name}"
        );
        for open in ["work", "wait_for_signal"] {
            let f = spans.iter().find(|f| f.span.name == open).unwrap();
            let st = f.span.status.as_ref().unwrap();
            assert_eq!(
                (st.code, st.message.as_str()),
                (2, format!("terminated by {name}").as_str()),
                "{open}"
            );
            let ev = f
                .span
                .events
                .iter()
                .find(|e| e.name == name)
                .expect("signal event");
            assert_eq!(attr_int(&ev.attributes, "signal.number"), Some(sig as i64));
        }
        let inner = spans.iter().find(|f| f.span.name == "inner").unwrap();
        assert_ne!(
            inner.span.status.as_ref().map_or(0, |s| s.code),
            2,
            "ended spans keep their status"
        );
    }
}
