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

/// What rotel's detailed log prints for a value.
fn printed(v: &Value) -> String {
    match v {
        Value::StringValue(s) => format!("Str({s})"),
        Value::BoolValue(b) => format!("Bool({b})"),
        Value::IntValue(i) => format!("Int({i})"),
        Value::DoubleValue(d) if d.is_nan() => "Double(NaN)".into(),
        Value::DoubleValue(d) => format!("Double({d})"),
        Value::ArrayValue(a) => format!(
            "Slice({})",
            a.values
                .iter()
                .map(|v| printed(v.value.as_ref().unwrap()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::KvlistValue(l) => format!(
            "Map({})",
            l.values
                .iter()
                .map(|kv| format!(
                    "{}:{}",
                    kv.key,
                    printed(kv.value.as_ref().unwrap().value.as_ref().unwrap())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => panic!("no case uses {other:?}"),
    }
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
            .args([
                "replay",
                "--keep-timestamps",
                "--exporter-otlp-protocol",
                "grpc",
                "--exporter-otlp-endpoint",
            ])
            .arg(format!("http://127.0.0.1:{}", rotel.grpc))
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
            let want = format!("-> {}: {}", c.key, printed(&c.want));
            assert!(
                log.contains(&want),
                "{} ({}): rotel did not print {want:?}:\n{log}",
                c.what,
                file.display()
            );
        }
    }
}
