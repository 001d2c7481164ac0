//! The SIGTERM unwinder under real launchers: scancel, a Slurm time limit, mpirun, mpiexec and a
//! plain kill. The probe (examples/signal_probe.rs, a Rust SDK child) counts the signals it gets
//! and exports spans to the sink; each signal must reach it exactly once, otel-run's spans must be
//! on disk before Slurm's SIGKILL (KillWait is 5 s on the test cluster), and the exit status must
//! be what the launcher reports without otel-run.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn probe() -> PathBuf {
    example("signal_probe")
}

/// Files named `<prefix>.<pid>` in `dir`, by pid.
fn by_pid(dir: &Path, prefix: &str) -> Vec<(u32, PathBuf)> {
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_str()?.to_string();
            let pid = name.strip_prefix(&format!("{prefix}."))?.parse().ok()?;
            Some((pid, p))
        })
        .collect();
    out.sort();
    out
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Signals each probe received, by pid.
fn probe_signals(dir: &Path) -> Vec<Vec<String>> {
    by_pid(dir, "signals")
        .iter()
        .map(|(_, p)| lines(p))
        .collect()
}

fn wait_ready(dir: &Path, n: usize) -> Vec<String> {
    wait_for(
        Duration::from_secs(30),
        &format!("{n} probes ready"),
        || by_pid(dir, "ready").len() >= n,
    );
    by_pid(dir, "ready")
        .iter()
        .map(|(_, p)| std::fs::read_to_string(p).unwrap().trim().to_string())
        .collect()
}

/// Waits for `n` probes and returns the Slurm job id they run in.
fn wait_job(dir: &Path, n: usize) -> String {
    let ready = wait_ready(dir, n);
    ready[0]
        .split(' ')
        .nth(1)
        .expect("job id in the ready file")
        .to_string()
}

fn scancel(job: &str) {
    assert!(
        Command::new("scancel").arg(job).status().unwrap().success(),
        "scancel {job}"
    );
}

/// An endpoint that refuses connections for the whole test binary's life (the probes without
/// otel-run outlive the function that starts them).
static REFUSED: std::sync::LazyLock<RefusedPort> = std::sync::LazyLock::new(refused_port);

fn launch(dir: &Path, launcher: &[&str], with_otel_run: bool, ignore: bool) -> Child {
    let mut cmd = Command::new(launcher[0]);
    scrub(&mut cmd);
    cmd.current_dir(dir)
        .args(&launcher[1..])
        .env("PROBE_DIR", dir)
        .stdin(Stdio::null());
    if ignore {
        cmd.env("PROBE_IGNORE", "1");
    }
    if with_otel_run {
        cmd.args([bin(), "--jsonlines-path", "rank{rank}.jsonlines", "--"]);
    } else {
        // Without otel-run the probe still needs an endpoint; give it one that refuses fast.
        cmd.env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://127.0.0.1:{}/v1/traces", REFUSED.port),
        );
        cmd.env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "200");
    }
    cmd.arg(probe()).spawn().unwrap()
}

/// Every span the probes acknowledged is in the rank files; every rank file has otel-run's process
/// span with the signal recorded; rank 0's has the step root. Returns the process spans.
fn assert_spans_kept(dir: &Path, n: usize, signal: &str) -> Vec<Found> {
    let spans = read_dir_spans(dir);
    let ids: std::collections::HashSet<String> =
        spans.iter().map(|s| hex(&s.span.span_id)).collect();
    for (pid, acked) in by_pid(dir, "acked") {
        let acked = lines(&acked);
        assert!(!acked.is_empty());
        for id in &acked {
            assert!(
                ids.contains(id),
                "probe {pid}: acknowledged span {id} is not in the files"
            );
        }
    }
    let procs: Vec<Found> = spans
        .iter()
        .filter(|s| role(s) == Some("process"))
        .cloned()
        .collect();
    assert_eq!(procs.len(), n, "one process span per rank");
    for p in &procs {
        let status = p.span.status.as_ref().unwrap();
        assert_eq!(status.code, 2, "process span is ERROR: {status:?}");
        assert!(
            p.span.events.iter().any(|e| e.name == signal),
            "{signal} event on the process span: {:?}",
            p.span.events
        );
    }
    assert_eq!(
        spans.iter().filter(|s| role(s) == Some("step")).count(),
        1,
        "rank 0 wrote the step root"
    );
    procs
}

#[test]
fn scancel_delivers_sigterm_once_and_keeps_every_span() {
    slurm();
    let launcher = ["srun", "-n", "2"];
    // The launcher's own exit status without otel-run, for comparison.
    let plain = tempdir();
    let mut child = launch(plain.path(), &launcher, false, false);
    let job = wait_job(plain.path(), 2);
    scancel(&job);
    let plain_status = wait_exit(&mut child, Duration::from_secs(30), "otel-run");

    let dir = tempdir();
    let mut child = launch(dir.path(), &launcher, true, false);
    let job = wait_job(dir.path(), 2);
    scancel(&job);
    let status = wait_exit(&mut child, Duration::from_secs(30), "otel-run");
    assert_eq!(
        status.code(),
        plain_status.code(),
        "srun's exit status is what it is without otel-run"
    );
    for seen in probe_signals(dir.path()) {
        assert_eq!(
            seen.iter().filter(|s| *s == "SIGTERM").count(),
            1,
            "exactly one SIGTERM: {seen:?}"
        );
    }
    let procs = assert_spans_kept(dir.path(), 2, "SIGTERM");
    for p in &procs {
        assert_eq!(
            attr_int(&p.span.attributes, "process.exit.code"),
            Some(143),
            "the probe flushed and exited 143"
        );
        let ev = p.span.events.iter().find(|e| e.name == "SIGTERM").unwrap();
        assert_eq!(
            attr_str(&ev.attributes, "signal.sender"),
            Some("slurmstepd")
        );
        assert_eq!(
            otel_run::attr::get(&ev.attributes, "otel_run.signal.forwarded"),
            Some(&opentelemetry_proto::tonic::common::v1::any_value::Value::BoolValue(false))
        );
    }
    assert!(
        read_dir_spans(dir.path())
            .iter()
            .any(|s| s.span.name == "probe.shutdown"),
        "the probe's final flush was collected"
    );
}

#[test]
fn scancel_of_a_program_ignoring_sigterm_keeps_spans_before_the_sigkill() {
    slurm();
    let dir = tempdir();
    let mut child = launch(dir.path(), &["srun", "-n", "2"], true, true);
    let job = wait_job(dir.path(), 2);
    scancel(&job);
    // Only Slurm's SIGKILL after KillWait can end it: the probe ignores SIGTERM and otel-run's
    // grace (10 s) is longer than KillWait (5 s).
    wait_exit(&mut child, Duration::from_secs(30), "otel-run");
    for seen in probe_signals(dir.path()) {
        assert_eq!(
            seen.iter().filter(|s| *s == "SIGTERM").count(),
            1,
            "{seen:?}"
        );
    }
    let procs = assert_spans_kept(dir.path(), 2, "SIGTERM");
    for p in procs {
        // Slurm SIGKILLs otel-run and the probe together: usually otel-run dies first and the
        // provisional version (written at the SIGTERM) is what stays; when otel-run sees the
        // probe die first, it finalises it with the real cause.
        let message = &p.span.status.as_ref().unwrap().message;
        if message == "terminated by SIGKILL" {
            assert_eq!(attr_int(&p.span.attributes, "process.exit.code"), Some(137));
            continue;
        }
        assert_eq!(
            message, "terminated by SIGTERM",
            "provisional status, made durable in time"
        );
        // Made durable at the signal, long before Slurm's SIGKILL.
        let signal_time = p
            .span
            .events
            .iter()
            .find(|e| e.name == "SIGTERM")
            .unwrap()
            .time_unix_nano;
        assert!(
            p.span.end_time_unix_nano - signal_time < 1_000_000_000,
            "ended {} ns after the signal",
            p.span.end_time_unix_nano - signal_time
        );
    }
}

#[test]
fn time_limit_keeps_every_span() {
    slurm();
    let dir = tempdir();
    let mut child = launch(dir.path(), &["srun", "-n", "2", "--time=5"], true, false);
    let job = wait_job(dir.path(), 2);
    // Make the limit expire now; slurmctld enforces it at its next periodic check (≤ 30 s).
    let out = Command::new("scontrol")
        .args(["update", &format!("JobId={job}"), "EndTime=now"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_exit(&mut child, Duration::from_secs(60), "otel-run");
    for seen in probe_signals(dir.path()) {
        assert!(seen.iter().any(|s| s == "SIGTERM"), "{seen:?}");
    }
    let procs = assert_spans_kept(dir.path(), 2, "SIGTERM");
    for p in procs {
        // Slurm itself may send SIGTERM twice on a time limit; otel-run adds none.
        assert!(p
            .span
            .events
            .iter()
            .all(|e| attr_str(&e.attributes, "signal.sender") == Some("slurmstepd")));
    }
}

#[test]
fn mpi_launchers_receiving_sigterm() {
    slurm(); // for the MPI environment of the harness
    for launcher in [["mpirun.openmpi", "-n", "2"], ["mpiexec.mpich", "-n", "2"]] {
        let dir = tempdir();
        let mut child = launch(dir.path(), &launcher, true, false);
        wait_ready(dir.path(), 2);
        // SAFETY: signalling the launcher this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_exit(&mut child, Duration::from_secs(30), "otel-run");
        // mpiexec may return before its ranks have finished; they finish on their own.
        wait_for(Duration::from_secs(15), "both ranks' process spans", || {
            read_dir_spans(dir.path())
                .iter()
                .filter(|s| role(s) == Some("process"))
                .count()
                == 2
        });
        for seen in probe_signals(dir.path()) {
            assert_eq!(
                seen.iter().filter(|s| *s == "SIGTERM").count(),
                1,
                "{launcher:?}: exactly once: {seen:?}"
            );
        }
        assert_spans_kept(dir.path(), 2, "SIGTERM");
    }
}

/// otel-run around the probe, outside any launcher; returns the running otel-run.
fn plain_run(dir: &Path, extra: &[&str], ignore: bool) -> Child {
    let mut cmd = otel_run(dir);
    cmd.env("PROBE_DIR", dir)
        .args(["--jsonlines-path", "rank.jsonlines"])
        .args(extra)
        .arg("--")
        .arg(probe());
    if ignore {
        cmd.env("PROBE_IGNORE", "1");
    }
    let child = cmd.spawn().unwrap();
    wait_ready(dir, 1);
    child
}

/// Waits until the probe has recorded `n` signals (so a second signal is a separate delivery).
fn wait_probe_signals(dir: &Path, n: usize) {
    wait_for(
        Duration::from_secs(10),
        &format!("the probe to record {n} signals"),
        || probe_signals(dir).first().map_or(0, Vec::len) >= n,
    );
}

fn kill(child: &Child, sig: i32) {
    // SAFETY: signalling a process this test started.
    unsafe { libc::kill(child.id() as i32, sig) };
}

#[test]
fn targeted_kill_is_forwarded_exactly_once() {
    let dir = tempdir();
    let mut child = plain_run(dir.path(), &[], false);
    kill(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(20), "otel-run");
    assert_eq!(status.code(), Some(143));
    assert_eq!(probe_signals(dir.path()), vec![vec!["SIGTERM".to_string()]]);
    let spans = read_dir_spans(dir.path());
    let p = spans.iter().find(|s| role(s) == Some("process")).unwrap();
    assert_eq!(attr_int(&p.span.attributes, "process.exit.code"), Some(143));
    assert!(spans.iter().any(|s| s.span.name == "probe.shutdown"));
}

#[test]
fn repeated_sigterm_does_not_escalate_and_the_grace_period_ends_it() {
    let dir = tempdir();
    let mut child = plain_run(dir.path(), &["--grace-period", "2"], true);
    kill(&child, libc::SIGTERM);
    wait_probe_signals(dir.path(), 1);
    kill(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(20), "otel-run");
    // The status message below says the grace period, not the second SIGTERM, ended it.
    assert_eq!(status.code(), Some(137), "otel-run had to kill the program");
    assert_eq!(probe_signals(dir.path())[0], vec!["SIGTERM", "SIGTERM"]);
    // The provisional process span (written at the first SIGTERM) was finalised in place.
    let spans = read_dir_spans(dir.path());
    let procs: Vec<_> = spans
        .iter()
        .filter(|s| role(s) == Some("process"))
        .collect();
    assert_eq!(procs.len(), 1, "one version of the process span");
    let p = procs[0];
    assert_eq!(attr_int(&p.span.attributes, "process.exit.code"), Some(137));
    assert_eq!(
        p.span.status.as_ref().unwrap().message,
        "killed by otel-run after the 2s grace period"
    );
    assert_eq!(
        p.span.events.iter().filter(|e| e.name == "SIGTERM").count(),
        2
    );
}

#[test]
fn second_sigint_ends_the_program_at_once() {
    let dir = tempdir();
    // A 1000 s grace: only the second SIGINT can end the program within wait_exit's bound.
    let mut child = plain_run(dir.path(), &["--grace-period", "1000"], true);
    kill(&child, libc::SIGINT);
    wait_probe_signals(dir.path(), 1);
    kill(&child, libc::SIGINT);
    let status = wait_exit(&mut child, Duration::from_secs(60), "otel-run");
    assert_eq!(status.code(), Some(137));
    let spans = read_dir_spans(dir.path());
    let p = spans.iter().find(|s| role(s) == Some("process")).unwrap();
    assert_eq!(
        p.span.events.iter().filter(|e| e.name == "SIGINT").count(),
        2
    );
}

#[test]
fn forward_policy_never_and_always() {
    // never: a targeted SIGUSR1 stays with otel-run; always: it is passed on.
    for (policy, want) in [("never", 0), ("always", 1)] {
        let dir = tempdir();
        let log = dir.path().join("otel-run.log");
        let mut cmd = otel_run(dir.path());
        cmd.env("PROBE_DIR", dir.path())
            .args(["-v", "--jsonlines-path", "rank.jsonlines"])
            // `never` keeps the SIGTERM below from the program too: the grace period ends it.
            .args(["--forward-signals", policy, "--grace-period", "1", "--"])
            .arg(probe())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().unwrap();
        wait_ready(dir.path(), 1);
        kill(&child, libc::SIGUSR1);
        // otel-run logs the signal once it has decided (and, for `always`, sent it), so the
        // SIGTERM below cannot overtake a forwarded SIGUSR1.
        wait_for(
            Duration::from_secs(10),
            "otel-run to handle SIGUSR1",
            || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("received SIGUSR1")
            },
        );
        if want == 1 {
            wait_probe_signals(dir.path(), 1);
        }
        kill(&child, libc::SIGTERM);
        wait_exit(&mut child, Duration::from_secs(20), "otel-run");
        let seen = &probe_signals(dir.path())[0];
        assert_eq!(
            seen.iter().filter(|s| *s == "SIGUSR1").count(),
            want,
            "{policy}: {seen:?}"
        );
    }
}

#[test]
fn sigkill_of_otel_run_leaves_whole_lines_and_no_orphan() {
    let dir = tempdir();
    let mut child = plain_run(dir.path(), &[], false);
    // plain_run returned after the probe's first acknowledged export: spans are in the file.
    kill(&child, libc::SIGKILL);
    wait_exit(&mut child, Duration::from_secs(10), "otel-run");
    let probe_pid = by_pid(dir.path(), "ready")[0].0;
    wait_for(
        Duration::from_secs(5),
        "the program to die with otel-run",
        || {
            std::fs::read_to_string(format!("/proc/{probe_pid}/stat"))
                .map_or(true, |s| s.split(' ').nth(2) == Some("Z"))
        },
    );
    // Whole lines only (a torn last line would be skipped with a warning by the readers).
    let content = std::fs::read(dir.path().join("rank.jsonlines")).unwrap();
    let mut reader = otel_run::format::Reader::new("rank.jsonlines", &content[..]);
    let mut n = 0;
    loop {
        match reader.next_data() {
            Ok(Some(_)) => n += 1,
            Ok(None) => break,
            Err(e) => assert!(e.torn, "only a torn last line is acceptable: {e}"),
        }
    }
    assert!(
        n >= 1,
        "the probe's spans written before the kill are there"
    );
}

#[test]
fn a_flood_of_signals_keeps_the_process_span_exact_and_bounded() {
    // SIGINT starts the unwinding (provisional span written with spare room), then 40 more
    // signals arrive before a second SIGINT ends the program: the final version must still fit
    // in place, with a bounded number of events and the rest counted.
    let dir = tempdir();
    let log = dir.path().join("otel-run.log");
    let mut cmd = otel_run(dir.path());
    cmd.env("PROBE_DIR", dir.path())
        .env("PROBE_IGNORE", "1")
        .args(["-v", "--jsonlines-path", "rank.jsonlines"])
        .args(["--forward-signals", "never", "--grace-period", "1000", "--"])
        .arg(probe())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = cmd.spawn().unwrap();
    wait_ready(dir.path(), 1);
    let received = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("received SIG")
            .count()
    };
    // One at a time: the kernel merges a signal that is still pending with the next one.
    let mut sent = 0;
    let mut send = |sig: i32| {
        kill(&child, sig);
        sent += 1;
        wait_for(
            Duration::from_secs(10),
            "otel-run to log the signal",
            || received() >= sent,
        );
    };
    send(libc::SIGINT);
    for _ in 0..40 {
        send(libc::SIGUSR1);
    }
    kill(&child, libc::SIGINT);
    let status = wait_exit(&mut child, Duration::from_secs(60), "otel-run");
    assert_eq!(status.code(), Some(137));
    let spans = read_dir_spans(dir.path());
    let procs: Vec<_> = spans
        .iter()
        .filter(|s| role(s) == Some("process"))
        .collect();
    assert_eq!(procs.len(), 1, "one version of the process span");
    assert!(
        !spans.iter().any(|s| role(s) == Some("exit")),
        "the final version fitted in place"
    );
    let p = &procs[0].span;
    assert_eq!(attr_int(&p.attributes, "process.exit.code"), Some(137));
    assert_eq!(p.events.len(), 16, "bounded signal events");
    assert_eq!(
        attr_int(&p.attributes, "otel_run.signal.events_dropped"),
        Some(42 - 16)
    );
    let last_event = p.events.iter().map(|e| e.time_unix_nano).max().unwrap();
    assert!(
        p.end_time_unix_nano >= last_event,
        "the span ends at the real exit"
    );
}
