//! `otel-run summary` on a synthetic job with known durations: every number exact, in all three
//! formats; bad input is `file:line: reason`.

mod common;
use common::*;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use otel_run::attr;
use otel_run::export::render;
use otel_run::format::LineFormat;
use std::path::Path;

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

fn span(rank: i64, name: &str, start_s: u64, dur_ms: u64, process: Option<i64>) -> ResourceSpans {
    let mut attributes = Vec::new();
    let mut status = Status::default();
    if let Some(code) = process {
        attributes.push(attr::string("otel_run.span", "process"));
        attributes.push(attr::int("process.exit.code", code));
        if code != 0 {
            status = Status {
                code: 2,
                message: format!("exited with code {code}"),
            };
        }
    }
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                attr::string("host.name", format!("node{}", rank / 2)),
                attr::int("mpi.rank", rank),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: vec![1; 16],
                span_id: vec![
                    rank as u8 + 1,
                    name.len() as u8,
                    start_s as u8,
                    0,
                    0,
                    0,
                    0,
                    1,
                ],
                name: name.into(),
                start_time_unix_nano: T0 + start_s * SEC,
                end_time_unix_nano: T0 + start_s * SEC + dur_ms * 1_000_000,
                attributes,
                status: Some(status),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Rank 0: solve 1 s + 3 s, io 0.5 s, process 10 s. Rank 1: solve 2 s, process 12 s.
/// Rank 2: solve 6 s, io 1.5 s, process 8 s exiting 3.
fn job(dir: &Path) {
    let ranks = [
        vec![
            span(0, "solve", 1, 1000, None),
            span(0, "solve", 3, 3000, None),
            span(0, "io", 7, 500, None),
            span(0, "process sim", 0, 10_000, Some(0)),
        ],
        vec![
            span(1, "solve", 1, 2000, None),
            span(1, "process sim", 0, 12_000, Some(0)),
        ],
        vec![
            span(2, "solve", 1, 6000, None),
            span(2, "io", 7, 1500, None),
            span(2, "process sim", 0, 8_000, Some(3)),
        ],
    ];
    for (r, spans) in ranks.iter().enumerate() {
        let mut buf = Vec::new();
        render(&mut buf, LineFormat::Python, spans);
        std::fs::write(dir.join(format!("rank{r}.jsonl")), buf).unwrap();
    }
}

fn summary(dir: &Path, args: &[&str]) -> String {
    let mut cmd = otel_run(dir);
    cmd.arg("summary").args(args).env("NO_COLOR", "1");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn json_numbers_are_exact() {
    let dir = tempdir();
    job(dir.path());
    let doc: serde_json::Value =
        serde_json::from_str(&summary(dir.path(), &["rank*.jsonl", "--format", "json"])).unwrap();
    let spans = doc["spans"].as_array().unwrap();
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["process sim", "solve", "io"], "by total time");
    let solve = &spans[1];
    assert_eq!(solve["count"], 4);
    assert_eq!(solve["total_ns"], 12 * SEC);
    assert_eq!(solve["mean_ns"], 3 * SEC);
    assert_eq!(solve["max_ns"], 6 * SEC);
    // per-rank totals 4 s, 2 s, 6 s: min 2, mean 4, max 6, imbalance 1.5
    assert_eq!(solve["ranks"], 3);
    assert_eq!(solve["rank_min_ns"], 2 * SEC);
    assert_eq!(solve["rank_mean_ns"], 4 * SEC);
    assert_eq!(solve["rank_max_ns"], 6 * SEC);
    assert_eq!(solve["imbalance"], 1.5);
    let io = &spans[2];
    assert_eq!(
        (
            io["count"].as_u64(),
            io["total_ns"].as_u64(),
            io["ranks"].as_u64()
        ),
        (Some(2), Some(2 * SEC), Some(2))
    );
    assert_eq!(io["imbalance"], 1.5); // 1.5 s / mean 1 s
    let ranks = doc["ranks"].as_array().unwrap();
    assert_eq!(ranks.len(), 3);
    assert_eq!(ranks[1]["wall_ns"], 12 * SEC);
    assert_eq!(ranks[1]["host"], "node0");
    assert_eq!(
        (ranks[2]["exit"].as_str(), ranks[2]["error"].as_bool()),
        (Some("3"), Some(true))
    );
    assert_eq!(doc["slowest_rank"]["rank"], 1);
    assert_eq!(doc["slowest_rank"]["wall_ns"], 12 * SEC);
    assert_eq!(doc["slowest_rank"]["vs_mean"], 1.2);
}

#[test]
fn table_is_aligned_and_plain_when_not_a_terminal() {
    let dir = tempdir();
    job(dir.path());
    let table = summary(dir.path(), &["rank*.jsonl"]);
    assert!(
        !table.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let expected = "\
span name    count    total s     mean s      max s  ranks  rank min s  rank mean s  rank max s  imbalance
process sim      3  30.000000  10.000000  12.000000      3    8.000000    10.000000   12.000000       1.20
solve            4  12.000000   3.000000   6.000000      3    2.000000     4.000000    6.000000       1.50
io               2   2.000000   1.000000   1.500000      2    0.500000     1.000000    1.500000       1.50

rank  host      wall s  exit
   0  node0  10.000000  0
   1  node0  12.000000  0
   2  node1   8.000000  3 (error)

slowest rank: 1 (12.000000 s wall, 1.20x the mean)
";
    assert_eq!(table, expected, "\n{table}");
}

#[test]
fn csv_has_one_header_and_fixed_columns() {
    let dir = tempdir();
    job(dir.path());
    let csv = summary(dir.path(), &["rank*.jsonl", "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    let columns = lines[0].split(',').count();
    assert!(
        lines.iter().all(|l| l.split(',').count() == columns),
        "{csv}"
    );
    assert_eq!(
        lines[2],
        "span,solve,4,12000000000,3000000000,6000000000,3,2000000000,4000000000,6000000000,1.5,,,,,"
    );
    assert_eq!(lines[6], "rank,,,,,,,,,,,2,node1,8000000000,3,true");
}

#[test]
fn bad_input_names_file_and_line() {
    let dir = tempdir();
    job(dir.path());
    std::fs::write(dir.path().join("rank1.jsonl"), "{\"name\": \"x\"}\n").unwrap();
    let mut cmd = otel_run(dir.path());
    cmd.args(["summary", "rank*.jsonl"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("rank1.jsonl:1: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn skip_invalid_that_leaves_nothing_fails() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("console.json"),
        "{\n    \"name\": \"op\",\n    \"context\": {}\n}\n",
    )
    .unwrap();
    let out = run(otel_run(dir.path()).args(["summary", "--skip-invalid", "console.json"]));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("skipped all 4 bad lines"), "{stderr}");
    assert!(
        stderr.contains("looks like pretty-printed JSON"),
        "{stderr}"
    );
    // An empty input is no failure: there was nothing to skip.
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let out = run(otel_run(dir.path()).args(["summary", "--skip-invalid", "empty.jsonl"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
