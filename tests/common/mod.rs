//! Shared helpers for the functional tests: they run the built `otel-run` binary against real
//! components (Slurm, OpenMPI, MPICH, the Python SDK, rotel). A missing component fails the test
//! with instructions — nothing skips silently.
#![allow(dead_code)]

pub mod printed;
#[allow(unused_imports)] // each test binary uses some of them
pub use printed::{assert_received_exactly, expected, printed, Printed};

use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_otel-run")
}

/// A component the harness provides; panics with how to get it when absent.
pub fn require(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: this test needs a real component. Run the suite with scripts/test.sh, \
             which installs Slurm, OpenMPI, MPICH, the Python SDK and rotel and sets {var}."
        ),
    }
}

pub fn python() -> String {
    require("OTEL_RUN_TEST_PYTHON")
}

pub fn rotel() -> String {
    require("OTEL_RUN_TEST_ROTEL")
}

pub fn slurm() {
    require("OTEL_RUN_TEST_SLURM");
    require("SLURM_CONF");
}

pub fn support(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// A program from examples/ (real SDK children), which `cargo test` builds next to the tests.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} missing: build it with cargo build --examples",
        path.display()
    );
    path
}

/// A fresh file written by the real OpenTelemetry Python SDK's `to_json` (tests/support/py_reference.py).
pub fn python_sdk_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = run(Command::new(python())
        .arg(support("py_reference.py"))
        .arg(&path));
    assert!(
        out.status.success(),
        "py_reference.py: {}",
        text(&out.stderr)
    );
    path
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("otel-run-test-")
        .tempdir()
        .expect("temp dir")
}

/// `otel-run` with a clean OpenTelemetry environment, so the caller's shell cannot change results.
pub fn otel_run(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    scrub(&mut cmd);
    cmd.current_dir(dir);
    cmd
}

/// Removes inherited variables that would change what otel-run or a child does.
pub fn scrub(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") && !k.starts_with("OTEL_RUN_TEST_")
            || k == "TRACEPARENT"
            || k == "TRACESTATE"
            || k == "BAGGAGE"
        {
            cmd.env_remove(&k);
        }
    }
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every span file matching `*.jsonl*` in `dir`.
pub fn span_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.to_string_lossy().starts_with("jsonl"))
        })
        .collect();
    files.sort();
    files
}

/// A span with the resource it came with.
#[derive(Debug, Clone)]
pub struct Found {
    pub file: PathBuf,
    pub resource: Vec<KeyValue>,
    pub scope: String,
    pub span: Span,
}

/// Reads a span file with otel-run's own reader, failing on any bad line.
pub fn read_spans(path: &Path) -> Vec<Found> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader =
        otel_run::format::Reader::new(path.display().to_string(), BufReader::new(file));
    let mut out = Vec::new();
    while let Some((_, data)) = reader.next_data().unwrap_or_else(|e| panic!("{e}")) {
        push_all(&mut out, path, data.resource_spans);
    }
    out
}

fn push_all(out: &mut Vec<Found>, path: &Path, rss: Vec<ResourceSpans>) {
    for rs in rss {
        let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
        for ss in rs.scope_spans {
            let scope = ss.scope.map(|s| s.name).unwrap_or_default();
            for span in ss.spans {
                out.push(Found {
                    file: path.to_path_buf(),
                    resource: resource.clone(),
                    scope: scope.clone(),
                    span,
                });
            }
        }
    }
}

pub fn read_dir_spans(dir: &Path) -> Vec<Found> {
    span_files(dir).iter().flat_map(|f| read_spans(f)).collect()
}

pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    otel_run::attr::get(attrs, key)
}

pub fn attr_int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    otel_run::attr::get_int(attrs, key)
}

pub fn attr_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    otel_run::attr::get_str(attrs, key)
}

pub fn role(f: &Found) -> Option<&str> {
    attr_str(&f.span.attributes, "otel_run.span")
}

pub fn hex(b: &[u8]) -> String {
    otel_run::ids::hex(b)
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit, polling; one still running after `limit` is killed (so a hung test
/// leaves nothing behind) and fails the test, naming `what`.
pub fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process whose stdout and stderr go to files, so a chatty one cannot block on a full pipe
/// while the test polls it (or signals it, or waits for its files to grow).
pub struct Spawned {
    pub child: Child,
    out: std::fs::File,
    err: std::fs::File,
}

pub fn spawn_to_files(cmd: &mut Command) -> Spawned {
    let (out, err) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let child = cmd
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap();
    Spawned { child, out, err }
}

impl Spawned {
    /// Waits for the exit (see [`wait_exit`]) and returns what the process printed.
    pub fn finish(mut self, limit: Duration, what: &str) -> Output {
        let status = wait_exit(&mut self.child, limit, what);
        let read = |mut f: std::fs::File| {
            use std::io::{Read, Seek};
            let mut b = Vec::new();
            f.seek(std::io::SeekFrom::Start(0)).unwrap();
            f.read_to_end(&mut b).unwrap();
            b
        };
        Output {
            status,
            stdout: read(self.out),
            stderr: read(self.err),
        }
    }
}

/// Runs `cmd` to its exit; a process still running after `limit` is killed and fails the test.
pub fn exit_within(cmd: &mut Command, limit: Duration) -> Output {
    spawn_to_files(cmd).finish(limit, "the process")
}

/// `--exporter-otlp-protocol` and `--exporter-otlp-endpoint` for `rotel`'s port of `protocol`.
pub fn endpoint_args(rotel: &Rotel, protocol: &str) -> Vec<String> {
    let port = if protocol == "grpc" {
        rotel.grpc
    } else {
        rotel.http
    };
    vec![
        "--exporter-otlp-protocol".into(),
        protocol.into(),
        "--exporter-otlp-endpoint".into(),
        format!("http://127.0.0.1:{port}"),
    ]
}

/// The python format holds microseconds, as OpenTelemetry Python writes them (exact nanoseconds
/// are the otlp format's): times truncated as its writer truncates them.
pub fn micros(data: &mut [ResourceSpans]) {
    for span in data
        .iter_mut()
        .flat_map(|rs| &mut rs.scope_spans)
        .flat_map(|ss| &mut ss.spans)
    {
        span.start_time_unix_nano -= span.start_time_unix_nano % 1000;
        span.end_time_unix_nano -= span.end_time_unix_nano % 1000;
        for e in &mut span.events {
            e.time_unix_nano -= e.time_unix_nano % 1000;
        }
    }
}

/// Checks the files of one launch: one trace, one step root from rank 0 (when `step` is
/// expected), exactly `n` process spans with ranks 0..n, each under the step root.
pub fn assert_one_job_trace(dir: &Path, n: i64, step: bool) -> Vec<Found> {
    let spans = read_dir_spans(dir);
    let traces: std::collections::BTreeSet<String> =
        spans.iter().map(|f| hex(&f.span.trace_id)).collect();
    assert_eq!(traces.len(), 1, "one trace expected, got {traces:?}");
    let steps: Vec<&Found> = spans.iter().filter(|f| role(f) == Some("step")).collect();
    let procs: Vec<&Found> = spans
        .iter()
        .filter(|f| role(f) == Some("process"))
        .collect();
    let mut ranks: Vec<i64> = procs
        .iter()
        .map(|f| attr_int(&f.resource, "mpi.rank").unwrap())
        .collect();
    ranks.sort();
    assert_eq!(ranks, (0..n).collect::<Vec<_>>(), "process spans by rank");
    if step {
        assert_eq!(steps.len(), 1, "exactly one step root");
        assert_eq!(
            attr_int(&steps[0].resource, "mpi.rank"),
            Some(0),
            "step root comes from rank 0"
        );
        for p in &procs {
            assert_eq!(
                p.span.parent_span_id, steps[0].span.span_id,
                "process span parent is the step root"
            );
            assert_eq!(attr_int(&p.resource, "mpi.size"), Some(n));
        }
    } else {
        assert!(steps.is_empty());
    }
    spans
}

/// A real OTLP collector (rotel from PyPI) on 127.0.0.1, printing every span it receives.
/// Stopped by pid when dropped.
pub struct Rotel {
    pub child: std::process::Child,
    pub grpc: u16,
    pub http: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A loopback TCP port that refuses connections for as long as the value lives: the socket is
/// bound (so no other process can take the port meanwhile) but never listens.
pub struct RefusedPort {
    pub port: u16,
    _fd: std::os::fd::OwnedFd,
}

#[allow(dead_code)] // not every test file uses it
pub fn refused_port() -> RefusedPort {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket/bind/getsockname calls on a descriptor owned here.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), len);
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let mut len = len;
        let rc = libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len);
        assert_eq!(rc, 0, "getsockname: {}", std::io::Error::last_os_error());
        RefusedPort {
            port: u16::from_be(addr.sin_port),
            _fd: owned,
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Rotel {
    /// Starts rotel on two loopback ports. rotel cannot bind port 0 and report the port back, so
    /// the ports are picked free first; if another process takes one in between, rotel exits,
    /// and it is started again on fresh ports.
    pub fn start() -> Rotel {
        for _ in 0..5 {
            if let Some(r) = Rotel::try_start_on(free_port(), free_port()) {
                return r;
            }
        }
        panic!("rotel-agent did not start on free loopback ports in 5 attempts");
    }

    /// On given ports: a collector restarted where its clients expect it.
    pub fn start_on(grpc: u16, http: u16) -> Rotel {
        Rotel::try_start_on(grpc, http)
            .unwrap_or_else(|| panic!("rotel-agent could not listen on ports {grpc} and {http}"))
    }

    fn try_start_on(grpc: u16, http: u16) -> Option<Rotel> {
        let dir = tempdir();
        let log = dir.path().join("rotel.out");
        let child = Command::new(rotel())
            .args([
                "start",
                "--exporter",
                "blackhole",
                "--debug-log",
                "traces",
                "--debug-log-verbosity",
                "detailed",
            ])
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc}"))
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--pid-file")
            .arg(dir.path().join("rotel.pid"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("start rotel-agent");
        let mut r = Rotel {
            child,
            grpc,
            http,
            log,
            _dir: dir,
        };
        let mut exited = false;
        wait_for(Duration::from_secs(20), "rotel to listen", || {
            exited = !matches!(r.child.try_wait(), Ok(None));
            exited
                || [grpc, http]
                    .iter()
                    .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
        });
        if exited {
            r.stop();
            return None;
        }
        Some(r)
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Trace ids of the spans received so far, one per span.
    pub fn trace_ids(&self) -> Vec<String> {
        self.output()
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("Trace ID")
                    .map(|r| r.trim_start_matches([' ', ':']).trim().to_string())
            })
            .collect()
    }

    pub fn span_ids(&self) -> Vec<String> {
        self.output()
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("ID             :")
                    .map(|r| r.trim().to_string())
            })
            .collect()
    }

    /// Waits until `n` spans have been printed.
    pub fn wait_spans(&self, n: usize) {
        wait_for(
            Duration::from_secs(20),
            &format!("{n} spans at rotel"),
            || self.trace_ids().len() >= n,
        );
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        self.stop();
    }
}
pub mod attack_support;
