//! `otel-run report`: the page of a real 4-rank srun job (the Python SDK's spans through the sink) and of a generated 1,024-rank job opens
//! in real headless Chromium (Debian's `chromium`) with every rank a timeline row, every span name
//! in the table, no console message or page error, and nothing loaded from the network; a
//! screenshot of each goes to target/tmp/report/. Bad input fails as in merge.

mod common;
use common::*;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use otel_run::attr;
use otel_run::export::render;
use otel_run::format::LineFormat;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Debian's chromium, or OTEL_RUN_TEST_CHROMIUM; fails with how to install it.
fn chromium() -> String {
    if let Ok(c) = std::env::var("OTEL_RUN_TEST_CHROMIUM") {
        if !c.is_empty() {
            return c;
        }
    }
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("chromium"))
            .find(|c| c.is_file())
    });
    match found {
        Some(c) => c.display().to_string(),
        None => panic!(
            "no `chromium` on PATH: the report tests open the page in a real browser. Install it with \
             scripts/install-deps.sh (apt-get install chromium) or set OTEL_RUN_TEST_CHROMIUM."
        ),
    }
}

/// Where screenshots go for a person to look at.
fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs headless Chromium on `page` with a fresh profile and no background networking; returns
/// (stdout, stderr). Bounded: a browser that hangs is killed (by its pid) and the test fails.
fn browse(page: &Path, extra: &[String]) -> (String, String) {
    let profile = tempdir();
    let out_dir = tempdir();
    let (out, err) = (out_dir.path().join("stdout"), out_dir.path().join("stderr"));
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
            "--window-size=1400,1100",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("start chromium");
    let mut status = None;
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(Duration::from_secs(120), "chromium to finish", || {
            status = child.try_wait().unwrap();
            status.is_some()
        })
    }));
    if waited.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "chromium did not finish within 120 s; stderr:\n{}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    }
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(status.unwrap().success(), "chromium failed:\n{stderr}");
    (std::fs::read_to_string(&out).unwrap(), stderr)
}

/// What the page says about itself once drawn, read back from the DOM.
struct Opened {
    probe: Value,
    dom: String,
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// What the page published in `<output id="probe">` once drawn.
fn probe(dom: &str) -> Value {
    let probe = dom
        .split_once(r#"<output id="probe" hidden="">"#)
        .and_then(|(_, rest)| rest.split_once("</output>"))
        .map(|(p, _)| unescape(p))
        .unwrap_or_else(|| {
            panic!(
                "no probe output in the DOM:\n{}",
                &dom[..dom.len().min(3000)]
            )
        });
    serde_json::from_str(&probe).expect("probe is JSON")
}

/// Opens the report, checks what every report must satisfy, saves a screenshot as `shot`.
fn open_report(page: &Path, shot: &str) -> Opened {
    let html = std::fs::read_to_string(page).unwrap();
    // Nothing may be fetched: no URL at all in the page, no external resource element, and a
    // Content-Security-Policy that forbids any request even if data held one.
    for bad in ["http://", "https://", "<link", " src=", "@import", "url("] {
        assert!(!html.contains(bad), "the page contains {bad:?}");
    }
    assert!(html.contains(r#"content="default-src 'none';"#), "no CSP");

    let (dom, stderr) = browse(page, &["--dump-dom".to_string()]);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "console messages (errors?):\n{}",
        console.join("\n")
    );
    let errors = dom
        .split_once(r#"<pre id="errors""#)
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(e, _)| e.split_once('>').map(|(_, t)| t).unwrap_or(""))
        .expect("errors element in the DOM");
    assert_eq!(errors, "", "the page reported errors");
    let probe = probe(&dom);
    assert_eq!(probe["ready"], true, "{probe}");
    assert_eq!(probe["errors"], serde_json::json!([]));
    assert_eq!(probe["theme"], "light");

    let png = shots().join(shot);
    let _ = std::fs::remove_file(&png);
    browse(page, &[format!("--screenshot={}", png.display())]);
    assert!(
        std::fs::metadata(&png).is_ok_and(|m| m.len() > 10_000),
        "no screenshot at {}",
        png.display()
    );
    eprintln!("screenshot: {}", png.display());
    Opened { probe, dom }
}

/// `data-name` of every row of the "where the time went" table, from the DOM.
fn table_names(dom: &str) -> BTreeSet<String> {
    let table = dom
        .split_once(r#"<table id="names""#)
        .and_then(|(_, rest)| rest.split_once("</table>"))
        .expect("names table")
        .0;
    table
        .split(r#"<tr data-name=""#)
        .skip(1)
        .map(|r| unescape(&r[..r.find('"').unwrap()]))
        .collect()
}

/// Hovers, zooms, pans and clicks in the page through the DevTools protocol
/// (tests/support/report_drive.js under node); returns what the page showed after each step.
fn drive(page: &Path, print_shot: &Path) -> Value {
    let node = std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("node"))
                .find(|c| c.is_file())
        })
        .unwrap_or_else(|| {
            panic!("no `node` on PATH: scripts/install-deps.sh installs nodejs (it drives Chromium here)")
        });
    let out = run(Command::new(node)
        .arg(support("report_drive.js"))
        .arg(chromium())
        .arg(page)
        .arg(print_shot));
    assert!(
        out.status.success(),
        "report_drive.js failed: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report_drive.js prints JSON")
}

fn report(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = otel_run(dir);
    cmd.arg("report").args(args);
    run(&mut cmd)
}

fn report_ok(dir: &Path, args: &[&str]) {
    let out = report(dir, args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

fn ranks(probe: &Value) -> Vec<i64> {
    probe["ranks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_i64().unwrap())
        .collect()
}

/// The cells of the table row of span name `name`, as text.
fn table_row(dom: &str, name: &str) -> Vec<String> {
    let row = dom
        .split_once(&format!(r#"<tr data-name="{name}">"#))
        .and_then(|(_, rest)| rest.split_once("</tr>"))
        .unwrap_or_else(|| panic!("no table row for {name:?}"))
        .0;
    row.split("<td")
        .skip(1)
        .map(|c| {
            let c = &c[c.find('>').unwrap() + 1..c.find("</td>").unwrap()];
            // Drop the colour swatch in the name cell.
            unescape(c.rsplit('>').next().unwrap())
        })
        .collect()
}

#[test]
fn real_srun_job_opens_in_chromium() {
    slurm();
    let dir = tempdir();
    let d = dir.path();
    // The program's own spans come through otel-run's sink (the default): the real OpenTelemetry
    // Python SDK exporting OTLP/HTTP, adopted under each rank's process span.
    let mut srun = Command::new("srun");
    scrub(&mut srun);
    srun.current_dir(d)
        .args(["-n", "4", bin()])
        .args(["--jsonlines-path", "rank{rank}_*.jsonlines", "--"])
        .arg(python())
        .arg(support("py_phases.py"))
        .arg("4");
    let out = run(&mut srun);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let spans = assert_one_job_trace(d, 4, true);
    assert_eq!(
        spans.len(),
        1 + 4 * (1 + 2 + 4 * 4),
        "step, process, program spans"
    );

    report_ok(d, &["rank*.jsonlines", "-o", "report.html"]);
    let opened = open_report(&d.join("report.html"), "srun-4-ranks.png");
    let p = &opened.probe;
    assert_eq!(ranks(p), [0, 1, 2, 3], "one row per rank");
    assert_eq!(p["rows"][0], "step", "the step root on top");
    assert_eq!(p["spans"].as_u64(), Some(spans.len() as u64));
    assert_eq!(p["errorSpans"], 1, "rank 1's failed checkpoint");
    let names: BTreeSet<String> = spans.iter().map(|f| f.span.name.clone()).collect();
    assert_eq!(
        table_names(&opened.dom),
        names,
        "every span name in the table"
    );
    // The slow rank is found: compute takes rank 3 three times as long (imbalance 2.0 when sleeps
    // are exact; a loaded machine oversleeps every rank alike, which pulls it towards 1).
    let compute = table_row(&opened.dom, "compute");
    assert_eq!(compute[0], "compute");
    assert_eq!(compute[7], "3", "slowest rank in compute: {compute:?}");
    let imbalance: f64 = compute[2].parse().unwrap();
    assert!((1.4..2.1).contains(&imbalance), "{compute:?}");
    // The job facts come from the resource and the process spans.
    assert!(opened.dom.contains("<dd>slurm</dd>"), "launcher fact");
    assert!(opened.dom.contains("<dd>0 ×4</dd>"), "four ranks exited 0");
}

#[test]
fn generated_1024_rank_job_opens_in_chromium() {
    let dir = tempdir();
    let d = dir.path();
    let gen = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen-spans.py");
    let out = run(Command::new(python())
        .arg(&gen)
        .args(["60000", "1024"])
        .arg(d.join("job.jsonlines")));
    assert!(out.status.success(), "gen-spans.py: {}", text(&out.stderr));

    report_ok(d, &["job.jsonlines", "-o", "report.html"]);
    let opened = open_report(&d.join("report.html"), "generated-1024-ranks.png");
    let p = &opened.probe;
    assert_eq!(ranks(p), (0..1024).collect::<Vec<_>>(), "one row per rank");
    assert_eq!(p["spans"], 60000);
    let names: BTreeSet<String> = [
        "simulate",
        "connect",
        "place cells",
        "compile",
        "checkpoint",
        "io.write",
    ]
    .map(String::from)
    .into();
    assert_eq!(table_names(&opened.dom), names);
}

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

fn one(rank: i64, span: Span) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                attr::string("host.name", "node0"),
                attr::int("mpi.rank", rank),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![span],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Two ranks; rank 1's process span ends by SIGTERM (an event) and its solve is an ERROR; a span
/// names "</script>" to try to break out of the page.
fn killed_job(dir: &Path) {
    let proc_span = |rank: i64, signal: bool| Span {
        trace_id: vec![7; 16],
        span_id: vec![0, 0, 0, 0, 0, 0, 1, rank as u8 + 1],
        name: "process sim".into(),
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + 10 * SEC,
        attributes: vec![
            attr::string("otel_run.span", "process"),
            attr::int("process.exit.code", if signal { 143 } else { 0 }),
            attr::double("process.cpu.time.user", 9.5),
            attr::int("process.memory.max_rss", 1 << 30),
        ],
        events: if signal {
            vec![span::Event {
                time_unix_nano: T0 + 9 * SEC,
                name: "SIGTERM".into(),
                attributes: vec![attr::int("signal.number", 15)],
                ..Default::default()
            }]
        } else {
            vec![]
        },
        status: signal.then(|| Status {
            code: 2,
            message: "terminated by SIGTERM".into(),
        }),
        ..Default::default()
    };
    let child = |rank: i64, name: &str, id: u8, error: bool| Span {
        trace_id: vec![7; 16],
        span_id: vec![0, 0, 0, 0, 0, 0, 2, id],
        parent_span_id: vec![0, 0, 0, 0, 0, 0, 1, rank as u8 + 1],
        name: name.into(),
        start_time_unix_nano: T0 + SEC,
        end_time_unix_nano: T0 + (2 + 3 * rank as u64) * SEC,
        status: error.then(|| Status {
            code: 2,
            message: "diverged".into(),
        }),
        ..Default::default()
    };
    for (rank, spans) in [
        (0, vec![proc_span(0, false), child(0, "solve", 1, false)]),
        (
            1,
            vec![
                proc_span(1, true),
                child(1, "solve", 2, true),
                child(1, "</script><!--", 3, false),
            ],
        ),
    ] {
        let rs: Vec<ResourceSpans> = spans.into_iter().map(|s| one(rank, s)).collect();
        let mut buf = Vec::new();
        render(&mut buf, LineFormat::Python, &rs);
        std::fs::write(dir.join(format!("rank{rank}.jsonl")), buf).unwrap();
    }
}

#[test]
fn errors_signals_and_hostile_names_are_shown() {
    let dir = tempdir();
    let d = dir.path();
    killed_job(d);
    report_ok(d, &["rank*.jsonl", "-o", "report.html"]);
    let opened = open_report(&d.join("report.html"), "killed-job.png");
    let p = &opened.probe;
    assert_eq!(ranks(p), [0, 1]);
    assert_eq!(
        (p["errorSpans"].as_u64(), p["signalEvents"].as_u64()),
        (Some(2), Some(1)),
        "{p}"
    );
    assert_eq!(
        table_names(&opened.dom),
        ["process sim", "solve", "</script><!--"]
            .map(String::from)
            .into()
    );
    assert!(
        opened.dom.contains("<dd>0 ×1, 143 ×1</dd>"),
        "exit statuses"
    );
    // A person's interactions: hover shows the span and its error, the signal marker its event;
    // ctrl+wheel zooms, a drag pans, a click on a table row selects that phase.
    let print_shot = shots().join("killed-job-print.png");
    let driven = drive(&d.join("report.html"), &print_shot);
    let steps = &driven["steps"];
    let tip = steps["hoverSpan"]["tooltip"].as_str().unwrap_or_default();
    assert!(
        tip.starts_with("solve") && tip.contains("status: ERROR — diverged"),
        "{driven}"
    );
    let tip = steps["hoverSignal"]["tooltip"].as_str().unwrap_or_default();
    assert!(
        tip.starts_with("SIGTERM") && tip.contains("signal.number: 15"),
        "{driven}"
    );
    let view = |s: &str| steps[s]["view"].as_str().unwrap().to_string();
    assert_eq!(view("hoverSpan"), "0 – 10 s (10 s shown)");
    assert!(
        view("zoomed").ends_with(" shown)") && view("zoomed") != view("hoverSpan"),
        "{driven}"
    );
    assert!(view("panned") != view("zoomed"), "{driven}");
    assert_eq!(steps["clicked"]["selected"], "solve", "{driven}");
    // Print: black on white, no toolbar, the per-rank table unfolded.
    assert_eq!(
        steps["print"],
        serde_json::json!({"detailsOpen": true, "background": "rgb(255, 255, 255)",
                           "errorColour": "#000", "toolbar": "none"}),
    );
    assert!(std::fs::metadata(&print_shot).is_ok_and(|m| m.len() > 10_000));
    assert_eq!(
        (&driven["errors"], &driven["console"]),
        (&serde_json::json!([]), &serde_json::json!([]))
    );
    // Dark when the system is dark (Chromium's --force-dark-mode sets prefers-color-scheme).
    let page = d.join("report.html");
    let (dom, _) = browse(&page, &["--force-dark-mode".into(), "--dump-dom".into()]);
    let dark = probe(&dom);
    assert_eq!(
        (&dark["theme"], &dark["errors"]),
        (&"dark".into(), &serde_json::json!([]))
    );
    let png = shots().join("killed-job-dark.png");
    browse(
        &page,
        &[
            "--force-dark-mode".into(),
            format!("--screenshot={}", png.display()),
        ],
    );
    // solve: rank 0 1 s, rank 1 4 s: mean 2.5 s, 1.5 s lost, imbalance 1.60, sorted first.
    let first_row = opened.dom.split(r#"<tr data-name=""#).nth(1).unwrap();
    assert!(first_row.starts_with("solve\""), "{first_row}");
    assert!(first_row.contains("<td>1.5 s</td><td class=\"bad\">1.60</td>"));
}

#[test]
fn bad_input_is_file_line_reason_and_missing_input_is_usage() {
    let dir = tempdir();
    let d = dir.path();
    killed_job(d);
    std::fs::write(
        d.join("rank1.jsonl"),
        "{\"name\": \"x\"}\n{\"name\": \"y\"}\n",
    )
    .unwrap();
    let out = report(d, &["rank*.jsonl", "-o", "report.html"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("rank1.jsonl:1: "),
        "{}",
        text(&out.stderr)
    );
    assert!(!d.join("report.html").exists(), "no page from bad input");

    for missing in ["nothing_*.jsonl", "absent.jsonl"] {
        let out = report(d, &[missing, "-o", "report.html"]);
        assert_eq!(out.status.code(), Some(2), "{missing}");
        assert!(text(&out.stderr).contains(missing), "{}", text(&out.stderr));
    }
    // --skip-invalid counts the bad lines into the page's facts instead.
    report_ok(d, &["rank*.jsonl", "--skip-invalid", "-o", "report.html"]);
    let html = std::fs::read_to_string(d.join("report.html")).unwrap();
    assert!(html.contains(r#""invalid":2"#), "invalid lines counted");
}

/// The model embedded in a written page.
fn model(page: &Path) -> Value {
    let html = std::fs::read_to_string(page).unwrap();
    let json = html
        .split_once(r#"<script id="report-data" type="application/json">"#)
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .expect("model in the page")
        .0;
    serde_json::from_str(json).expect("the model is JSON")
}

#[test]
fn duplicate_copies_are_drawn_once_and_counted() {
    let dir = tempdir();
    let d = dir.path();
    killed_job(d);
    report_ok(
        d,
        &["rank0.jsonl", "rank1.jsonl", "rank0.jsonl", "-o", "r.html"],
    );
    let m = model(&d.join("r.html"));
    assert_eq!(
        (
            &m["facts"]["spans_read"],
            &m["facts"]["spans"],
            &m["facts"]["duplicates"]
        ),
        (&7.into(), &5.into(), &2.into())
    );
    let rows = m["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // Rank 0: the process span on lane 0, solve under it; rank 1: solve and the hostile name
    // overlap under the process span, so they get lanes 1 and 2.
    assert_eq!(rows[0]["z"], serde_json::json!([0, 1]));
    assert_eq!(rows[1]["z"], serde_json::json!([0, 1, 2]));
    assert_eq!(
        (&rows[1]["label"], &rows[1]["d"]),
        (
            &"rank 1".into(),
            &serde_json::json!([10_000_000, 4_000_000, 4_000_000])
        )
    );
}
