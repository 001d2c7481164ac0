//! The `python` line format against the real OpenTelemetry Python SDK: otel-run reads what
//! `ReadableSpan.to_json(indent=None)` writes, and writes lines with the same keys and value
//! shapes that Python's json module loads.

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

fn reference(dir: &std::path::Path) -> std::path::PathBuf {
    python_sdk_file(dir, "reference.jsonl")
}

fn json_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The JSON type of every key path, e.g. `context.trace_id: string`.
fn shape(v: &Value, prefix: &str, out: &mut std::collections::BTreeMap<String, String>) {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    out.insert(prefix.to_string(), kind.to_string());
    if let Value::Object(m) = v {
        // Attribute maps hold user keys; only their container shape is fixed.
        if prefix.ends_with("attributes") {
            return;
        }
        for (k, v) in m {
            shape(v, &format!("{prefix}.{k}"), out);
        }
    }
    if let Value::Array(a) = v {
        if let Some(first) = a.first() {
            shape(first, &format!("{prefix}[]"), out);
        }
    }
}

#[test]
fn reads_the_sdk_file_exactly() {
    let dir = tempdir();
    let path = reference(dir.path());
    let sdk = json_lines(&path);
    let spans = read_spans(&path);
    assert_eq!(spans.len(), sdk.len());
    for (found, py) in spans.iter().zip(&sdk) {
        let s = &found.span;
        assert_eq!(s.name, py["name"].as_str().unwrap());
        assert_eq!(
            format!("0x{}", hex(&s.trace_id)),
            py["context"]["trace_id"].as_str().unwrap()
        );
        assert_eq!(
            format!("0x{}", hex(&s.span_id)),
            py["context"]["span_id"].as_str().unwrap()
        );
        match py["parent_id"].as_str() {
            Some(p) => assert_eq!(format!("0x{}", hex(&s.parent_span_id)), p),
            None => assert!(s.parent_span_id.is_empty()),
        }
        let start = otel_run::format::time::parse_iso(py["start_time"].as_str().unwrap()).unwrap();
        assert_eq!(s.start_time_unix_nano, start);
        assert_eq!(
            s.attributes.len(),
            py["attributes"].as_object().unwrap().len()
        );
        assert_eq!(s.events.len(), py["events"].as_array().unwrap().len());
        assert_eq!(s.links.len(), py["links"].as_array().unwrap().len());
        assert_eq!(
            found.resource.len(),
            py["resource"]["attributes"].as_object().unwrap().len()
        );
        if py["context"]["trace_state"] != "[]" {
            assert_eq!(s.trace_state, "vendor=value");
        }
    }
}

#[test]
fn sdk_lines_survive_a_round_trip_through_otel_run() {
    // read (otel-run) → write (otel-run, python format) → compare with the SDK's JSON.
    let dir = tempdir();
    let path = reference(dir.path());
    let mut buf = Vec::new();
    for found in read_spans(&path) {
        let rs = opentelemetry_proto::tonic::trace::v1::ResourceSpans {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: found.resource.clone(),
                ..Default::default()
            }),
            scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                spans: vec![found.span.clone()],
                ..Default::default()
            }],
            schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
        };
        otel_run::export::render(&mut buf, otel_run::format::LineFormat::Python, &[rs]);
    }
    let ours: Vec<Value> = String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (mut o, p) in ours.into_iter().zip(json_lines(&path)) {
        o.as_object_mut().unwrap().remove("instrumentation_scope");
        for key in ["start_time", "end_time"] {
            let (a, b) = (o[key].as_str().unwrap(), p[key].as_str().unwrap());
            assert_eq!(
                otel_run::format::time::parse_iso(a),
                otel_run::format::time::parse_iso(b),
                "{key}"
            );
            o[key] = p[key].clone();
        }
        for (oe, pe) in o["events"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .zip(p["events"].as_array().unwrap())
        {
            oe["timestamp"] = pe["timestamp"].clone();
        }
        assert_eq!(o, p);
    }
}

#[test]
fn otel_run_lines_have_the_sdk_shape_and_load_in_python() {
    let dir = tempdir();
    let path = reference(dir.path());
    let mut sdk_shape = std::collections::BTreeMap::new();
    for line in json_lines(&path) {
        shape(&line, "", &mut sdk_shape);
    }
    // A failing program gives a span with a status description, a parent-less root span, …
    let out = run(otel_run(dir.path()).args([
        "--jsonlines-path",
        "ours.jsonl",
        "--",
        "sh",
        "-c",
        "exit 4",
    ]));
    assert_eq!(out.status.code(), Some(4));
    let ours = json_lines(&dir.path().join("ours.jsonl"));
    let mut our_shape = std::collections::BTreeMap::new();
    shape(&ours[0], "", &mut our_shape);
    for (key, kind) in &our_shape {
        if key.starts_with(".instrumentation_scope") {
            continue; // otel-run's one addition (bsb-otel's replay reads it when present)
        }
        let sdk_kind = sdk_shape
            .get(key)
            .unwrap_or_else(|| panic!("otel-run writes {key}, the SDK does not"));
        let nullable_parent = key == ".parent_id" && (kind == "null" || sdk_kind == "null");
        assert!(
            kind == sdk_kind || nullable_parent,
            "{key}: otel-run {kind}, SDK {sdk_kind}"
        );
    }
    for key in sdk_shape
        .keys()
        .filter(|k| k.matches('.').count() <= 1 && !k.contains("[]"))
    {
        assert!(
            our_shape.contains_key(key),
            "SDK writes {key}, otel-run does not"
        );
    }
    // Python's own json module, and datetime.fromisoformat for the nanosecond times.
    let check = "import json,sys,datetime\n\
                 for l in open(sys.argv[1]):\n\
                 \x20 d=json.loads(l); datetime.datetime.fromisoformat(d['start_time']); print(d['name'])";
    let out = run(Command::new(python())
        .args(["-c", check])
        .arg(dir.path().join("ours.jsonl")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "process sh");
}
