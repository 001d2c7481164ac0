//! The MPI simulation (examples/sim.rs, otel-run-sdk with feature `mpi`) under real launchers —
//! srun with OpenMPI (pmix) and MPICH (pmi2), mpirun.openmpi, mpiexec.mpich — built once against
//! each MPI by scripts/build-support.sh: one trace, collective spans written once and shared by
//! all ranks, rank-divergent collective spans that complete, and scancel mid-step.

mod common;
use common::*;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Launch {
    name: &'static str,
    launcher: Vec<String>,
    sim: String,
}

fn launches() -> Vec<Launch> {
    let openmpi = require("OTEL_RUN_TEST_SIM_OPENMPI");
    let mpich = require("OTEL_RUN_TEST_SIM_MPICH");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        Launch {
            name: "srun --mpi=pmix (OpenMPI)",
            launcher: s(&["srun", "--mpi=pmix", "-n", "4"]),
            sim: openmpi.clone(),
        },
        Launch {
            name: "srun --mpi=pmi2 (MPICH)",
            launcher: s(&["srun", "--mpi=pmi2", "-n", "4"]),
            sim: mpich.clone(),
        },
        Launch {
            name: "mpirun.openmpi",
            launcher: s(&["mpirun.openmpi", "-n", "4"]),
            sim: openmpi,
        },
        Launch {
            name: "mpiexec.mpich",
            launcher: s(&["mpiexec.mpich", "-n", "4"]),
            sim: mpich,
        },
    ]
}

fn command(dir: &Path, l: &Launch, with_otel_run: bool, args: &[&str]) -> Command {
    let mut cmd = Command::new(&l.launcher[0]);
    scrub(&mut cmd);
    cmd.current_dir(dir)
        .args(&l.launcher[1..])
        .stdin(Stdio::null());
    if with_otel_run {
        cmd.args([bin(), "--jsonlines-path", "rank{rank}_*.jsonlines", "--"]);
    }
    cmd.arg(&l.sim).args(args);
    cmd
}

fn run_bounded(mut cmd: Command, limit: Duration, what: &str) -> std::process::Output {
    spawn_to_files(&mut cmd).finish(limit, what)
}

/// stderr minus srun's notes about waiting for a busy node (the test cluster is shared).
fn without_srun_queueing(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| {
            !(l.starts_with("srun: job ")
                && (l.ends_with("queued and waiting for resources")
                    || l.ends_with("has been allocated resources")))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn rank(f: &Found) -> i64 {
    attr_int(&f.resource, "mpi.rank").expect("mpi.rank on the resource")
}

/// Follows parents within the files; the first process span met, if any.
fn process_ancestor<'a>(f: &'a Found, by_id: &HashMap<Vec<u8>, &'a Found>) -> Option<&'a Found> {
    let mut cur = f;
    for _ in 0..64 {
        if role(cur) == Some("process") {
            return Some(cur);
        }
        cur = by_id.get(&cur.span.parent_span_id)?;
    }
    None
}

#[test]
fn sim_gives_one_trace_with_collective_timesteps_under_every_launcher() {
    slurm();
    const STEPS: usize = 12;
    let args = [
        "--steps",
        "12",
        "--grid",
        "64",
        "--checkpoint-every",
        "6",
        "--out",
        "ckpt",
    ];
    for l in launches() {
        let plain_dir = tempdir();
        let plain = run_bounded(
            command(plain_dir.path(), &l, false, &args),
            Duration::from_secs(120),
            l.name,
        );
        assert_eq!(
            plain.status.code(),
            Some(0),
            "{} without otel-run: {}",
            l.name,
            text(&plain.stderr)
        );
        assert_eq!(
            without_srun_queueing(&text(&plain.stderr)),
            "",
            "{}: no error output without OTEL_* (the SDK exports nothing, silently)",
            l.name
        );
        assert!(
            text(&plain.stdout).starts_with("steps 12 grid 64 ranks 4 residual "),
            "{}: {}",
            l.name,
            text(&plain.stdout)
        );
        assert!(
            span_files(plain_dir.path()).is_empty(),
            "{}: no span file without configuration",
            l.name
        );

        let dir = tempdir();
        let out = run_bounded(
            command(dir.path(), &l, true, &args),
            Duration::from_secs(120),
            l.name,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            l.name,
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stdout),
            text(&plain.stdout),
            "{}: same result as without otel-run",
            l.name
        );
        assert!(
            !text(&out.stderr).contains("otel-run-sdk"),
            "{}: {}",
            l.name,
            text(&out.stderr)
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("ckpt")).unwrap().count(),
            2 * 4,
            "{}: checkpoints",
            l.name
        );

        let spans = assert_one_job_trace(dir.path(), 4, true);
        let by_id: HashMap<Vec<u8>, &Found> =
            spans.iter().map(|f| (f.span.span_id.clone(), f)).collect();
        let named = |n: &str| {
            spans
                .iter()
                .filter(move |f| f.span.name == n)
                .collect::<Vec<_>>()
        };
        // Collective spans: written once, by rank 0, under rank 0's process span.
        let timesteps = named("timestep");
        assert_eq!(
            timesteps.len(),
            STEPS,
            "{}: each timestep written once",
            l.name
        );
        assert_eq!(named("setup").len(), 1, "{}", l.name);
        for ts in &timesteps {
            assert_eq!(rank(ts), 0, "{}: the writer is rank 0", l.name);
            assert_eq!(attr_int(&ts.span.attributes, "mpi.size"), Some(4));
            let parent = by_id
                .get(&ts.span.parent_span_id)
                .expect("timestep parent in the files");
            assert_eq!(role(parent), Some("process"), "{}", l.name);
            // Every rank's phases hang under the one shared span id.
            for phase in ["halo", "compute", "allreduce"] {
                let ranks: BTreeSet<i64> = spans
                    .iter()
                    .filter(|f| f.span.name == phase && f.span.parent_span_id == ts.span.span_id)
                    .map(rank)
                    .collect();
                assert_eq!(
                    ranks,
                    (0..4).collect(),
                    "{}: {phase} of every rank under timestep",
                    l.name
                );
            }
        }
        let steps: BTreeSet<i64> = timesteps
            .iter()
            .map(|t| attr_int(&t.span.attributes, "sim.step").unwrap())
            .collect();
        assert_eq!(steps.len(), STEPS);
        assert_eq!(named("checkpoint").len(), 2 * 4, "{}", l.name);
        for phase in ["halo", "compute", "allreduce", "checkpoint"] {
            for f in named(phase) {
                assert!(
                    process_ancestor(f, &by_id).is_some(),
                    "{}: {phase} of rank {} reaches a process span",
                    l.name,
                    rank(f)
                );
                assert_eq!(attr_int(&f.span.attributes, "mpi.rank"), Some(rank(f)));
            }
        }
    }
}

#[test]
fn rank_divergent_collective_spans_complete_on_every_rank() {
    slurm();
    for l in launches()
        .into_iter()
        .filter(|l| l.name.starts_with("srun"))
    {
        let dir = tempdir();
        // A broadcast-based tracer would block ranks 1 and 3 in "b" waiting for ranks 0 and 2,
        // who wait in "a": the bound turns such a hang into a failure.
        let out = run_bounded(
            command(dir.path(), &l, true, &["--divergent"]),
            Duration::from_secs(60),
            l.name,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            l.name,
            text(&out.stderr)
        );
        let mut done: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
        done.sort();
        assert_eq!(
            done,
            ["rank 0 done", "rank 1 done", "rank 2 done", "rank 3 done"]
        );
        let spans = read_dir_spans(dir.path());
        let named = |n: &str| {
            spans
                .iter()
                .filter(|f| f.span.name == n)
                .collect::<Vec<_>>()
        };
        let (a, b) = (named("a"), named("b"));
        assert_eq!(
            (a.len(), b.len()),
            (1, 1),
            "{}: each collective span written once",
            l.name
        );
        let under = |n: &str, parent: &Found| -> BTreeSet<i64> {
            named(n)
                .into_iter()
                .filter(|f| f.span.parent_span_id == parent.span.span_id)
                .map(rank)
                .collect()
        };
        assert_eq!(under("work-a", a[0]), [0, 2].into(), "{}", l.name);
        assert_eq!(
            under("work-b", b[0]),
            [0, 1, 2, 3].into(),
            "{}: ranks agree on b",
            l.name
        );
    }
}

/// Reads whatever whole spans the files hold so far (a rank may be mid-write).
fn spans_so_far(dir: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    for path in span_files(dir) {
        let Ok(content) = std::fs::read(&path) else {
            continue;
        };
        let mut reader = otel_run::format::Reader::new(path.display().to_string(), &content[..]);
        while let Ok(Some((_, data))) = reader.next_data() {
            for rs in data.resource_spans {
                let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        out.push(Found {
                            file: path.clone(),
                            resource: resource.clone(),
                            scope: String::new(),
                            span,
                        });
                    }
                }
            }
        }
    }
    out
}

/// Kills the launcher if the test fails before it ends, so no job outlives the test.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn squeue_job(name: &str) -> Option<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i", "-n", name])
        .output()
        .ok()?;
    let id = text(&out.stdout).trim().to_string();
    (!id.is_empty()).then_some(id)
}

#[test]
fn scancel_mid_step_ends_open_phase_spans_as_errors() {
    killed_mid_step(false);
}

#[test]
fn time_limit_mid_step_ends_open_phase_spans_as_errors() {
    killed_mid_step(true);
}

/// scancel, or a time limit made to expire now (slurmctld enforces it at its next periodic
/// check, within 30 s), while the sim is mid-run; the same without otel-run gives Slurm's usual
/// exit status to compare with.
fn killed_mid_step(time_limit: bool) {
    slurm();
    // srun --mpi=pmix, OpenMPI. Long enough that it is mid-run when cancelled; the checkpoint
    // files show that it runs.
    let l = launches().remove(0);
    // The compute delay keeps each rank inside a phase span nearly all the time: a rank signalled
    // in the microseconds between two phases has no open span to end.
    let args = [
        "--steps",
        "100000000",
        "--grid",
        "128",
        "--checkpoint-every",
        "5",
        "--out",
        "ckpt",
        "--compute-delay-ms",
        "20",
    ];
    let mut statuses = Vec::new();
    for with_otel_run in [false, true] {
        let dir = tempdir();
        let job_name = format!(
            "otel-run-sdk-test-{}-{time_limit}-{with_otel_run}",
            std::process::id()
        );
        let mut cmd = Command::new("srun");
        scrub(&mut cmd);
        cmd.current_dir(dir.path())
            .args(["-J", &job_name, "--mpi=pmix", "-n", "4", "--time=5"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if with_otel_run {
            cmd.args([bin(), "--jsonlines-path", "rank{rank}_*.jsonlines", "--"]);
        }
        cmd.arg(&l.sim).args(args);
        let mut child = Running(cmd.spawn().unwrap());
        wait_for(Duration::from_secs(60), "the sim to run steps", || {
            std::fs::read_dir(dir.path().join("ckpt"))
                .map(|d| d.count() >= 4)
                .unwrap_or(false)
                && (!with_otel_run
                    || spans_so_far(dir.path())
                        .iter()
                        .any(|f| f.span.name == "timestep"))
        });
        let job = squeue_job(&job_name).expect("job in squeue");
        let out = if time_limit {
            Command::new("scontrol")
                .args(["update", &format!("JobId={job}"), "EndTime=now"])
                .output()
                .unwrap()
        } else {
            Command::new("scancel").arg(&job).output().unwrap()
        };
        assert!(
            out.status.success(),
            "ending job {job}: {}",
            text(&out.stderr)
        );
        let status = wait_exit(
            &mut child.0,
            Duration::from_secs(90),
            "srun after the job's end",
        );
        statuses.push(status.code());
        if !with_otel_run {
            continue;
        }
        let spans = read_dir_spans(dir.path());
        let terminated: Vec<&Found> = spans
            .iter()
            .filter(|f| role(f).is_none()) // the program's spans, not otel-run's
            .filter(|f| {
                f.span
                    .status
                    .as_ref()
                    .is_some_and(|s| s.code == 2 && s.message == "terminated by SIGTERM")
            })
            .collect();
        let ranks: BTreeSet<i64> = terminated
            .iter()
            .filter(|f| f.span.name != "timestep")
            .map(|f| rank(f))
            .collect();
        assert_eq!(
            ranks,
            (0..4).collect(),
            "every rank's open phase span ended as ERROR: {:?}",
            terminated
                .iter()
                .map(|f| (rank(f), f.span.name.as_str()))
                .collect::<Vec<_>>()
        );
        for f in &terminated {
            assert!(
                ["timestep", "halo", "compute", "allreduce", "checkpoint"]
                    .contains(&f.span.name.as_str()),
                "{}",
                f.span.name
            );
            assert!(
                f.span.events.iter().any(|e| e.name == "SIGTERM"),
                "signal event on {}",
                f.span.name
            );
        }
        assert!(
            terminated
                .iter()
                .any(|f| f.span.name == "timestep" && rank(f) == 0),
            "rank 0's open collective timestep ended as ERROR"
        );
        let procs: Vec<&Found> = spans
            .iter()
            .filter(|f| role(f) == Some("process"))
            .collect();
        assert_eq!(procs.len(), 4);
        for p in procs {
            assert_eq!(
                attr_int(&p.span.attributes, "process.exit.code"),
                Some(143),
                "the sim died of SIGTERM after flushing"
            );
        }
    }
    assert_eq!(
        statuses[1], statuses[0],
        "srun's exit status is Slurm's usual one"
    );
}
