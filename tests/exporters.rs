//! Exporters for otel-run's own spans: OTLP over gRPC and HTTP/protobuf into a real collector
//! (rotel), together with the span file, and what a dead or silent collector costs.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn otlp_reaches_a_real_collector_over_grpc_and_http() {
    let rotel = Rotel::start();
    // (protocol, endpoint flag value, compression)
    let cases = [
        ("grpc", format!("http://127.0.0.1:{}", rotel.grpc), "none"),
        ("grpc", format!("127.0.0.1:{}", rotel.grpc), "gzip"),
        (
            "http/protobuf",
            format!("http://127.0.0.1:{}", rotel.http),
            "none",
        ),
        (
            "http/protobuf",
            format!("http://127.0.0.1:{}/", rotel.http),
            "gzip",
        ),
    ];
    for (i, (protocol, endpoint, compression)) in cases.iter().enumerate() {
        let dir = tempdir();
        let out = run(otel_run(dir.path())
            .args([
                "--traces-exporter",
                "jsonlines,otlp",
                "--exporter-otlp-protocol",
                protocol,
            ])
            .args([
                "--exporter-otlp-endpoint",
                endpoint,
                "--exporter-otlp-compression",
                compression,
            ])
            .args(["--", "sh", "-c", "exit 7"]));
        assert_eq!(
            out.status.code(),
            Some(7),
            "{protocol}: {}",
            text(&out.stderr)
        );
        assert!(out.stderr.is_empty(), "{protocol}: {}", text(&out.stderr));
        let spans = read_dir_spans(dir.path());
        assert_eq!(spans.len(), 1);
        rotel.wait_spans(i + 1);
        assert_eq!(
            rotel.trace_ids()[i],
            hex(&spans[0].span.trace_id),
            "{protocol} {compression}"
        );
        assert_eq!(rotel.span_ids()[i], hex(&spans[0].span.span_id));
    }
    let log = rotel.output();
    assert!(log.contains("process.exit.code: Int(7)"), "{log}");
    assert!(log.contains("mpi.rank: Int(0)"));
}

#[test]
fn environment_configures_the_exporter_like_any_sdk() {
    let rotel = Rotel::start();
    let dir = tempdir();
    // An endpoint alone selects the otlp exporter; the traces-specific variable wins.
    let out = run(otel_run(dir.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://127.0.0.1:{}/v1/traces", rotel.http),
        )
        .args(["--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        span_files(dir.path()).is_empty(),
        "default exporter is otlp when an endpoint is set"
    );
    rotel.wait_spans(1);
}

#[test]
fn dead_collector_costs_a_warning_not_the_job() {
    let dir = tempdir();
    let refused = refused_port(); // bound, never listening: connections are refused
    let port = refused.port;
    let out = exit_within(
        otel_run(dir.path())
            .args([
                "--traces-exporter",
                "otlp,jsonlines",
                "--exporter-otlp-timeout",
                "2000",
            ])
            .args([
                "--exporter-otlp-endpoint",
                &format!("http://127.0.0.1:{port}"),
                "--",
                "sh",
                "-c",
                "exit 5",
            ]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(5));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("1 spans were not acknowledged") && stderr.contains("otel-run replay"),
        "{stderr}"
    );
    assert_eq!(read_dir_spans(dir.path()).len(), 1, "the file has the span");
}

#[test]
fn silent_collector_is_bounded_by_the_timeout() {
    // Never accepted: the kernel completes the handshakes, nobody reads or answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for protocol in ["grpc", "http/protobuf"] {
        let dir = tempdir();
        let out = exit_within(
            otel_run(dir.path())
                .args([
                    "--traces-exporter",
                    "otlp",
                    "--exporter-otlp-timeout",
                    "700",
                    "--exporter-otlp-protocol",
                    protocol,
                ])
                .args([
                    "--exporter-otlp-endpoint",
                    &format!("http://127.0.0.1:{port}"),
                    "--",
                    "true",
                ]),
            Duration::from_secs(60),
        );
        assert_eq!(out.status.code(), Some(0));
        // Not acknowledged: spilled, with the command that sends it later.
        assert!(
            text(&out.stderr).contains("not acknowledged")
                && text(&out.stderr).contains("otel-run replay"),
            "{}",
            text(&out.stderr)
        );
    }
    drop(listener);
}
