//! What real writers put in span files reads, exactly: a table of Collector-style otlp lines and
//! Python-written lines (bare NaN/Infinity, lone surrogates, integers beyond 64 bits, enum names,
//! numbers as strings, empty `{}` lists, missing optional fields, uppercase hex). Each case reads,
//! round-trips through both writers with its value intact, and `otel-run replay` delivers the
//! value to a real collector (rotel's detailed log shows it).

mod common;
use common::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use otel_run::export::render;
use otel_run::format::{parse_line, LineFormat};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// A Collector file-exporter line with one span `span_id` holding `attrs` (OTLP/JSON key-values)
/// and `extra` span fields.
fn otlp_line(span_id: &str, attrs: &str, extra: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"collector"}}}}]}},"scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{{"traceId":"{TRACE}","spanId":"{span_id}","name":"op","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000001000000000","attributes":[{attrs}]{extra}}}]}}]}}]}}"#
    )
}

/// A line as OpenTelemetry Python's `to_json(indent=None)` writes it, attributes `attrs` (a JSON
/// object body as Python's `json` writes it).
fn python_line(span_id: &str, attrs: &str) -> String {
    format!(
        r#"{{"name": "op", "context": {{"trace_id": "0x{TRACE}", "span_id": "0x{span_id}", "trace_state": "[]"}}, "kind": "SpanKind.INTERNAL", "parent_id": null, "start_time": "2023-11-14T22:13:20.000000Z", "end_time": "2023-11-14T22:13:21.000000Z", "status": {{"status_code": "UNSET"}}, "attributes": {{{attrs}}}, "events": [], "links": [], "resource": {{"attributes": {{"service.name": "py"}}, "schema_url": ""}}}}"#
    )
}

/// Values compare as OTLP holds them, NaN equal to NaN.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::DoubleValue(x), Value::DoubleValue(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Value::ArrayValue(x), Value::ArrayValue(y)) => {
            x.values.len() == y.values.len()
                && x.values
                    .iter()
                    .zip(&y.values)
                    .all(|(p, q)| same(p.value.as_ref().unwrap(), q.value.as_ref().unwrap()))
        }
        _ => a == b,
    }
}

fn only_span(data: &[ResourceSpans]) -> &Span {
    assert_eq!(data.len(), 1);
    &data[0].scope_spans[0].spans[0]
}

fn value_of<'a>(span: &'a Span, key: &str) -> &'a Value {
    attr(&span.attributes, key).unwrap_or_else(|| panic!("no attribute {key} in {span:?}"))
}

struct Case {
    what: &'static str,
    line: String,
    key: &'static str,
    want: Value,
}

fn nan() -> Value {
    Value::DoubleValue(f64::NAN)
}

fn cases() -> Vec<Case> {
    let empty_array = Value::ArrayValue(Default::default());
    let mut out = Vec::new();
    let mut id = 0u32;
    let mut next = || {
        id += 1;
        format!("{id:016x}")
    };
    for (what, spelled, want) in [
        ("collector NaN", "\"NaN\"", nan()),
        (
            "proto3 Infinity",
            "\"Infinity\"",
            Value::DoubleValue(f64::INFINITY),
        ),
        (
            "proto3 -Infinity",
            "\"-Infinity\"",
            Value::DoubleValue(f64::NEG_INFINITY),
        ),
        (
            "collector +Inf",
            "\"+Inf\"",
            Value::DoubleValue(f64::INFINITY),
        ),
        (
            "collector -Inf",
            "\"-Inf\"",
            Value::DoubleValue(f64::NEG_INFINITY),
        ),
        ("double as number", "0.25", Value::DoubleValue(0.25)),
    ] {
        out.push(Case {
            what,
            line: otlp_line(
                &next(),
                &format!(r#"{{"key":"v","value":{{"doubleValue":{spelled}}}}}"#),
                "",
            ),
            key: "v",
            want,
        });
    }
    for (what, value, want) in [
        (
            "intValue as string",
            r#"{"intValue":"-42"}"#,
            Value::IntValue(-42),
        ),
        (
            "intValue as number",
            r#"{"intValue":42}"#,
            Value::IntValue(42),
        ),
        (
            "empty arrayValue",
            r#"{"arrayValue":{}}"#,
            empty_array.clone(),
        ),
        (
            "empty kvlistValue",
            r#"{"kvlistValue":{}}"#,
            Value::KvlistValue(Default::default()),
        ),
        (
            "array holding NaN",
            r#"{"arrayValue":{"values":[{"doubleValue":"NaN"},{"intValue":"1"}]}}"#,
            Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: vec![
                    opentelemetry_proto::tonic::common::v1::AnyValue { value: Some(nan()) },
                    opentelemetry_proto::tonic::common::v1::AnyValue {
                        value: Some(Value::IntValue(1)),
                    },
                ],
            }),
        ),
    ] {
        out.push(Case {
            what,
            line: otlp_line(&next(), &format!(r#"{{"key":"v","value":{value}}}"#), ""),
            key: "v",
            want,
        });
    }
    let kv = r#"{"key":"v","value":{"stringValue":"x"}}"#;
    for (what, extra) in [
        (
            "enum names",
            r#","kind":"SPAN_KIND_SERVER","status":{"code":"STATUS_CODE_ERROR","message":"m"}"#,
        ),
        ("enum numbers", r#","kind":2,"status":{"code":2}"#),
        (
            "times as numbers",
            r#","events":[{"timeUnixNano":1700000000500000000,"name":"e"}]"#,
        ),
        ("missing optional fields", r#","events":[{}],"links":[]"#),
        (
            "uppercase hex parent",
            r#","parentSpanId":"00F067AA0BA902B7""#,
        ),
    ] {
        out.push(Case {
            what,
            line: otlp_line(&next(), kv, extra),
            key: "v",
            want: Value::StringValue("x".into()),
        });
    }
    // entityRefs without schemaUrl, on the resource.
    let line = otlp_line(&next(), kv, "").replacen(
        r#""resource":{"attributes""#,
        r#""resource":{"entityRefs":[{"type":"host","idKeys":["host.id"]}],"attributes""#,
        1,
    );
    out.push(Case {
        what: "entityRefs without schemaUrl",
        line,
        key: "v",
        want: Value::StringValue("x".into()),
    });
    // Uppercase hex ids.
    let line = otlp_line(&next(), kv, "").replace(TRACE, &TRACE.to_uppercase());
    out.push(Case {
        what: "uppercase hex ids",
        line,
        key: "v",
        want: Value::StringValue("x".into()),
    });
    for (what, attrs, key, want) in [
        ("python bare NaN", r#""loss": NaN"#, "loss", nan()),
        (
            "python bare Infinity",
            r#""r": Infinity"#,
            "r",
            Value::DoubleValue(f64::INFINITY),
        ),
        (
            "python bare -Infinity",
            r#""r": -Infinity"#,
            "r",
            Value::DoubleValue(f64::NEG_INFINITY),
        ),
        (
            "python tuple with NaN",
            r#""r": [1.5, NaN, -Infinity], "s": "NaN is a string""#,
            "r",
            Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: [1.5, f64::NAN, f64::NEG_INFINITY]
                    .into_iter()
                    .map(|d| opentelemetry_proto::tonic::common::v1::AnyValue {
                        value: Some(Value::DoubleValue(d)),
                    })
                    .collect(),
            }),
        ),
        (
            "python string NaN stays a string",
            r#""s": "NaN""#,
            "s",
            Value::StringValue("NaN".into()),
        ),
        (
            "python lone surrogate",
            r#""path": "/data/\udcff.h5""#,
            "path",
            Value::StringValue("/data/\u{fffd}.h5".into()),
        ),
        (
            "python int beyond i64",
            r#""big": 18446744073709551615"#,
            "big",
            Value::DoubleValue(18446744073709551615.0),
        ),
    ] {
        out.push(Case {
            what,
            line: python_line(&next(), attrs),
            key,
            want,
        });
    }
    out
}

#[test]
fn every_case_reads_round_trips_and_replays_with_its_value() {
    let cases = cases();
    let dir = tempdir();
    let d = dir.path();
    let mut files = Vec::new();
    let mut input = String::new();
    for c in &cases {
        let data = parse_line(c.line.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", c.what, c.line))
            .resource_spans;
        let got = value_of(only_span(&data), c.key);
        assert!(
            same(got, &c.want),
            "{}: read {got:?}, want {:?}",
            c.what,
            c.want
        );
        for format in [LineFormat::Python, LineFormat::Otlp] {
            let mut buf = Vec::new();
            render(&mut buf, format, &data);
            let back = parse_line(buf.trim_ascii())
                .unwrap_or_else(|e| panic!("{} via {format:?}: {e}\n{}", c.what, text(&buf)))
                .resource_spans;
            let got = value_of(only_span(&back), c.key);
            assert!(
                same(got, &c.want),
                "{} via {format:?}: {got:?}\n{}",
                c.what,
                text(&buf)
            );
        }
        input.push_str(&c.line);
        input.push('\n');
    }
    // The enum names and numbers, times and parents read as the proto says.
    let enums = parse_line(
        cases
            .iter()
            .find(|c| c.what == "enum names")
            .unwrap()
            .line
            .as_bytes(),
    )
    .unwrap();
    let span = only_span(&enums.resource_spans);
    assert_eq!((span.kind, span.status.as_ref().unwrap().code), (2, 2));
    let parent = parse_line(
        cases
            .iter()
            .find(|c| c.what == "uppercase hex parent")
            .unwrap()
            .line
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        only_span(&parent.resource_spans).parent_span_id,
        vec![0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
    );

    let path = d.join("real-writers.jsonl");
    std::fs::write(&path, &input).unwrap();
    files.push(path);
    // The same spans as otel-run writes them, in each format, through merge.
    for format in ["python", "otlp"] {
        let out_path = d.join(format!("merged.{format}.jsonl"));
        let out = run(otel_run(d)
            .args(["merge", "--format", format, "-o"])
            .arg(&out_path)
            .arg(&files[0]));
        assert_eq!(
            out.status.code(),
            Some(0),
            "merge {format}: {}",
            text(&out.stderr)
        );
        files.push(out_path);
    }
    let stats = run(otel_run(d).arg("summary").arg(&files[0]));
    assert_eq!(
        stats.status.code(),
        Some(0),
        "summary: {}",
        text(&stats.stderr)
    );
    let stderr = text(&stats.stderr);
    assert!(stderr.contains("1 lone surrogate escape(s)"), "{stderr}");
    assert!(
        stderr.contains("1 integer attribute value(s) beyond 64 bits"),
        "{stderr}"
    );

    for file in &files {
        let rotel = Rotel::start();
        let out = run(otel_run(d)
            .args(["replay", "--keep-timestamps"])
            .args(endpoint_args(&rotel, "grpc"))
            .arg(file));
        assert_eq!(
            out.status.code(),
            Some(0),
            "replay {}: {}",
            file.display(),
            text(&out.stderr)
        );
        rotel.wait_spans(cases.len());
        let log = rotel.output();
        for c in &cases {
            let want = format!("-> {}: {}", c.key, printed::value(Some(&c.want)));
            assert!(
                log.contains(&want),
                "{} ({}): rotel did not print {want:?}:\n{log}",
                c.what,
                file.display()
            );
        }
    }
}

/// A python line in trace `trace` with span attributes `attrs` and resource attributes `res`.
fn py_span(trace: &str, span_id: &str, parent: Option<&str>, attrs: &str, res: &str) -> String {
    let parent = parent.map_or("null".to_string(), |p| format!("\"0x{p}\""));
    format!(
        r#"{{"name": "op {span_id}", "context": {{"trace_id": "0x{trace}", "span_id": "0x{span_id}", "trace_state": "[]"}}, "kind": "SpanKind.INTERNAL", "parent_id": {parent}, "start_time": "2023-11-14T22:13:20.000000Z", "end_time": "2023-11-14T22:13:21.000000Z", "status": {{"status_code": "OK"}}, "attributes": {{{attrs}}}, "events": [{{"name": "e", "timestamp": "2023-11-14T22:13:20.500000Z", "attributes": {{"k": 1}}}}], "links": [], "resource": {{"attributes": {{{res}}}, "schema_url": ""}}}}"#
    )
}

const JOB: &str = "11111111111111111111111111111111";
const FOREIGN: &str = "22222222222222222222222222222222";

/// Rank files as `--sink off` leaves them: otel-run's process span for rank 1 in one file, the
/// program's own trace with `mpi.rank` on its spans as a string (bsb-otel) in another; and a rank
/// file whose only process span is the home of the program's rank-less spans beside it.
fn job_files(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let launcher = py_span(
        JOB,
        "00000000000000a1",
        None,
        r#""otel_run.span": "process""#,
        r#""mpi.rank": 1, "host.name": "n1", "slurm.job.id": "42""#,
    );
    let program = [
        py_span(
            FOREIGN,
            "00000000000000b1",
            None,
            r#""mpi.rank": "1", "x": NaN"#,
            r#""service.name": "app", "slurm.job.id": "42""#,
        ),
        py_span(
            FOREIGN,
            "00000000000000b2",
            Some("00000000000000b1"),
            r#""mpi.rank": "1""#,
            r#""service.name": "app", "slurm.job.id": "42""#,
        ),
    ];
    let rank2 = [
        py_span(
            JOB,
            "00000000000000a2",
            None,
            r#""otel_run.span": "process""#,
            r#""mpi.rank": 2"#,
        ),
        py_span(
            "33333333333333333333333333333333",
            "00000000000000c1",
            None,
            r#""y": 1"#,
            r#""service.name": "app""#,
        ),
    ];
    let files = [
        ("rank1.jsonl", vec![launcher]),
        ("app.jsonl", program.to_vec()),
        ("rank2.jsonl", rank2.to_vec()),
    ];
    files
        .into_iter()
        .map(|(name, lines)| {
            let p = d.join(name);
            std::fs::write(&p, lines.join("\n") + "\n").unwrap();
            p
        })
        .collect()
}

/// Many files are scanned for process spans by several threads, each a share of the inputs: a
/// rank's home is still its first process span in input order, wherever the shares split.
#[test]
fn adoption_scan_of_many_files_keeps_the_first_home_in_input_order() {
    let dir = tempdir();
    let d = dir.path();
    let rank1 = |id: &str| {
        py_span(
            JOB,
            id,
            None,
            r#""otel_run.span": "process""#,
            r#""mpi.rank": 1, "host.name": "n1", "slurm.job.id": "42""#,
        )
    };
    let program = py_span(
        FOREIGN,
        "00000000000000b1",
        None,
        r#""mpi.rank": "1""#,
        r#""service.name": "app", "slurm.job.id": "42""#,
    );
    let mut files = Vec::new();
    for i in 0..300 {
        let line = match i {
            0 => rank1("00000000000000a1"),
            // The same rank's second process span (a restarted step), in a later share.
            170 => rank1("00000000000000a9"),
            299 => program.clone(),
            _ => py_span(
                JOB,
                &format!("{:016x}", 0x1000 + i),
                Some("00000000000000a1"),
                "",
                "",
            ),
        };
        let p = d.join(format!("f{i:03}.jsonl"));
        std::fs::write(&p, line + "\n").unwrap();
        files.push(p);
    }
    for sort in ["start", "end", "none"] {
        let out = run(otel_run(d).args(["merge", "--sort", sort]).args(&files));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{sort}: {stderr}");
        assert!(stderr.contains(" adopted=1"), "{sort}: {stderr}");
        let spans = merged(&out.stdout);
        let b1 = spans.iter().find(|s| s.1 == "00000000000000b1").unwrap();
        assert_eq!(
            (b1.0.as_str(), b1.2.as_str()),
            (JOB, "00000000000000a1"),
            "{sort}"
        );
    }
}

#[test]
fn replay_adopts_foreign_traces_under_their_ranks_process_span() {
    let dir = tempdir();
    let d = dir.path();
    let files = job_files(d);
    let rotel = Rotel::start();
    let out = run(otel_run(d)
        .args(["replay", "--keep-timestamps"])
        .args(endpoint_args(&rotel, "grpc"))
        .args(&files));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("5 spans read, 5 sent")
            && stderr.contains(", 3 adopted into their rank's trace"),
        "{stderr}"
    );
    rotel.wait_spans(5);
    assert_eq!(
        rotel.trace_ids(),
        vec![JOB.to_string(); 5],
        "{}",
        rotel.output()
    );
    let log = rotel.output();
    for want in [
        format!("-> otel_run.original_trace_id: Str({FOREIGN})"),
        "-> otel_run.original_trace_id: Str(33333333333333333333333333333333)".to_string(),
        "-> x: Double(NaN)".to_string(),
    ] {
        assert!(log.contains(&want), "{want}:\n{log}");
    }
    // The program's roots hang under their rank's process span; its child keeps its parent.
    let parents: Vec<&str> = log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Parent ID      :").map(str::trim))
        .collect();
    for p in ["00000000000000a1", "00000000000000b1", "00000000000000a2"] {
        assert!(parents.contains(&p), "parent {p} in {parents:?}");
    }

    // --no-adopt sends them as they are.
    let rotel = Rotel::start();
    let out = run(otel_run(d)
        .args(["replay", "--no-adopt", "--keep-timestamps"])
        .args(endpoint_args(&rotel, "grpc"))
        .args(&files));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    rotel.wait_spans(5);
    assert_eq!(rotel.trace_ids().iter().filter(|t| *t == JOB).count(), 2);
}

/// Merged spans of `out` (merge's stdout, either format): (trace id, span id, parent id,
/// original trace id) each.
fn merged(out: &[u8]) -> Vec<(String, String, String, Option<String>)> {
    let mut spans = Vec::new();
    for line in text(out).lines() {
        let data = parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{e}: {line}"));
        for rs in data.resource_spans {
            for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                let original = attr_str(&s.attributes, "otel_run.original_trace_id");
                spans.push((
                    hex(&s.trace_id),
                    hex(&s.span_id),
                    hex(&s.parent_span_id),
                    original.map(str::to_string),
                ));
            }
        }
    }
    spans.sort();
    spans
}

/// Every span of `out` (merge's stdout, either format) alone in its resource and scope, as
/// protobuf (NaN compares equal this way), sorted.
fn exploded(out: &[u8]) -> Vec<Vec<u8>> {
    use prost::Message;
    let mut spans = Vec::new();
    for line in text(out).lines() {
        let data = parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{e}: {line}"));
        for rs in data.resource_spans {
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    let one = ResourceSpans {
                        resource: rs.resource.clone(),
                        schema_url: rs.schema_url.clone(),
                        scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                            scope: ss.scope.clone(),
                            spans: vec![span.clone()],
                            schema_url: ss.schema_url.clone(),
                        }],
                    };
                    spans.push(one.encode_to_vec());
                }
            }
        }
    }
    spans.sort();
    spans
}

#[test]
fn merge_adopts_foreign_traces_under_their_ranks_process_span() {
    let dir = tempdir();
    let d = dir.path();
    let files = job_files(d);
    let adopted = |spans: &[(String, String, String, Option<String>)]| {
        let want = [
            ("00000000000000a1", "", None),
            ("00000000000000a2", "", None),
            ("00000000000000b1", "00000000000000a1", Some(FOREIGN)),
            ("00000000000000b2", "00000000000000b1", Some(FOREIGN)),
            (
                "00000000000000c1",
                "00000000000000a2",
                Some("33333333333333333333333333333333"),
            ),
        ];
        let got: Vec<(&str, &str, Option<&str>)> = spans
            .iter()
            .map(|(t, s, p, o)| {
                assert_eq!(t, JOB, "{s} in the job's trace");
                (s.as_str(), p.as_str(), o.as_deref())
            })
            .collect();
        assert_eq!(got, want);
    };
    // Every order reads the same homes; python lines that move are re-encoded, the others
    // copied; an otlp output renders them all.
    for (sort, format) in [
        ("start", "python"),
        ("end", "python"),
        ("none", "python"),
        ("start", "otlp"),
        ("end", "chrome"),
    ] {
        let out = run(otel_run(d)
            .args(["merge", "--sort", sort, "--format", format])
            .args(&files));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{sort} {format}: {stderr}");
        assert!(stderr.contains(" adopted=3"), "{sort} {format}: {stderr}");
        if format != "chrome" {
            adopted(&merged(&out.stdout));
        }
    }
    // The spans rendered as they are read (`--sort start`; an adopted one put back together from
    // what was read) are the spans the writer renders from the lines (`--sort end`), whole: every
    // span with its resource and scope, whatever the order and line grouping.
    let rendered = |sort: &str| {
        let out = run(otel_run(d)
            .args(["merge", "--sort", sort, "--format", "otlp"])
            .args(&files));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        exploded(&out.stdout)
    };
    assert_eq!(rendered("start"), rendered("end"));

    // Every other attribute, the event and the status come through the re-encoding intact.
    let out = run(otel_run(d).arg("merge").args(&files));
    let line = text(&out.stdout)
        .lines()
        .find(|l| l.contains("0x00000000000000b1\""))
        .map(str::to_string)
        .unwrap();
    let rs = otel_run::format::python::parse_line(line.as_bytes()).unwrap();
    let span = &rs.scope_spans[0].spans[0];
    assert!(
        matches!(attr(&span.attributes, "x"), Some(Value::DoubleValue(x)) if x.is_nan()),
        "{line}"
    );
    assert_eq!(attr_str(&span.attributes, "mpi.rank"), Some("1"));
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.status.as_ref().unwrap().code, 1, "OK");

    // Spans already adopted stay as they are: merging the merged file adopts nothing more.
    let merged_file = d.join("merged.jsonl");
    std::fs::write(&merged_file, &out.stdout).unwrap();
    let again = run(otel_run(d).arg("merge").arg(&merged_file));
    assert!(
        text(&again.stderr).contains(" adopted=0"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(merged(&again.stdout), merged(&out.stdout));

    // An otlp input (the Collector's format) adopts the same way.
    let out = run(otel_run(d)
        .args(["merge", "--no-adopt", "--format", "otlp"])
        .args(&files));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(" adopted=0"), "{stderr}");
    let raw = merged(&out.stdout);
    assert_eq!(
        raw.iter().filter(|s| s.0 == JOB).count(),
        2,
        "--no-adopt: {raw:?}"
    );
    assert!(raw.iter().all(|s| s.3.is_none()));
    let otlp_file = d.join("all.otlp.jsonl");
    std::fs::write(&otlp_file, &out.stdout).unwrap();
    // One file: the spans carry (job id, rank) or, for the rank-less one, nothing — only the
    // rank files' own file homes are gone, so the rank-less span stays.
    let out = run(otel_run(d).arg("merge").arg(&otlp_file));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(" adopted=2"), "{stderr}");

    // stdin cannot be scanned ahead: the launcher's process span comes first in a rank file,
    // so its spans are adopted as they are read.
    let mut cat = Vec::new();
    for f in [&files[0], &files[1]] {
        cat.extend(std::fs::read(f).unwrap());
    }
    let mut child = otel_run(d)
        .args(["merge", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&cat).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        text(&out.stderr).contains(" adopted=2"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn summary_and_merge_rank_read_the_rank_on_spans() {
    let dir = tempdir();
    let d = dir.path();
    let files = job_files(d);
    let app = &files[1];
    let out = run(otel_run(d)
        .args(["merge", "--rank", "1", "--format", "otlp"])
        .arg(app));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let merged = text(&out.stdout);
    assert_eq!(merged.matches("\"spanId\"").count(), 2, "{merged}");
    let out = run(otel_run(d).args(["merge", "--rank", "0"]).arg(app));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 0);
    let out = run(otel_run(d).arg("summary").args(&files));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The program's spans (rank "1" on the spans) count for rank 1, beside its process span.
    let rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("rank "))
        .skip(1)
        .collect();
    assert!(
        rows.iter()
            .any(|r| r.split_whitespace().take(2).eq(["1", "n1"])),
        "{stdout}"
    );
    assert!(
        rows.iter()
            .any(|r| r.split_whitespace().next() == Some("2")),
        "{stdout}"
    );
    let op_b1 = stdout
        .lines()
        .find(|l| l.starts_with("op 00000000000000b1"))
        .unwrap();
    assert_eq!(
        op_b1.split_whitespace().nth(6),
        Some("1"),
        "one rank: {op_b1}"
    );
}

#[test]
fn skip_invalid_that_leaves_nothing_fails_and_pretty_json_gets_a_hint() {
    let dir = tempdir();
    let d = dir.path();
    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, "not json\nnor this\n").unwrap();
    let pretty = d.join("console.json");
    std::fs::write(
        &pretty,
        "{\n    \"name\": \"op\",\n    \"context\": {}\n}\n",
    )
    .unwrap();
    let merged = d.join("merged.jsonl");
    // Every reader: the same exit status and messages.
    let readers: &[&[&str]] = &[
        &["replay", "--dry-run"],
        &["summary"],
        &["merge", "--sort", "start", "-o", merged.to_str().unwrap()],
        &["merge", "--sort", "end", "-o", merged.to_str().unwrap()],
        &["merge", "--sort", "none", "-o", merged.to_str().unwrap()],
    ];
    for args in readers {
        let out = run(otel_run(d).args(*args).arg("--skip-invalid").arg(&bad));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("skipped all 2 bad lines"),
            "{args:?}: {stderr}"
        );
        assert!(!merged.exists(), "{args:?}: an output was left behind");

        let out = run(otel_run(d).args(*args).arg(&pretty));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(":1: ") && stderr.contains("looks like pretty-printed JSON"),
            "{args:?}: {stderr}"
        );
        assert!(!merged.exists(), "{args:?}: an output was left behind");
    }
}
