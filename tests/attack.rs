//! The attack suite: a hostile program (it holds the sink token), another user on the node (no
//! token), corrupt input files and a full disk, against the real binary. Every case is bounded in
//! count and time and uses loopback only.

mod common;
use common::attack_support::{gzip, http_post, request, Tmpfs};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{span::Link, ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A running otel-run whose program waits for a `done` file, exposing the sink's port and token.
struct Live {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
    token: String,
}

impl Live {
    /// `dir` is the program's working directory (where `done` is expected).
    fn start(dir: &Path, span_path: &Path) -> Live {
        Live::start_with(dir, span_path, |_| {})
    }

    /// [`Live::start`] with otel-run's stderr in `dir/otel-run.err` (see [`Live::stderr`]).
    fn start_logged(dir: &Path, span_path: &Path) -> Live {
        let err = std::fs::File::create(dir.join("otel-run.err")).unwrap();
        Live::start_with(dir, span_path, |cmd| {
            cmd.stderr(err);
        })
    }

    fn start_with(dir: &Path, span_path: &Path, configure: impl FnOnce(&mut Command)) -> Live {
        let script = "printf '%s\\n%s\\n' \"$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT\" \"$OTEL_EXPORTER_OTLP_TRACES_HEADERS\" > env.tmp && mv env.tmp env.txt; while [ ! -e done ]; do sleep 0.02; done";
        let mut cmd = otel_run(dir);
        cmd.arg("--jsonlines-path")
            .arg(span_path)
            .args(["--", "sh", "-c", script]);
        configure(&mut cmd);
        let child = cmd.spawn().unwrap();
        let env_file = dir.join("env.txt");
        wait_for(Duration::from_secs(10), "the program to start", || {
            env_file.exists()
        });
        let env = std::fs::read_to_string(&env_file).unwrap();
        let mut lines = env.lines();
        let port = lines
            .next()
            .unwrap()
            .trim_start_matches("http://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let token = lines.next().unwrap().split_once('=').unwrap().1.to_string();
        Live {
            child,
            dir: dir.to_path_buf(),
            port,
            token,
        }
    }

    fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The most otel-run has held at any moment (VmHWM), not just now.
    fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    /// CPU time otel-run has used (user + system), in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        // After the command name: state is field 3, utime 14, stime 15.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// What otel-run wrote to stderr so far ([`Live::start_logged`]).
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("otel-run.err")).unwrap_or_default()
    }

    /// A POST with the token, protobuf unless `extra` names another content type.
    fn post(&self, body: &[u8], extra: &[(&str, &str)]) -> (u16, String) {
        let mut headers = vec![("x-otel-run-token", self.token.as_str())];
        if !extra.iter().any(|(k, _)| *k == "content-type") {
            headers.push(("content-type", "application/x-protobuf"));
        }
        headers.extend_from_slice(extra);
        http_post(self.port, &headers, body)
    }

    fn finish(mut self) -> std::process::ExitStatus {
        std::fs::write(self.dir.join("done"), "").unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Live {
    /// A failed assertion must not leave the otel-run this test started behind (by its pid).
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn span(name: &str, id: u8) -> Span {
    Span {
        trace_id: vec![3; 16],
        span_id: vec![id; 8],
        name: name.into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_000_000_001,
        ..Default::default()
    }
}

/// `otel-run replay --dry-run FILE`: reads the file end to end, exactly as a collector would get it.
fn dry_run(path: &Path) -> std::process::Output {
    let mut cmd = Command::new(bin());
    scrub(&mut cmd);
    cmd.args(["replay", "--dry-run"]).arg(path);
    exit_within(&mut cmd, Duration::from_secs(60))
}

fn names(path: &Path) -> Vec<String> {
    read_spans(path).into_iter().map(|f| f.span.name).collect()
}

#[test]
fn spans_the_readers_would_refuse_are_refused_by_the_sink() {
    let dir = tempdir();
    let live = Live::start(dir.path(), &dir.path().join("rank.jsonlines"));
    let zero_id = Span {
        span_id: vec![0; 8],
        ..span("bad-zero-span-id", 1)
    };
    let zero_trace = Span {
        trace_id: vec![0; 16],
        ..span("bad-zero-trace-id", 2)
    };
    let zero_parent = Span {
        parent_span_id: vec![0; 8],
        ..span("bad-zero-parent", 3)
    };
    let bad_link = Span {
        links: vec![Link {
            trace_id: vec![1; 3],
            span_id: vec![1; 8],
            ..Default::default()
        }],
        ..span("bad-link", 4)
    };
    let zero_link = Span {
        links: vec![Link {
            trace_id: vec![1; 16],
            span_id: vec![0; 8],
            ..Default::default()
        }],
        ..span("bad-zero-link", 5)
    };
    let body = request(vec![
        zero_id,
        span("good", 6),
        zero_trace,
        zero_parent,
        bad_link,
        zero_link,
    ]);
    let (code, answer) = live.post(&body, &[]);
    assert_eq!(code, 200, "{answer}");
    let status = live.finish();
    assert!(status.success());
    let path = dir.path().join("rank.jsonlines");
    let out = dry_run(&path);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let names = names(&path);
    assert!(names.contains(&"good".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("bad")), "{names:?}");
}

#[test]
fn multi_member_gzip_bodies_are_read_whole() {
    let dir = tempdir();
    let live = Live::start(dir.path(), &dir.path().join("rank.jsonlines"));
    // Concatenated protobuf messages merge: two members carry two ResourceSpans.
    let mut body = gzip(&request(vec![span("member-1", 1)]));
    body.extend(gzip(&request(vec![span("member-2", 2)])));
    let (code, answer) = live.post(&body, &[("content-encoding", "gzip")]);
    assert_eq!(code, 200, "{answer}");
    assert!(live.finish().success());
    let names = names(&dir.path().join("rank.jsonlines"));
    for want in ["member-1", "member-2"] {
        assert!(
            names.contains(&want.to_string()),
            "{want} missing: {names:?}"
        );
    }
}

#[test]
fn a_full_disk_is_refused_for_a_retry_and_leaves_no_fragment() {
    let dir = tempdir();
    let fs = Tmpfs::mount(&dir.path().join("small"), "256k");
    let path = fs.0.join("rank.jsonlines");
    let live = Live::start(dir.path(), &path);
    let filler = "x".repeat(7000);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..200u32 {
        let name = format!("span-{i}-{filler}");
        let (code, answer) = live.post(&request(vec![span(&name, (i % 250 + 1) as u8)]), &[]);
        match code {
            200 => acknowledged.push(name),
            503 => {
                assert!(
                    answer.to_ascii_lowercase().contains("retry-after"),
                    "a full disk is a retryable answer: {answer}"
                );
                refused = Some(i);
                break;
            }
            other => panic!("unexpected HTTP {other}: {answer}"),
        }
    }
    assert!(refused.is_some(), "the 256 KiB disk never filled");
    assert!(!acknowledged.is_empty());
    // A request small enough to fit in what is left must still go in as whole lines after the
    // failed one (no torn fragment glued to it).
    let (code, _) = live.post(&request(vec![span("small-after-full", 9)]), &[]);
    assert!(code == 200 || code == 503, "{code}");
    let small_ok = code == 200;
    let status = live.finish();
    assert!(status.success(), "the program's status is kept: {status:?}");
    let out = dry_run(&path);
    assert!(
        out.status.success(),
        "the file reads end to end: {}",
        text(&out.stderr)
    );
    let found = names(&path);
    for name in &acknowledged {
        assert!(
            found.contains(name),
            "acknowledged span {} missing",
            &name[..12]
        );
    }
    assert_eq!(found.contains(&"small-after-full".to_string()), small_ok);
    drop(fs);
}

#[test]
fn unauthenticated_floods_and_header_trickles_do_not_starve_the_program() {
    let dir = tempdir();
    let live = Live::start(dir.path(), &dir.path().join("rank.jsonlines"));
    // Another user on the node: 400 connections, each with unfinished headers and a trickle.
    let flood = r#"
import socket, sys, time
port = int(sys.argv[1])
socks = []
for i in range(400):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nhost: x\r\n" + b"x-pad: " + b"a" * 200000)
        socks.append(s)
    except OSError:
        pass
print("ready", flush=True)
for _ in range(8):
    for s in socks:
        try:
            s.sendall(b"a")
        except OSError:
            pass
    time.sleep(0.5)
"#;
    let mut attacker = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            // The system's Python: nobody cannot read root's pyenv or the suite's venv.
            "/usr/bin/python3",
            "-c",
            flood,
        ])
        .arg(live.port.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv(1) from util-linux");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(attacker.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready", "the flood did not start");
    // While the flood holds its connections and trickles: the program's export goes through.
    let (code, answer) = live.post(&request(vec![span("legit", 1)]), &[]);
    assert_eq!(code, 200, "{answer}");
    let rss = live.rss_kib();
    assert!(rss < 64 * 1024, "otel-run RSS {rss} KiB under the flood");
    assert!(attacker.wait().unwrap().success());
    assert!(live.finish().success());
    assert!(names(&dir.path().join("rank.jsonlines")).contains(&"legit".to_string()));
}

/// One valid python line from a real run, to corrupt.
fn python_line(dir: &Path) -> serde_json::Value {
    let path = dir.join("seed.jsonl");
    let out = run(otel_run(dir)
        .arg("--jsonlines-path")
        .arg(&path)
        .args(["--", "true"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let content = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(content.lines().next().unwrap()).unwrap()
}

fn offline(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(bin());
    scrub(&mut cmd);
    cmd.current_dir(dir).args(args);
    exit_within(&mut cmd, Duration::from_secs(120))
}

#[test]
fn deep_nesting_is_a_clear_error_in_every_reader() {
    let dir = tempdir();
    let line = python_line(dir.path()).to_string();
    let depth = 100_000;
    for (name, nested) in [
        (
            "arrays",
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        ),
        (
            "objects",
            format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
        ),
    ] {
        let bad = line.replacen(
            "\"attributes\":{",
            &format!("\"attributes\":{{\"deep\":{nested},"),
            1,
        );
        assert_ne!(bad, line);
        let file = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&file, format!("{line}\n{bad}\n")).unwrap();
        let file = file.to_str().unwrap();
        for args in [
            vec!["replay", "--dry-run", file],
            vec!["summary", file],
            vec!["merge", "-o", "out.jsonl", file],
        ] {
            let out = offline(dir.path(), &args);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(
                err.contains(&format!("{name}.jsonl:2: ")) && err.contains("recursion limit"),
                "{args:?}: {err}"
            );
        }
    }
}

#[test]
fn an_endless_line_is_an_error_not_an_allocation() {
    let dir = tempdir();
    // 130 MiB of NULs without a newline, gzipped to ~130 KB: more than the 128 MiB line bound.
    let file = dir.path().join("nuls.jsonl.gz");
    let mut e = flate2::write::GzEncoder::new(
        std::fs::File::create(&file).unwrap(),
        flate2::Compression::best(),
    );
    let block = vec![0u8; 1 << 20];
    for _ in 0..130 {
        e.write_all(&block).unwrap();
    }
    e.finish().unwrap();
    let out = offline(dir.path(), &["replay", "--dry-run", file.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("nuls.jsonl.gz:1: line longer than 134217728 bytes"),
        "{err}"
    );
    // Garbage without a newline is not excused as a torn last line.
    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(&garbage, b"\x7fELF\x02\x01garbage").unwrap();
    let out = offline(
        dir.path(),
        &["replay", "--dry-run", garbage.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

#[test]
fn impossible_times_are_clear_errors() {
    let dir = tempdir();
    let line = python_line(dir.path());
    for (i, bad) in ["2600-01-01T00:00:00Z", "2026-01-01T00:00:00+\u{ff10}1:00"]
        .iter()
        .enumerate()
    {
        let mut l = line.clone();
        l["start_time"] = serde_json::Value::String(bad.to_string());
        let file = dir.path().join(format!("t{i}.jsonl"));
        std::fs::write(&file, format!("{l}\n")).unwrap();
        let out = offline(dir.path(), &["replay", "--dry-run", file.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {err}");
        assert!(
            err.contains(&format!("t{i}.jsonl:1: ")) && err.contains("start_time"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn the_span_file_is_never_written_through_a_planted_symlink() {
    let dir = tempdir();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("rank.jsonl")).unwrap();
    let out = run(otel_run(dir.path()).args([
        "--jsonlines-path",
        "rank.jsonl",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]));
    assert_eq!(
        out.status.code(),
        Some(7),
        "the program still runs, its status kept"
    );
    assert!(
        text(&out.stderr).contains("symlink"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn placeholders_from_the_environment_stay_in_the_directory() {
    let dir = tempdir();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let out = run(otel_run(&sub)
        .env("SLURM_JOB_ID", "../x")
        .env("SLURM_PROCID", "0")
        .env("SLURM_NTASKS", "1")
        .args(["--jsonlines-path", "t_{job}.jsonl", "--", "true"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let files: Vec<String> = std::fs::read_dir(&sub)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["t__._x.jsonl"], "{files:?}");
    assert!(!dir.path().join("x.jsonl").exists());
}

#[test]
fn merge_output_keeps_the_inputs_mode_and_leaves_no_temporary_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let line = python_line(dir.path());
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, format!("{line}\n")).unwrap();
    std::fs::set_permissions(&input, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = offline(dir.path(), &["merge", "-o", "out.jsonl", "in.jsonl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mode = std::fs::metadata(dir.path().join("out.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "a merge of 0600 files is 0600");
    // A failed merge (a bad input) leaves neither the output nor a temporary file.
    std::fs::write(dir.path().join("bad.jsonl"), "not json\n").unwrap();
    let out = offline(
        dir.path(),
        &["merge", "-o", "new.jsonl", "in.jsonl", "bad.jsonl"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("new.jsonl") || n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn amplification_and_empty_span_floods_stay_within_memory() {
    let dir = tempdir();
    let live = Live::start(dir.path(), &dir.path().join("rank.jsonlines"));
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    // A 1 MB resource shared by 100 spans: the python format repeats it on every line (100 MB
    // of output), which must be written in chunks, not built in one buffer.
    let resource = Resource {
        attributes: vec![KeyValue {
            key: "big".into(),
            value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                        "r".repeat(1 << 20),
                    ),
                ),
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let amplified = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                spans: (0..100).map(|i| span("amp", (i % 250 + 1) as u8)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let (code, answer) = live.post(&amplified, &[]);
    assert_eq!(code, 200, "{answer}");
    let rss = live.rss_kib();
    assert!(
        rss < 64 * 1024,
        "otel-run RSS {rss} KiB after the amplified request"
    );
    // 8 MB of empty Span messages (2 bytes each on the wire, ~250 in memory): refused before
    // decoding.
    let mut empty = Vec::new();
    let inner: Vec<u8> = std::iter::repeat_n([0x12u8, 0x00], 2_000_000)
        .flatten()
        .collect();
    // ResourceSpans.scope_spans is field 2; ScopeSpans.spans is field 2 (the 0x12 keys above).
    prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut empty);
    prost::encoding::encode_varint(inner.len() as u64, &mut empty);
    empty.extend(inner);
    let mut body = Vec::new();
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut body);
    prost::encoding::encode_varint(empty.len() as u64, &mut body);
    body.extend(empty);
    let (code, answer) = live.post(&body, &[]);
    assert_eq!(code, 413, "{answer}");
    let rss = live.rss_kib();
    assert!(
        rss < 64 * 1024,
        "otel-run RSS {rss} KiB after the empty-span flood"
    );
    let (code, _) = live.post(&request(vec![span("after", 1)]), &[]);
    assert_eq!(code, 200);
    assert!(live.finish().success());
    let out = dry_run(&dir.path().join("rank.jsonlines"));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Empty spans as OTLP protobuf: `ResourceSpans { ScopeSpans { n × Span {} } }`, 2 bytes per span.
fn empty_spans_protobuf(n: usize) -> Vec<u8> {
    let ld = |field: u32, payload: Vec<u8>| {
        let mut out = Vec::with_capacity(payload.len() + 8);
        prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, &mut out);
        prost::encoding::encode_varint(payload.len() as u64, &mut out);
        out.extend(payload);
        out
    };
    // ExportTraceServiceRequest.resource_spans = 1, ResourceSpans.scope_spans = 2,
    // ScopeSpans.spans = 2 (the 0x12 keys).
    ld(1, ld(2, [0x12u8, 0x00].repeat(n)))
}

/// gRPC has no plain-socket client in the tests: the venv's grpcio sends `body` (a file) as one
/// unary Export with the token and prints the status code name.
const GRPC_SEND: &str = r#"
import sys, grpc
port, token, path = sys.argv[1], sys.argv[2], sys.argv[3]
body = open(path, "rb").read()
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    try:
        export(body, metadata=[("x-otel-run-token", token)], timeout=60)
        print("OK")
    except grpc.RpcError as e:
        print(e.code().name, e.details())
"#;

/// Millions of empty objects are counted before they are decoded on every transport, not only
/// OTLP/HTTP protobuf: gRPC and OTLP/JSON requests too.
#[test]
fn empty_object_floods_are_refused_before_decoding_on_grpc_and_json() {
    let dir = tempdir();
    let live = Live::start(dir.path(), &dir.path().join("rank.jsonlines"));
    // 4 million empty spans: 8 MB of gRPC message, ~1 GB if decoded.
    let body = dir.path().join("grpc.bin");
    std::fs::write(&body, empty_spans_protobuf(4_000_000)).unwrap();
    let out = exit_within(
        Command::new(python())
            .args(["-c", GRPC_SEND])
            .arg(live.port.to_string())
            .arg(&live.token)
            .arg(&body),
        Duration::from_secs(120),
    );
    let answer = text(&out.stdout);
    assert!(
        answer.starts_with("RESOURCE_EXHAUSTED") && answer.contains("send smaller batches"),
        "{answer} {}",
        text(&out.stderr)
    );
    // 4 million `{}` spans: 12 MB of OTLP/JSON.
    let mut json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":["#.to_vec();
    json.extend_from_slice(&b"{},".repeat(4_000_000));
    json.pop();
    json.extend_from_slice(b"]}]}]}");
    let (code, answer) = live.post(&json, &[("content-type", "application/json")]);
    assert_eq!(code, 413, "{answer}");
    assert!(answer.contains("send smaller batches"), "{answer}");
    let peak = live.peak_rss_kib();
    assert!(
        peak < 64 * 1024,
        "otel-run peak RSS {peak} KiB through the empty-object floods"
    );
    // The program's own exports still go through, on both transports.
    std::fs::write(&body, request(vec![span("after-grpc", 1)])).unwrap();
    let out = exit_within(
        Command::new(python())
            .args(["-c", GRPC_SEND])
            .arg(live.port.to_string())
            .arg(&live.token)
            .arg(&body),
        Duration::from_secs(60),
    );
    assert_eq!(text(&out.stdout).trim(), "OK", "{}", text(&out.stderr));
    let (code, answer) = live.post(&request(vec![span("after-json", 2)]), &[]);
    assert_eq!(code, 200, "{answer}");
    assert!(live.finish().success());
    let names = names(&dir.path().join("rank.jsonlines"));
    for want in ["after-grpc", "after-json"] {
        assert!(names.contains(&want.to_string()), "{want}: {names:?}");
    }
}

/// `--sink-body-limit` stops where a request could make a line the readers refuse; at the cap,
/// the worst line one request can make (a resource of control characters, each escaped to six
/// bytes) is written and reads back.
#[test]
fn the_body_limit_cap_keeps_every_line_readable() {
    let dir = tempdir();
    for (flag, env) in [(Some("17"), None), (None, Some("100000"))] {
        let mut cmd = otel_run(dir.path());
        if let Some(v) = flag {
            cmd.args(["--sink-body-limit", v]);
        }
        if let Some(v) = env {
            cmd.env("OTEL_RUN_SINK_BODY_LIMIT", v);
        }
        let out = run(cmd.args(["--", "true"]));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("--sink-body-limit")
                && err.contains("is not in 1..=16")
                && err.contains("128 MiB"),
            "{err}"
        );
    }
    let live = Live::start(dir.path(), &dir.path().join("rank.jsonlines"));
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    let worst = |len: usize| ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "c".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("\u{1}".repeat(len))),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span("worst-line", 1)],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let limit = 16 << 20;
    let size = worst(0).encoded_len();
    // The string's length prefix grows by a few bytes beyond 2 MiB: aim a little lower.
    let body = worst(limit - size - 16).encode_to_vec();
    assert!(
        body.len() <= limit && body.len() > limit - 32,
        "{}",
        body.len()
    );
    let (code, answer) = live.post(&body, &[]);
    assert_eq!(code, 200, "{}", &answer[..answer.len().min(300)]);
    assert!(live.finish().success());
    let path = dir.path().join("rank.jsonlines");
    let longest = std::fs::read(&path)
        .unwrap()
        .split(|b| *b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap();
    assert!(
        longest > 6 * (limit - size - 16) && longest < 128 << 20,
        "{longest}"
    );
    let out = dry_run(&path);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Another user's HTTP/2 client that never finishes a request header (a HEADERS frame announced
/// at 4000 bytes, its payload sent one byte a second: every byte is traffic, so the idle
/// timeout never fires, and h2's own CONTINUATION limit never applies) is dropped at the token
/// deadline, while the program's export goes through at once.
#[test]
fn http2_header_trickles_are_dropped() {
    let dir = tempdir();
    let live = Live::start_logged(dir.path(), &dir.path().join("rank.jsonlines"));
    let trickle = r#"
import socket, struct, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    # Preface, empty SETTINGS, then the 9-byte header of a HEADERS frame (END_HEADERS) on
    # stream 1 announcing 4000 bytes of header block.
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") + struct.pack(">I", 4000)[1:] + bytes([1, 4]) + struct.pack(">I", 1))
    s.setblocking(False)
    socks.append(s)
print("ready", flush=True)
alive = set(range(n))
deadline = time.time() + 60
while alive and time.time() < deadline:
    for i in list(alive):
        try:
            while True:
                if not socks[i].recv(65536):
                    alive.discard(i)
                    break
        except BlockingIOError:
            pass
        except OSError:
            alive.discard(i)
        if i in alive:
            try:
                socks[i].sendall(b"\x83")
            except OSError:
                alive.discard(i)
    time.sleep(1)
print("closed", n - len(alive), "of", n, flush=True)
"#;
    let mut attacker = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            trickle,
        ])
        .arg(live.port.to_string())
        .arg("20")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv(1) from util-linux");
    let mut out = std::io::BufReader::new(attacker.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the trickle did not start");
    let start = std::time::Instant::now();
    let (code, answer) = live.post(&request(vec![span("legit", 1)]), &[]);
    let took = start.elapsed();
    assert_eq!(code, 200, "{answer}");
    assert!(
        took < Duration::from_secs(1),
        "the program's export took {took:?}"
    );
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "closed 20 of 20", "{}", live.stderr());
    assert!(attacker.wait().unwrap().success());
    let rss = live.rss_kib();
    assert!(rss < 64 * 1024, "otel-run RSS {rss} KiB");
    assert!(
        live.stderr().contains("showed no token within"),
        "{}",
        live.stderr()
    );
    assert!(live.finish().success());
    assert!(names(&dir.path().join("rank.jsonlines")).contains(&"legit".to_string()));
}

/// At the descriptor limit accept() fails with EMFILE until a descriptor is freed: otel-run
/// backs off instead of spinning next to the program, and serves again once the flood is gone.
#[test]
fn descriptor_exhaustion_backs_off_and_recovers() {
    let dir = tempdir();
    let live = Live::start_logged(dir.path(), &dir.path().join("rank.jsonlines"));
    let out = run(Command::new("prlimit")
        .arg(format!("--pid={}", live.child.id()))
        .arg("--nofile=48:48"));
    assert!(out.status.success(), "prlimit(1): {}", text(&out.stderr));
    // More connections than descriptors: the kernel completes them all, otel-run cannot take them.
    let flood: Vec<std::net::TcpStream> = (0..150)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", live.port)).unwrap())
        .collect();
    wait_for(
        Duration::from_secs(10),
        "accept() to fail with EMFILE",
        || live.stderr().contains("Too many open files"),
    );
    let before = live.cpu_ticks();
    let window = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = live.cpu_ticks() - before;
    let ticks = window.elapsed().as_millis() as u64 / 10; // 100 ticks a second
    assert!(
        used * 4 < ticks,
        "otel-run used {used} of {ticks} clock ticks at the descriptor limit"
    );
    drop(flood);
    let start = std::time::Instant::now();
    let (code, answer) = live.post(&request(vec![span("after-emfile", 1)]), &[]);
    let took = start.elapsed();
    assert_eq!(code, 200, "{answer}");
    assert!(
        took < Duration::from_secs(1),
        "the program's export took {took:?}"
    );
    assert!(live.finish().success());
    assert!(names(&dir.path().join("rank.jsonlines")).contains(&"after-emfile".to_string()));
}

/// Warnings strangers can cause reach the job's stderr at most once a second: HTTP/2 protocol
/// errors and resets say nothing at all, connections over the limit are counted, and the count
/// of those not shown comes with the next warning.
#[test]
fn resets_and_connection_floods_print_rate_limited_warnings() {
    let dir = tempdir();
    let live = Live::start_logged(dir.path(), &dir.path().join("rank.jsonlines"));
    // Two bursts 1.5 s apart; each holds 200 connections (over the limit of 128) that sent an
    // HTTP/2 preface, then sends each an RST_STREAM for a stream never opened (a protocol
    // error) and resets the TCP connection (SO_LINGER 0).
    let bursts = r#"
import socket, struct, sys, time
port = int(sys.argv[1])
for burst in range(2):
    socks = []
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        socks.append(s)
    time.sleep(0.5)
    for s in socks:
        try:
            s.sendall(b"\x00\x00\x04\x03\x00\x00\x00\x00\x01\x00\x00\x00\x08")
        except OSError:
            pass
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(1.5)
"#;
    let start = std::time::Instant::now();
    let out = exit_within(
        Command::new("/usr/bin/python3")
            .args(["-c", bursts])
            .arg(live.port.to_string()),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let secs = start.elapsed().as_secs();
    let (code, answer) = live.post(&request(vec![span("legit", 1)]), &[]);
    assert_eq!(code, 200, "{answer}");
    let stderr = live.stderr();
    let lines = stderr.lines().count() as u64;
    assert!(
        (2..=secs + 2).contains(&lines),
        "{lines} lines in {secs} s of 400 connections over the limit:\n{stderr}"
    );
    assert!(
        stderr.contains("similar warnings suppressed")
            && stderr.contains("more than 128 connections"),
        "{stderr}"
    );
    assert!(live.finish().success());
}

/// A connection with no traffic is closed, so an SDK's forgotten keep-alive connection does not
/// hold a descriptor for ever: HTTP/1 within the 10 s header-read timeout (hyper applies it while
/// waiting for the next request), HTTP/2 within the 60 s idle timeout (README Limits).
#[test]
fn idle_connections_are_closed() {
    let dir = tempdir();
    let live = Live::start(dir.path(), &dir.path().join("rank.jsonlines"));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", live.port)).unwrap();
    let body = request(vec![span("before-idle", 1)]);
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-protobuf\r\nx-otel-run-token: {}\r\ncontent-length: {}\r\n\r\n",
        live.token,
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    // The answer (keep-alive: the connection stays open), then nothing until otel-run closes it.
    s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("HTTP/1: no EOF within 90 s: {e}"),
        }
    }
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // HTTP/2 by hand (no h2 client in the tests): one authenticated request, then silence.
    let h2 = r#"
import socket, struct, sys, time
port, token, body = int(sys.argv[1]), sys.argv[2].encode(), open(sys.argv[3], "rb").read()
def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload
def value(v):
    return bytes([len(v)]) + v
# HPACK: :method POST, :scheme http (static), :path and :authority and content-type (static
# names, literal values), the token (a literal name).
block = (b"\x83\x86" + b"\x04" + value(b"/v1/traces") + b"\x01" + value(b"127.0.0.1")
         + b"\x0f\x10" + value(b"application/x-protobuf") + b"\x00" + value(b"x-otel-run-token") + value(token))
s = socket.create_connection(("127.0.0.1", port), timeout=90)
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") + frame(1, 4, 1, block) + frame(0, 1, 1, body))
buf, status = b"", None
while True:
    try:
        data = s.recv(65536)
    except ConnectionResetError:
        data = b""
    if not data:
        break
    buf += data
    while len(buf) >= 9:
        length = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + length:
            break
        kind, flags, payload = buf[3], buf[4], buf[9:9 + length]
        buf = buf[9 + length:]
        if kind == 4 and not flags & 1:
            s.sendall(frame(4, 1, 0, b""))  # acknowledge the server's SETTINGS
        if kind == 1 and status is None:
            status = payload[0]
print("closed", "200" if status == 0x88 else f"status byte {status}", flush=True)
"#;
    let body_file = dir.path().join("h2-body.bin");
    std::fs::write(&body_file, request(vec![span("before-idle-h2", 2)])).unwrap();
    let out = exit_within(
        Command::new("/usr/bin/python3")
            .args(["-c", h2])
            .arg(live.port.to_string())
            .arg(&live.token)
            .arg(&body_file),
        Duration::from_secs(120),
    );
    assert_eq!(
        text(&out.stdout).trim(),
        "closed 200",
        "HTTP/2: {}",
        text(&out.stderr)
    );
    assert!(live.finish().success());
    let names = names(&dir.path().join("rank.jsonlines"));
    for want in ["before-idle", "before-idle-h2"] {
        assert!(names.contains(&want.to_string()), "{want}: {names:?}");
    }
}
