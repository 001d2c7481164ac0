//! Store and forward: with a collector configured, the program exports to otel-run's sink and
//! otel-run forwards; what the collector does not acknowledge (never started, killed, silent) is
//! spilled to a per-rank file that the printed `otel-run replay` command delivers, each span once.

mod common;
use common::attack_support::Tmpfs;
use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(180);
/// The budget otel-run states in its `-v` log when the collector has not acknowledged anything.
const UNREACHABLE: &str = "forwarding budget 1.5s (the collector has not acknowledged";

fn spill_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("spill_")
        })
        .collect();
    files.sort();
    files
}

/// Span ids (hex) of the whole lines of a file; a torn last line (disk full) is not counted.
fn span_ids(path: &Path) -> Vec<String> {
    let content = std::fs::read(path).unwrap();
    let mut ids = Vec::new();
    for line in content.split_inclusive(|b| *b == b'\n') {
        if line.last() != Some(&b'\n') {
            continue;
        }
        let data = otel_run::format::parse_line(line)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for rs in data.resource_spans {
            for ss in rs.scope_spans {
                ids.extend(ss.spans.iter().map(|s| hex(&s.span_id)));
            }
        }
    }
    ids
}

fn all_spilled(dir: &Path) -> Vec<String> {
    spill_files(dir).iter().flat_map(|f| span_ids(f)).collect()
}

fn assert_unique(ids: &[String], what: &str) -> BTreeSet<String> {
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "{what}: a span appears twice");
    set
}

/// The replay command of the end-of-run warning, as arguments after `otel-run`.
fn printed_replay(stderr: &str) -> Vec<String> {
    let line = stderr
        .lines()
        .find_map(|l| l.split_once("send them later with: ").map(|(_, c)| c))
        .unwrap_or_else(|| panic!("no replay command in: {stderr}"));
    let words: Vec<String> = line.split_whitespace().map(String::from).collect();
    assert_eq!(words[0], "otel-run", "{line}");
    words[1..].to_vec()
}

fn replay(args: &[String]) -> Output {
    let mut cmd = Command::new(bin());
    scrub(&mut cmd);
    exit_within(cmd.args(args), WATCHDOG)
}

/// `otel-run -v` in `dir`, forwarding to an OTLP/HTTP collector on `port` of localhost.
fn forwarding(dir: &Path, port: u16) -> Command {
    let mut cmd = otel_run(dir);
    cmd.args([
        "-v",
        "--traces-exporter",
        "otlp",
        "--exporter-otlp-endpoint",
    ])
    .arg(format!("http://127.0.0.1:{port}"));
    cmd
}

/// A program of `n` extra spans through a real SDK: the Python SDK or the Rust SDK.
fn program(cmd: &mut Command, language: &str, n: u32) {
    // The SDKs drop spans when their queue overflows; the test is about otel-run's losses.
    cmd.env("OTEL_BSP_MAX_QUEUE_SIZE", "100000").arg("--");
    match language {
        "python" => cmd.arg(python()).arg(support("py_child.py")),
        _ => cmd.arg(example("otlp_child")),
    };
    cmd.arg(n.to_string());
}

/// Spans the program creates besides the extra ones.
fn base_spans(language: &str) -> usize {
    if language == "python" {
        4
    } else {
        2
    }
}

#[test]
fn collector_never_started_everything_is_spilled_then_replayed_once() {
    for language in ["python", "rust"] {
        let dir = tempdir();
        let (grpc, http) = (free_port(), free_port());
        let mut cmd = forwarding(dir.path(), http);
        program(&mut cmd, language, 10_000);
        let out = exit_within(&mut cmd, WATCHDOG);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{language}: {stderr}");
        assert!(stderr.contains(UNREACHABLE), "{language}: {stderr}");
        let files = spill_files(dir.path());
        assert_eq!(files.len(), 1, "{language}: one spill file: {files:?}");
        let spilled = span_ids(&files[0]);
        let expected = 10_000 + base_spans(language) + 1; // + otel-run's process span
        assert_eq!(spilled.len(), expected, "{language}: {stderr}");
        let spilled = assert_unique(&spilled, "spill file");
        assert!(
            stderr.contains(&format!(
                "the program's spans: {} received, 0 forwarded, {} spilled, 0 dropped",
                expected - 1,
                expected - 1
            )),
            "{language}: {stderr}"
        );
        // The process span carries the counts.
        let process = read_spans(&files[0])
            .into_iter()
            .find(|f| role(f) == Some("process"))
            .unwrap();
        assert_eq!(
            attr_int(&process.span.attributes, "otel_run.spans.spilled"),
            Some(expected as i64 - 1)
        );

        // The collector comes up where it was expected; the printed command delivers each once.
        let rotel = Rotel::start_on(grpc, http);
        let out = replay(&printed_replay(&stderr));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        rotel.wait_spans(expected);
        let received = rotel.span_ids();
        assert_eq!(
            assert_unique(&received, "rotel"),
            spilled,
            "{language}: rotel got exactly the spilled spans"
        );
    }
}

#[test]
fn collector_killed_and_restarted_received_plus_spilled_is_everything_once() {
    let dir = tempdir();
    let d = dir.path();
    let mut first = Rotel::start();
    let (grpc, http) = (first.grpc, first.http);
    // Three bursts of the Python SDK; the test kills the collector between the first two and
    // restarts it between the last two.
    let py = format!("{} {}", python(), support("py_child.py").display());
    let script = format!(
        "{py} 2000 && touch one && until [ -e go2 ]; do sleep 0.05; done && {py} 2000 && touch two && until [ -e go3 ]; do sleep 0.05; done && {py} 2000"
    );
    let mut cmd = otel_run(d);
    cmd.args([
        "-v",
        "--traces-exporter",
        "otlp",
        "--exporter-otlp-timeout",
        "1000",
        "--exporter-otlp-endpoint",
    ])
    .arg(format!("http://127.0.0.1:{http}"))
    .env("OTEL_BSP_MAX_QUEUE_SIZE", "100000")
    .args(["--", "sh", "-c", &script])
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(d.join("stderr")).unwrap());
    let mut run = cmd.spawn().unwrap();
    wait_for(WATCHDOG, "the first burst", || d.join("one").exists());
    // Killed once everything sent so far has arrived: nothing is in flight.
    first.wait_spans(2004);
    first.stop();
    std::fs::write(d.join("go2"), "").unwrap();
    wait_for(WATCHDOG, "the second burst", || d.join("two").exists());
    // Restarted only once otel-run gave up on a batch (1 s timeout) and spilled it.
    wait_for(WATCHDOG, "a spilled batch", || !all_spilled(d).is_empty());
    let second = Rotel::start_on(grpc, http);
    std::fs::write(d.join("go3"), "").unwrap();
    let status = wait_exit(&mut run, WATCHDOG, "otel-run");
    let stderr = std::fs::read_to_string(d.join("stderr")).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");

    let total = 3 * 2004 + 1;
    let spilled = all_spilled(d);
    let mut received = first.span_ids();
    // What the restarted collector acknowledged has been printed before otel-run exited.
    received.extend(second.span_ids());
    let mut everything = spilled.clone();
    everything.extend(received.iter().cloned());
    assert_unique(&everything, "received and spilled");
    assert_eq!(everything.len(), total, "{stderr}");
    assert!(
        !spilled.is_empty(),
        "the collector was down for a burst: {stderr}"
    );
    assert!(
        second.span_ids().len() >= 2004,
        "the restarted collector got the last burst: {stderr}"
    );
}

#[test]
fn silent_collector_is_bounded_and_everything_spilled() {
    // A listener that accepts and reads, and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while matches!(std::io::Read::read(&mut conn, &mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    let dir = tempdir();
    let mut cmd = forwarding(dir.path(), port);
    program(&mut cmd, "python", 1000);
    let out = exit_within(&mut cmd, WATCHDOG);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(UNREACHABLE), "{stderr}");
    let spilled = all_spilled(dir.path());
    assert_eq!(spilled.len(), 1000 + 4 + 1, "{stderr}");
    assert_unique(&spilled, "spill file");
}

#[test]
fn srun_with_a_dead_collector_spills_one_file_per_rank() {
    slurm();
    let dir = tempdir();
    let refused = refused_port();
    let mut cmd = Command::new("srun");
    scrub(&mut cmd);
    cmd.current_dir(dir.path())
        .args(["-n", "8", bin(), "--traces-exporter", "otlp"])
        .arg("--exporter-otlp-endpoint")
        .arg(format!("http://127.0.0.1:{}", refused.port))
        .args(["--spill-path", "spill_{rank}_*.jsonl"]);
    program(&mut cmd, "rust", 100);
    let out = exit_within(&mut cmd, WATCHDOG);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let files = spill_files(dir.path());
    assert_eq!(files.len(), 8, "one spill file per rank: {files:?}");
    for rank in 0..8 {
        assert!(
            files.iter().any(|f| f
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("spill_{rank}_"))),
            "rank {rank}: {files:?}"
        );
    }
    let spilled = all_spilled(dir.path());
    // Per rank the program's 102 spans and the process span; rank 0 also the step root.
    assert_eq!(spilled.len(), 8 * 103 + 1, "{stderr}");
    assert_unique(&spilled, "spill files");
    let spans: Vec<Found> = files.iter().flat_map(|f| read_spans(f)).collect();
    let traces: BTreeSet<String> = spans.iter().map(|f| hex(&f.span.trace_id)).collect();
    assert_eq!(traces.len(), 1, "one job trace: {traces:?}");
}

#[test]
fn full_disk_for_the_spill_file_says_how_many_spans_were_lost() {
    let dir = tempdir();
    let disk = Tmpfs::mount(&dir.path().join("small"), "64k");
    let refused = refused_port();
    let mut cmd = forwarding(dir.path(), refused.port);
    cmd.arg("--spill-path")
        .arg(disk.0.join("spill_{rank}.jsonl"))
        .args(["--", "sh", "-c"])
        .arg(format!(
            "{} {} 2000; exit 7",
            python(),
            support("py_child.py").display()
        ))
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "100000");
    let out = exit_within(&mut cmd, WATCHDOG);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "the program's status: {stderr}");
    let kept = span_ids(&disk.0.join("spill_0.jsonl"));
    let lost = 2004 + 1 - kept.len();
    assert!(lost > 0, "64 KiB cannot hold 2005 spans: {stderr}");
    assert!(
        stderr.contains(&format!("error: {lost} spans lost")),
        "exact lost count {lost} in: {stderr}"
    );
    drop(disk);
}
