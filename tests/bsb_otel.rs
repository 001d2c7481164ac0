//! bsb-otel interoperability with the real bsb-otel from PyPI (8.0.2 in the test venv, 7.6.1 in a
//! venv of its own; scripts/install-deps.sh installs both):
//! - a bsb-otel program (its JSONLinesSpanExporter used directly, or `opentelemetry-instrument
//!   --traces_exporter jsonlines`) under `srun -n 4 otel-run`, with the sink and without: after
//!   `otel-run merge`, and in what `otel-run replay` delivers to rotel, the job is one trace, each
//!   program root under its rank's process span, every attribute, event, link and status intact;
//! - bsb-otel's writers and otel-run's never tear each other's lines in a shared file;
//! - the other direction: bsb-otel's `load_spans`/`replay_spans` (8.0.2 and 7.6.1) read every
//!   python-format file otel-run writes, and every time stamp in them parses with
//!   `strptime('%Y-%m-%dT%H:%M:%S.%fZ')`, what readers on Python <= 3.10 do;
//! - `summary` and `merge --rank` give per-rank rows for a bsb-otel file (rank on the spans).

mod common;
use common::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const RANKS: usize = 4;
/// Spans bsb_app.py writes per rank, and of them roots (each in a trace of its own).
const APP_SPANS: usize = 5;
const APP_ROOTS: usize = 2;

/// The python of bsb-otel 7.6.1's venv.
fn bsb7_python() -> String {
    require("OTEL_RUN_TEST_BSB7_PYTHON")
}

/// A program of the test venv (`opentelemetry-instrument`).
fn venv_bin(name: &str) -> PathBuf {
    let bin = Path::new(&python()).parent().unwrap().join(name);
    assert!(
        bin.exists(),
        "{} missing: run scripts/install-deps.sh",
        bin.display()
    );
    bin
}

/// Fails with how to get it when the venv lacks bsb-otel `version`.
fn require_bsb_otel(python: &str, version: &str) {
    let out = run(Command::new(python).args([
        "-c",
        "import importlib.metadata as m, bsb_otel.exporters, bsb_otel.replay; print(m.version('bsb-otel'))",
    ]));
    assert_eq!(
        text(&out.stdout).trim(),
        version,
        "{python} needs bsb-otel {version}: run scripts/install-deps.sh ({})",
        text(&out.stderr)
    );
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Program {
    /// bsb_app.py builds a BatchSpanProcessor around bsb-otel's JSONLinesSpanExporter.
    Direct,
    /// `opentelemetry-instrument --traces_exporter jsonlines python bsb_app.py api`.
    Instrument,
    /// `opentelemetry-instrument --traces_exporter otlp …`: the program exports to the sink, which
    /// writes its spans into the rank file in otel-run's rendering.
    InstrumentOtlp,
}

/// `srun -n ranks otel-run [--sink off] -- <program>` in `dir`, the span file template given the
/// way bsb-otel users give it (OTEL_EXPORTER_JSONLINES_PATH).
fn job(dir: &Path, program: Program, sink: &str, ranks: usize) -> Output {
    slurm();
    require_bsb_otel(&python(), "8.0.2");
    let mut cmd = Command::new("srun");
    scrub(&mut cmd);
    cmd.current_dir(dir)
        .env("OTEL_EXPORTER_JSONLINES_PATH", "job_*.jsonlines")
        .args(["-n", &ranks.to_string(), bin(), "--sink", sink, "--"]);
    let app = support("bsb_app.py");
    match program {
        Program::Direct => cmd.arg(python()).arg(app).arg("direct"),
        Program::Instrument | Program::InstrumentOtlp => {
            let exporter = if program == Program::Instrument {
                "jsonlines"
            } else {
                "otlp"
            };
            cmd.arg(venv_bin("opentelemetry-instrument"))
                .args(["--traces_exporter", exporter])
                .arg(python())
                .arg(app)
                .arg("api")
        }
    };
    let out = exit_within(&mut cmd, Duration::from_secs(180));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{program:?} sink {sink}: {}",
        text(&out.stderr)
    );
    out
}

fn read_data(path: &Path) -> Vec<ResourceSpans> {
    let file = std::fs::File::open(path).unwrap();
    let mut reader =
        otel_run::format::Reader::new(path.display().to_string(), BufReader::new(file));
    let mut out = Vec::new();
    while let Some((_, data)) = reader.next_data().unwrap_or_else(|e| panic!("{e}")) {
        out.extend(data.resource_spans);
    }
    out
}

fn files_named(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    span_files(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

/// `key=value` fields of merge's report line.
fn report(stderr: &str) -> BTreeMap<String, u64> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("otel-run merge:"))
        .unwrap_or_else(|| panic!("no report line: {stderr}"));
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// What adoption must make of a program span as its program wrote it: the job's trace, the
/// original trace id kept, a root under its rank's process span, links into the moved trace
/// following it.
fn adopted(mut span: Span, job: &[u8], process: &[u8]) -> Span {
    let original = std::mem::replace(&mut span.trace_id, job.to_vec());
    for link in &mut span.links {
        if link.trace_id == original {
            link.trace_id = job.to_vec();
        }
    }
    span.attributes.push(otel_run::attr::string(
        "otel_run.original_trace_id",
        hex(&original),
    ));
    if span.parent_span_id.is_empty() {
        span.parent_span_id = process.to_vec();
    }
    span
}

fn rank_of(f: &Found) -> i64 {
    otel_run::attr::rank(&f.resource, &f.span.attributes).expect("a rank")
}

#[test]
fn bsb_otel_programs_join_the_job_trace_in_merge_and_replay() {
    // (program, sink mode, where its spans land: a file of its own beside the rank file, or the
    // rank file itself)
    for (program, sink, own_file) in [
        (Program::Direct, "on", true),
        (Program::Direct, "off", false),
        (Program::Instrument, "on", true),
        (Program::Instrument, "off", false),
    ] {
        let case = format!("{program:?} --sink {sink}");
        let dir = tempdir();
        let d = dir.path();
        job(d, program, sink, RANKS);

        // What the program wrote, as it wrote it: every line whole, in traces of its own.
        let program_files = files_named(d, ".program.jsonlines");
        assert_eq!(
            program_files.len(),
            if own_file { RANKS } else { 0 },
            "{case}"
        );
        let all = read_dir_spans(d);
        let (own, app): (Vec<Found>, Vec<Found>) = all.into_iter().partition(|f| role(f).is_some());
        assert_eq!(app.len(), RANKS * APP_SPANS, "{case}: program spans");
        assert_eq!(
            own.len(),
            RANKS + 1,
            "{case}: a process span per rank and the step"
        );
        let job_trace = own[0].span.trace_id.clone();
        assert!(own.iter().all(|f| f.span.trace_id == job_trace), "{case}");
        assert!(app.iter().all(|f| f.span.trace_id != job_trace), "{case}");
        let traces: BTreeSet<&[u8]> = app.iter().map(|f| &f.span.trace_id[..]).collect();
        assert_eq!(
            traces.len(),
            RANKS * APP_ROOTS,
            "{case}: the program's own traces"
        );
        for f in &app {
            assert_eq!(
                f.file.to_string_lossy().ends_with(".program.jsonlines"),
                own_file,
                "{case}: {}",
                f.file.display()
            );
        }
        let process: BTreeMap<i64, Vec<u8>> = own
            .iter()
            .filter(|f| role(f) == Some("process"))
            .map(|f| (rank_of(f), f.span.span_id.clone()))
            .collect();
        assert_eq!(process.len(), RANKS, "{case}");
        let want: BTreeMap<Vec<u8>, Vec<u8>> = app
            .iter()
            .map(|f| {
                let span = adopted(f.span.clone(), &job_trace, &process[&rank_of(f)]);
                (span.span_id.clone(), span.encode_to_vec())
            })
            .collect();

        // merge: one trace, every program span exactly as adoption makes it (compared as
        // protobuf bytes: NaN attributes compare equal that way).
        let merged = d.join("merged.jsonl");
        let out = run(otel_run(d)
            .args(["merge", "job_*.jsonlines", "-o"])
            .arg(&merged));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{case}: {stderr}");
        let r = report(&stderr);
        assert_eq!(
            (r["spans_read"], r["written"], r["adopted"], r["orphans"]),
            (25, 25, 20, 0),
            "{case}: {stderr}"
        );
        let spans = read_spans(&merged);
        assert!(
            spans.iter().all(|f| f.span.trace_id == job_trace),
            "{case}: one trace"
        );
        let mut roots = 0;
        for f in spans.iter().filter(|f| role(f).is_none()) {
            let id = f.span.span_id.clone();
            assert_eq!(
                f.span.encode_to_vec(),
                want[&id],
                "{case}: span {} {:?}",
                hex(&id),
                f.span.name
            );
            if ["simulate", "finalize"].contains(&f.span.name.as_str()) {
                // The program's roots, each under its own rank's process span.
                assert_eq!(f.span.parent_span_id, process[&rank_of(f)], "{case}");
                roots += 1;
            }
        }
        assert_eq!(roots, RANKS * APP_ROOTS, "{case}");

        // replay: rotel receives every span exactly as merge wrote it (the same adoption).
        let rotel = Rotel::start();
        let out = run(otel_run(d)
            .args(["replay", "--keep-timestamps"])
            .args(endpoint_args(&rotel, "grpc"))
            .arg("job_*.jsonlines"));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{case}: {stderr}");
        assert!(
            stderr.contains("25 spans read, 25 sent")
                && stderr.contains(", 20 adopted into their rank's trace"),
            "{case}: {stderr}"
        );
        assert_received_exactly(&rotel, &[(merged.clone(), read_data(&merged))], 0);
        let log = rotel.output();
        for value in [
            "-> loss: Double(NaN)",
            "-> residual: Double(inf)",
            "-> norm: Double(-inf)",
        ] {
            assert_eq!(log.matches(value).count(), RANKS, "{case}: {value}");
        }
        assert_eq!(
            rotel.trace_ids(),
            vec![hex(&job_trace); 25],
            "{case}: one trace at rotel"
        );
    }
}

#[test]
fn bsb_otel_writers_and_otel_run_never_tear_a_shared_line() {
    // Without the sink the program appends to the rank's file, where otel-run writes its own
    // spans; three bsb-otel writers (Python text files in append mode, batches over the 8 KiB
    // buffer) write at once, and otel-run writes its provisional spans at a SIGTERM meanwhile.
    require_bsb_otel(&python(), "8.0.2");
    let dir = tempdir();
    let d = dir.path();
    let stop = d.join("stop");
    let mut cmd = otel_run(d);
    cmd.args([
        "--sink",
        "off",
        "--grace-period",
        "300",
        "--jsonlines-path",
        "shared.jsonl",
        "--",
    ])
    .arg(python())
    .arg(support("bsb_writers.py"))
    .arg("3")
    .arg(&stop);
    let spawned = spawn_to_files(&mut cmd);
    let file = d.join("shared.jsonl");
    let size = || std::fs::metadata(&file).map_or(0, |m| m.len());
    wait_for(Duration::from_secs(120), "5 MB from the writers", || {
        size() >= 5 << 20
    });
    let at_signal = size();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(spawned.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // otel-run's provisional process span lands among the writers' lines (appended after
    // `at_signal`), and the writers go on.
    let tail = || {
        use std::io::{Read, Seek};
        let mut f = std::fs::File::open(&file).unwrap();
        f.seek(std::io::SeekFrom::Start(at_signal)).unwrap();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        b
    };
    wait_for(
        Duration::from_secs(30),
        "otel-run's provisional spans",
        || memchr::memmem::find(&tail(), b"\"otel_run.span\"").is_some(),
    );
    let at_provisional = size();
    wait_for(
        Duration::from_secs(60),
        "5 MB more after the signal",
        || size() >= at_provisional + (5 << 20),
    );
    std::fs::write(&stop, "").unwrap();
    let out = spawned.finish(Duration::from_secs(120), "the program");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let written: usize = stdout.trim().parse().unwrap_or_else(|_| panic!("{stdout}"));
    // Every line whole: otel-run's reader fails the test on any bad line.
    let spans = read_spans(&file);
    let app = spans.iter().filter(|f| role(f).is_none()).count();
    assert_eq!(
        app, written,
        "every span the writers wrote, each line whole"
    );
    assert_eq!(
        spans.iter().filter(|f| role(f) == Some("process")).count(),
        1
    );
    // Python's json reads every line too.
    let out = run(Command::new(python()).arg("-c").arg(format!(
        "import json; print(sum(1 for l in open({:?}) if json.loads(l)))",
        file.display().to_string()
    )));
    assert_eq!(
        text(&out.stdout).trim(),
        spans.len().to_string(),
        "{}",
        text(&out.stderr)
    );
}

/// bsb_read.py's output for `files`, run by `python`.
fn bsb_read(python: &str, files: &[PathBuf]) -> serde_json::Value {
    let out = run(Command::new(python).arg(support("bsb_read.py")).args(files));
    assert!(
        out.status.success(),
        "{python} bsb_read.py {files:?}: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn plain(v: Option<&Value>) -> serde_json::Value {
    use serde_json::json;
    match v {
        Some(Value::StringValue(s)) => json!(s),
        Some(Value::BoolValue(b)) => json!(b),
        Some(Value::IntValue(i)) => json!(i),
        Some(Value::DoubleValue(d)) if d.is_nan() => json!("nan"),
        Some(Value::DoubleValue(d)) if d.is_infinite() => {
            json!(if *d > 0.0 { "inf" } else { "-inf" })
        }
        Some(Value::DoubleValue(d)) => json!(d),
        Some(Value::ArrayValue(a)) => a.values.iter().map(|v| plain(v.value.as_ref())).collect(),
        other => panic!("no test span has {other:?}"),
    }
}

/// What bsb_read.py must report for a span as otel-run reads it.
fn as_bsb_reads(span: &Span) -> serde_json::Value {
    let attrs = |kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
        kvs.iter()
            .map(|kv| {
                let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                (kv.key.clone(), plain(v))
            })
            .collect::<serde_json::Map<_, _>>()
    };
    let status = span.status.clone().unwrap_or_default();
    let kinds = [
        "UNSPECIFIED",
        "INTERNAL",
        "SERVER",
        "CLIENT",
        "PRODUCER",
        "CONSUMER",
    ];
    let (kind, code) = (
        kinds[span.kind as usize],
        ["UNSET", "OK", "ERROR"][status.code as usize],
    );
    let description = if status.code == 2 {
        status.message
    } else {
        String::new()
    };
    serde_json::json!({
        "trace_id": hex(&span.trace_id),
        "span_id": hex(&span.span_id),
        "parent_id": hex(&span.parent_span_id),
        "name": span.name,
        "kind": kind,
        "status": code,
        "description": description,
        "start_us": span.start_time_unix_nano / 1000,
        "end_us": span.end_time_unix_nano / 1000,
        "attributes": attrs(&span.attributes),
        "events": span.events.iter().map(|e| serde_json::json!({
            "name": e.name, "attributes": attrs(&e.attributes)
        })).collect::<Vec<_>>(),
    })
}

#[test]
fn bsb_otel_8_and_7_read_every_file_otel_run_writes() {
    let pythons = [(python(), "8.0.2"), (bsb7_python(), "7.6.1")];
    for (py, version) in &pythons {
        require_bsb_otel(py, version);
    }
    let dir = tempdir();
    let d = dir.path();
    // Rank files holding the program's spans as the sink wrote them (every attribute type, events,
    // links, statuses, in otel-run's rendering), rank files a bsb-otel program appended to
    // (--sink off), merged files of both, and a rank file otel-run-sdk wrote into.
    let on = d.join("on");
    let off = d.join("off");
    for (sub, program, sink) in [
        (&on, Program::InstrumentOtlp, "on"),
        (&off, Program::Direct, "off"),
    ] {
        std::fs::create_dir(sub).unwrap();
        job(sub, program, sink, 2);
        let out = run(otel_run(sub).args(["merge", "job_*.jsonlines", "-o", "merged.jsonl"]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    // And a rank file otel-run-sdk (the Rust program side) appended to without the sink.
    let sdk = d.join("sdk");
    std::fs::create_dir(&sdk).unwrap();
    let out = exit_within(
        otel_run(&sdk)
            .args(["--sink", "off", "--jsonlines-path", "job_*.jsonlines", "--"])
            .arg(example("sdk_child")),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut files = span_files(&on);
    files.extend(span_files(&off));
    files.extend(span_files(&sdk));
    assert_eq!(files.len(), 2 * 3 + 1, "{files:?}");
    let mut stamps = 0;
    for file in &files {
        let spans = read_spans(file);
        let want: BTreeMap<String, serde_json::Value> = spans
            .iter()
            .map(|f| (hex(&f.span.span_id), as_bsb_reads(&f.span)))
            .collect();
        let want_stamps: usize = spans.iter().map(|f| 2 + f.span.events.len()).sum();
        stamps += want_stamps;
        for (py, version) in &pythons {
            let got = bsb_read(py, std::slice::from_ref(file));
            let case = format!("bsb-otel {version}: {}", file.display());
            assert_eq!(got["version"], *version, "{case}");
            assert_eq!(got["loaded"], spans.len(), "{case}");
            assert_eq!(got["replayed"], spans.len(), "{case}");
            assert_eq!(got["time_stamps"], want_stamps, "{case}");
            let got: BTreeMap<String, serde_json::Value> = got["spans"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| (s["span_id"].as_str().unwrap().to_string(), s.clone()))
                .collect();
            assert_eq!(got, want, "{case}");
        }
    }
    // The sink-written spans include the program's NaN, infinities, events and error status.
    assert!(stamps > 2 * 5 * 2, "{stamps}");
}

#[test]
fn summary_and_merge_rank_give_per_rank_rows_for_a_bsb_otel_file() {
    // bsb-otel alone (no otel-run): mpi.rank only on the spans, none on the resource.
    slurm();
    require_bsb_otel(&python(), "8.0.2");
    let dir = tempdir();
    let d = dir.path();
    let mut cmd = Command::new("srun");
    scrub(&mut cmd);
    cmd.current_dir(d)
        .env("OTEL_EXPORTER_JSONLINES_PATH", "bsb_*.jsonlines")
        .args(["-n", &RANKS.to_string()])
        .arg(python())
        .arg(support("bsb_app.py"))
        .arg("direct");
    let out = exit_within(&mut cmd, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let spans = read_dir_spans(d);
    assert_eq!(spans.len(), RANKS * APP_SPANS);
    assert!(spans.iter().all(|f| attr(&f.resource, "mpi.rank").is_none()
        && attr(&f.span.attributes, "mpi.rank").is_some()));
    // One file holding every rank, as bsb-otel users concatenate them.
    let all = d.join("all.jsonl");
    let text_of = |p: &PathBuf| std::fs::read_to_string(p).unwrap();
    std::fs::write(&all, span_files(d).iter().map(text_of).collect::<String>()).unwrap();

    let out = run(otel_run(d).args(["summary", "--format", "json"]).arg(&all));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ranks: Vec<i64> = s["ranks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rank"].as_i64().unwrap())
        .collect();
    assert_eq!(ranks, [0, 1, 2, 3], "{s}");
    let simulate = s["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "simulate")
        .unwrap();
    assert_eq!(
        (&simulate["count"], &simulate["ranks"]),
        (&4.into(), &4.into()),
        "{s}"
    );
    let out = run(otel_run(d).arg("summary").arg(&all));
    let table = text(&out.stdout);
    let rows: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("rank "))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(rows.len(), RANKS, "{table}");

    for rank in 0..RANKS as i64 {
        let out = run(otel_run(d)
            .args(["merge", "--rank", &rank.to_string(), "--format", "otlp"])
            .arg(&all));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let spans: Vec<Span> = text(&out.stdout)
            .lines()
            .flat_map(|l| {
                otel_run::format::parse_line(l.as_bytes())
                    .unwrap()
                    .resource_spans
            })
            .flat_map(|rs| rs.scope_spans)
            .flat_map(|ss| ss.spans)
            .collect();
        assert_eq!(spans.len(), APP_SPANS, "rank {rank}");
        assert!(spans
            .iter()
            .all(|s| otel_run::attr::get_int(&s.attributes, "mpi.rank") == Some(rank)));
    }
}
