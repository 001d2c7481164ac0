//! Under real launchers — Slurm's srun (plain, --mpi=pmix, --mpi=pmi2), OpenMPI's mpirun and
//! MPICH's mpiexec — the program behaves exactly as without otel-run, and the rank files of one
//! launch form one trace: one step root from rank 0 and one process span per rank.

mod common;
use common::*;
use std::process::Command;

struct Launch {
    name: &'static str,
    launcher: Vec<String>,
    program: Vec<String>,
    needs_slurm: bool,
}

fn launches(n: u32) -> Vec<Launch> {
    let openmpi = require("OTEL_RUN_TEST_MPI_OPENMPI");
    let mpich = require("OTEL_RUN_TEST_MPI_MPICH");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let n = n.to_string();
    vec![
        Launch {
            name: "srun",
            launcher: s(&["srun", "-n", &n]),
            program: s(&["sh", "-c", "echo task $SLURM_PROCID"]),
            needs_slurm: true,
        },
        Launch {
            name: "srun --mpi=pmix (OpenMPI)",
            launcher: s(&["srun", "--mpi=pmix", "-n", &n]),
            program: vec![openmpi.clone()],
            needs_slurm: true,
        },
        Launch {
            name: "srun --mpi=pmi2 (MPICH)",
            launcher: s(&["srun", "--mpi=pmi2", "-n", &n]),
            program: vec![mpich.clone()],
            needs_slurm: true,
        },
        Launch {
            name: "mpirun.openmpi",
            launcher: s(&["mpirun.openmpi", "-n", &n]),
            program: vec![openmpi],
            needs_slurm: false,
        },
        Launch {
            name: "mpiexec.mpich",
            launcher: s(&["mpiexec.mpich", "-n", &n]),
            program: vec![mpich],
            needs_slurm: false,
        },
    ]
}

fn launch(
    dir: &std::path::Path,
    l: &Launch,
    with_otel_run: bool,
    extra: &[&str],
) -> std::process::Output {
    let mut cmd = Command::new(&l.launcher[0]);
    scrub(&mut cmd);
    cmd.current_dir(dir).args(&l.launcher[1..]);
    if with_otel_run {
        cmd.args([bin(), "--jsonlines-path", "rank{rank}_*.jsonlines", "--"]);
    }
    cmd.args(&l.program).args(extra);
    run(&mut cmd)
}

fn sorted_lines(b: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = text(b).lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn every_launcher_gives_one_trace_per_launch() {
    slurm();
    for l in launches(4) {
        let plain_dir = tempdir();
        let plain = launch(plain_dir.path(), &l, false, &[]);
        assert_eq!(
            plain.status.code(),
            Some(0),
            "{} without otel-run: {}",
            l.name,
            text(&plain.stderr)
        );

        let dir = tempdir();
        let out = launch(dir.path(), &l, true, &[]);
        assert_eq!(
            out.status.code(),
            plain.status.code(),
            "{}: {}",
            l.name,
            text(&out.stderr)
        );
        assert_eq!(
            sorted_lines(&out.stdout),
            sorted_lines(&plain.stdout),
            "{}: same output",
            l.name
        );
        assert_eq!(
            sorted_lines(&out.stdout).len(),
            4,
            "{}: {}",
            l.name,
            text(&out.stdout)
        );
        assert_eq!(
            span_files(dir.path()).len(),
            4,
            "{}: one file per rank",
            l.name
        );
        let spans = assert_one_job_trace(dir.path(), 4, true);
        let launcher = attr_str(&spans[0].resource, "otel_run.launcher")
            .unwrap()
            .to_string();
        let expected = match l.name {
            "srun" => "slurm",
            "srun --mpi=pmix (OpenMPI)" => "pmix",
            "srun --mpi=pmi2 (MPICH)" => "pmi2",
            "mpirun.openmpi" => "openmpi",
            _ => "mpich-hydra",
        };
        assert_eq!(launcher, expected, "{}", l.name);
        if l.needs_slurm {
            for s in &spans {
                assert!(
                    attr_str(&s.resource, "slurm.job.id").is_some(),
                    "{}: slurm.job.id",
                    l.name
                );
                assert_eq!(attr_str(&s.resource, "slurm.cluster.name"), Some("localci"));
            }
        }
        // Each rank's file is named by its own rank.
        for f in span_files(dir.path()) {
            let rank = f.file_name().unwrap().to_string_lossy()[4..5]
                .parse::<i64>()
                .unwrap();
            for s in read_spans(&f) {
                assert_eq!(attr_int(&s.resource, "mpi.rank"), Some(rank));
            }
        }
    }
}

#[test]
fn separate_launches_get_separate_traces() {
    slurm();
    for l in launches(2) {
        let a = tempdir();
        let b = tempdir();
        assert_eq!(
            launch(a.path(), &l, true, &[]).status.code(),
            Some(0),
            "{}",
            l.name
        );
        assert_eq!(
            launch(b.path(), &l, true, &[]).status.code(),
            Some(0),
            "{}",
            l.name
        );
        let ta = assert_one_job_trace(a.path(), 2, true)[0]
            .span
            .trace_id
            .clone();
        let tb = assert_one_job_trace(b.path(), 2, true)[0]
            .span
            .trace_id
            .clone();
        assert_ne!(ta, tb, "{}: two launches, two traces", l.name);
    }
}

#[test]
fn exit_codes_pass_through_launchers() {
    slurm();
    for l in launches(2).into_iter().filter(|l| l.name != "srun") {
        let plain_dir = tempdir();
        let plain = launch(plain_dir.path(), &l, false, &["3"]);
        let dir = tempdir();
        let out = launch(dir.path(), &l, true, &["3"]);
        assert_ne!(plain.status.code(), Some(0), "{}", l.name);
        assert_eq!(
            out.status.code(),
            plain.status.code(),
            "{}: {}",
            l.name,
            text(&out.stderr)
        );
        // Every rank exits with 3, but a launcher that sees one rank fail may SIGTERM the
        // others first (OpenMPI's does, and under load it sometimes wins the race): such a rank
        // must say so (killed by signal 15, 128 + 15), never pass for a clean exit.
        let processes: Vec<_> = read_dir_spans(dir.path())
            .into_iter()
            .filter(|s| role(s) == Some("process"))
            .collect();
        let codes: Vec<_> = processes
            .iter()
            .map(|s| {
                (
                    attr_int(&s.span.attributes, "process.exit.code"),
                    attr_int(&s.span.attributes, "process.exit.signal"),
                )
            })
            .collect();
        assert!(
            codes.contains(&(Some(3), None)),
            "{}: no rank exited with 3: {codes:?}",
            l.name
        );
        for code in &codes {
            assert!(
                matches!(code, (Some(3), None) | (Some(143), Some(15))),
                "{}: {codes:?}",
                l.name
            );
        }
    }
}

#[test]
fn outer_run_around_a_job_script_gives_one_trace() {
    slurm();
    let dir = tempdir();
    let script = format!(
        "srun -n 2 {} --jsonlines-path 'inner_{{rank}}_*.jsonlines' -- true",
        bin()
    );
    let out = run(otel_run(dir.path()).args([
        "--jsonlines-path",
        "outer.jsonlines",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let spans = read_dir_spans(dir.path());
    assert_eq!(
        spans.len(),
        4,
        "outer process, step root, 2 rank process spans"
    );
    let traces: std::collections::BTreeSet<_> =
        spans.iter().map(|s| s.span.trace_id.clone()).collect();
    assert_eq!(traces.len(), 1);
    let outer = spans
        .iter()
        .find(|s| s.file.ends_with("outer.jsonlines"))
        .unwrap();
    assert!(outer.span.parent_span_id.is_empty());
    let step = spans.iter().find(|s| role(s) == Some("step")).unwrap();
    assert_eq!(
        step.span.parent_span_id, outer.span.span_id,
        "step root under the outer span"
    );
    let ranks: Vec<_> = spans
        .iter()
        .filter(|s| role(s) == Some("process") && !s.file.ends_with("outer.jsonlines"))
        .collect();
    assert_eq!(ranks.len(), 2);
    for r in ranks {
        assert_eq!(
            r.span.parent_span_id, step.span.span_id,
            "rank under the step root"
        );
    }
}
