//! Reading and writing span lines: round trips through every writer and reader, every attribute
//! type, `file:line: reason` errors, torn last lines, and the details a reading can keep.

use super::*;
use crate::attr;
use crate::export::{render, Format};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ScopeSpans, Span, Status};

pub(crate) fn sample() -> ResourceSpans {
    let nested = Value::KvlistValue(KeyValueList {
        values: vec![attr::int("inner", 1)],
    });
    let array = Value::ArrayValue(ArrayValue {
        values: vec![
            AnyValue {
                value: Some(Value::IntValue(1)),
            },
            AnyValue {
                value: Some(Value::IntValue(2)),
            },
        ],
    });
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                attr::string("service.name", "sim"),
                attr::int("mpi.rank", 3),
            ],
            ..Default::default()
        }),
        schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "lib".into(),
                version: "1.2".into(),
                ..Default::default()
            }),
            schema_url: "https://opentelemetry.io/schemas/scope".into(),
            spans: vec![Span {
                trace_id: vec![0xab; 16],
                span_id: vec![0x01; 8],
                parent_span_id: vec![0x02; 8],
                trace_state: "vendor=value".into(),
                name: "step \"1\"".into(),
                kind: span::SpanKind::Client as i32,
                // Microseconds: the python format's resolution (see `nanoseconds_are_otlps`).
                start_time_unix_nano: 1_700_000_000_123_456_000,
                end_time_unix_nano: 1_700_000_001_000_001_000,
                attributes: vec![
                    attr::string("s", "x"),
                    attr::boolean("b", true),
                    attr::int("i", -7),
                    attr::double("d", 1.0),
                    attr::kv("a", array),
                    attr::kv("m", nested),
                ],
                events: vec![span::Event {
                    time_unix_nano: 1_700_000_000_500_000_000,
                    name: "ev".into(),
                    attributes: vec![attr::int("n", 1)],
                    dropped_attributes_count: 0,
                }],
                links: vec![span::Link {
                    trace_id: vec![0xcd; 16],
                    span_id: vec![0x03; 8],
                    trace_state: String::new(),
                    attributes: vec![attr::string("why", "x")],
                    dropped_attributes_count: 0,
                    flags: 0,
                }],
                status: Some(Status {
                    code: 2,
                    message: "boom".into(),
                }),
                ..Default::default()
            }],
        }],
    }
}

#[test]
fn both_formats_round_trip_losslessly() {
    for format in [LineFormat::Python, LineFormat::Otlp] {
        let mut buf = Vec::new();
        render(&mut buf, format, &[sample()]);
        assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 1);
        let back = parse_line(buf.trim_ascii()).unwrap();
        assert_eq!(
            back.resource_spans,
            vec![sample()],
            "{format:?}: {}",
            String::from_utf8_lossy(&buf)
        );
    }
}

/// The python format writes times as OpenTelemetry Python does (6 digits, `Z`, truncated); only
/// the otlp format keeps nanoseconds.
#[test]
fn nanoseconds_are_otlps() {
    let mut rs = sample();
    rs.scope_spans[0].spans[0].start_time_unix_nano = 1_700_000_000_123_456_789;
    let mut buf = Vec::new();
    render(&mut buf, LineFormat::Python, &[rs.clone()]);
    let text = String::from_utf8(buf.clone()).unwrap();
    assert!(
        text.contains(
            r#""start_time":"2023-11-14T22:13:20.123456Z","end_time":"2023-11-14T22:13:21.000001Z""#
        ),
        "{text}"
    );
    let back = parse_line(buf.trim_ascii()).unwrap();
    assert_eq!(
        back.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano,
        1_700_000_000_123_456_000
    );
    let mut buf = Vec::new();
    render(&mut buf, LineFormat::Otlp, &[rs.clone()]);
    assert_eq!(
        parse_line(buf.trim_ascii()).unwrap().resource_spans,
        vec![rs]
    );
}

#[test]
fn reader_numbers_lines_and_flags_torn_last_line() {
    let mut good = Vec::new();
    render(&mut good, LineFormat::Python, &[sample()]);
    let mut input = good.clone();
    input.extend_from_slice(b"\n");
    input.extend_from_slice(&good);
    input.extend_from_slice(&good[..good.len() / 2]);
    let mut r = Reader::new("f.jsonl", &input[..]);
    assert_eq!(r.next_data().unwrap().unwrap().0, 1);
    assert_eq!(r.next_data().unwrap().unwrap().0, 3);
    let err = r.next_data().unwrap_err();
    assert!(err.torn && err.line == 4, "{err}");
    assert!(
        err.to_string().starts_with("f.jsonl:4: torn last line"),
        "{err}"
    );
    assert_eq!(r.next_data().unwrap(), None);
}

#[test]
fn reserved_spans_are_rewritten_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.jsonl");
    let mut f = SpanFile::open(&path, LineFormat::Python, false).unwrap();
    f.append(&[sample()]).unwrap();
    let r = f.append_reserved(&[sample()], 100).unwrap();
    f.append(&[sample()]).unwrap();
    let mut changed = sample();
    changed.scope_spans[0].spans[0].name = "a longer name than before".into();
    assert!(f.rewrite(&r, &[changed.clone()]).unwrap());
    let content = std::fs::read(&path).unwrap();
    let mut reader = Reader::new("f", &content[..]);
    let names: Vec<String> = std::iter::from_fn(|| reader.next_data().unwrap())
        .map(|(_, d)| d.resource_spans[0].scope_spans[0].spans[0].name.clone())
        .collect();
    assert_eq!(
        names,
        ["step \"1\"", "a longer name than before", "step \"1\""]
    );
    changed.scope_spans[0].spans[0].name = "x".repeat(500);
    assert!(
        !f.rewrite(&r, &[changed]).unwrap(),
        "too long: refused, file untouched"
    );
}

#[test]
fn every_detail_reads_the_same_span() {
    let mut line = Vec::new();
    render(&mut line, LineFormat::Python, &[sample()]);
    let full = Reader::new("f", &line[..]).next_data().unwrap().unwrap().1;
    assert_eq!(full.resource_spans, vec![sample()]);
    let mut shared = Reader::new("f", &line[..]).shared_resources();
    let mut bare = shared.next_data().unwrap().unwrap().1;
    let resource = shared.shared_resource().unwrap().clone();
    assert_eq!(bare.resource_spans[0].resource, None);
    bare.resource_spans[0].resource = Some(resource.resource.clone());
    bare.resource_spans[0].schema_url = resource.schema_url.clone();
    assert_eq!(bare, full);
    // A sketch: ids, parent, times, kind and status code; the role attribute alone.
    let mut with_role = sample();
    let span = &mut with_role.scope_spans[0].spans[0];
    span.attributes
        .push(attr::string(crate::semconv::SPAN_ROLE, "process"));
    let mut line = Vec::new();
    render(&mut line, LineFormat::Python, &[with_role.clone()]);
    let mut sketches = Reader::new("f", &line[..]).sketches();
    let sketch = sketches.next_data().unwrap().unwrap().1;
    assert_eq!(
        sketches.shared_resource().unwrap().resource,
        resource.resource
    );
    let got = &sketch.resource_spans[0].scope_spans[0].spans[0];
    let want = &with_role.scope_spans[0].spans[0];
    assert_eq!(
        (&got.trace_id, &got.span_id, &got.parent_span_id, got.kind),
        (
            &want.trace_id,
            &want.span_id,
            &want.parent_span_id,
            want.kind
        )
    );
    assert_eq!(
        (got.start_time_unix_nano, got.end_time_unix_nano),
        (want.start_time_unix_nano, want.end_time_unix_nano)
    );
    assert_eq!(got.status.as_ref().unwrap().code, 2);
    assert_eq!(
        got.attributes,
        [attr::string(crate::semconv::SPAN_ROLE, "process")]
    );
    assert_eq!(got.events.len(), 1);
    assert_eq!(got.links.len(), 1);
    assert!(got.name.is_empty() && got.trace_state.is_empty());
}

/// A bad line is refused with the same reason whatever the reading keeps.
#[test]
fn every_detail_reports_the_same_error() {
    let good = r#"{"name":"b","context":{"trace_id":"0x0af7651916cd43dd8448eb211c80319c","span_id":"0x00f067aa0ba902b7"},"start_time":"2024-01-01T00:00:00Z","end_time":"2024-01-01T00:00:00Z"}"#;
    let with = |from: &str, to: &str| {
        let line = good.replacen(from, to, 1);
        assert_ne!(line, good);
        line
    };
    let end = r#"00:00:00Z"}"#;
    let cases = [
        (with(r#""name":"b","#, ""), "missing field `name`"),
        (with(r#""b""#, "5"), "invalid type"),
        (with("0x0af7", "0xzzf7"), "context.trace_id"),
        (
            with("0x00f067aa0ba902b7", "0x0000000000000000"),
            "context.span_id",
        ),
        (
            with("2024-01-01T00:00:00Z", "2024-02-30T00:00:00Z"),
            "start_time: invalid",
        ),
        (
            with(end, r#"00:00:00Z","kind":"SpanKind.WEIRD"}"#),
            "unknown span kind",
        ),
        (
            with(end, r#"00:00:00Z","status":{"status_code":"MAYBE"}}"#),
            "unknown status_code",
        ),
        (with(end, r#"00:00:00Z","parent_id":"0x1"}"#), "parent_id"),
        (
            with(end, r#"00:00:00Z","attributes":5}"#),
            "expected an object of attributes",
        ),
        (
            with(end, r#"00:00:00Z","events":[{"name":"e"}]}"#),
            "missing field `timestamp`",
        ),
        (
            with(
                end,
                r#"00:00:00Z","events":[{"name":"e","timestamp":"x"}]}"#,
            ),
            "events[].timestamp",
        ),
        (
            with(
                end,
                r#"00:00:00Z","links":[{"context":{"trace_id":"0x1","span_id":"0x1"}}]}"#,
            ),
            "links[].context.trace_id",
        ),
        (
            with(end, r#"00:00:00Z","resource":{"attributes":5}}"#),
            "resource: invalid type",
        ),
        (
            with(end, r#"00:00:00Z","instrumentation_scope":{"name":5}}"#),
            "invalid type",
        ),
        (
            with(
                r#""start_time":"2024-01-01T00:00:00Z""#,
                r#""start_time":null"#,
            ),
            "start_time is missing",
        ),
        (with(end, "00:00:00Z\"}x"), "trailing characters"),
        ("[1,2]".to_string(), "invalid type"),
        ("{}".to_string(), "missing field"),
    ];
    for (line, want) in &cases {
        let mut reasons = Vec::new();
        for detail in [Detail::Full, Detail::SharedResource, Detail::Sketch] {
            let err = parse(line.as_bytes(), detail).unwrap_err();
            assert!(err.contains(want), "{detail:?} {line}: got {err}");
            reasons.push(err);
        }
        assert!(reasons.iter().all(|r| *r == reasons[0]), "{reasons:?}");
    }
    let err = parse(b"{\"name\":\"\xff\"}", Detail::Sketch).unwrap_err();
    assert!(err.starts_with("not UTF-8"), "{err}");
}

#[test]
fn python_layouts_escapes_and_nulls_read_alike() {
    let line = |trace: &str, rank: u32| {
        format!(
            r#"{{"name":"x","context":{{"trace_id":"{trace}","span_id":"0x0000000000000001"}},"kind":"SpanKind.\u0053ERVER","start_time":"2024-01-01T00:00:00Z","end_time":"2024-01-01T00:00:01Z","resource":{{"attributes":{{"mpi.rank":{rank}}},"schema_url":"s"}}}}"#
        )
    };
    let plain = parse_line(line("0x0af7651916cd43dd8448eb211c80319c", 0).as_bytes()).unwrap();
    let escaped =
        parse_line(line("\\u0030x0af7651916cd43dd8448eb211c80319c", 0).as_bytes()).unwrap();
    assert_eq!(plain, escaped);
    let span = &plain.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        span.kind,
        opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32
    );
    // The resource cache hands back each line's own resource.
    for rank in [1, 0, 1] {
        let data = parse_line(line("0x0af7651916cd43dd8448eb211c80319c", rank).as_bytes()).unwrap();
        let rs = &data.resource_spans[0];
        let attrs = &rs.resource.as_ref().unwrap().attributes;
        assert_eq!(attr::get_int(attrs, "mpi.rank"), Some(rank as i64));
        assert_eq!(rs.schema_url, "s");
    }
    // Python's own layout (", " and ": "), nulls everywhere they are allowed.
    let python = r#"{"name": "a", "context": {"trace_id": "0x0af7651916cd43dd8448eb211c80319c", "span_id": "0x00f067aa0ba902b7", "trace_state": "['{key=a, value=1}']"}, "kind": "SpanKind.SERVER", "parent_id": null, "start_time": "2024-01-01T00:00:00.000001Z", "end_time": "2024-01-01T00:00:01+02:00", "status": {"status_code": "ERROR", "description": "boom"}, "attributes": {"xs": [1, 2.5, "s", true, null, [], {}], "n": null}, "events": [{"name": "e", "timestamp": "2024-01-01T00:00:00.5Z", "attributes": {}}], "links": [], "resource": {"attributes": {"service.name": "x", "nested": {"a": [1, {"b": "}{"}]}}, "schema_url": "https://s"}}"#;
    let rs = parse_line(python.as_bytes())
        .unwrap()
        .resource_spans
        .remove(0);
    let span = &rs.scope_spans[0].spans[0];
    assert_eq!(span.trace_state, "a=1");
    assert_eq!(span.status.as_ref().unwrap().message, "boom");
    assert_eq!(span.end_time_unix_nano, 1_704_060_001_000_000_000);
    assert_eq!(span.attributes.len(), 2);
    let nulls = r#"{"name":"c","context":{"trace_id":"0x0af7651916cd43dd8448eb211c80319c","span_id":"0x00f067aa0ba902b7","trace_state":null},"kind":null,"parent_id":null,"start_time":"2024-01-01T00:00:00Z","end_time":"2024-01-01T00:00:00Z","status":null,"attributes":null,"events":null,"links":null,"resource":null,"instrumentation_scope":null}"#;
    for detail in [Detail::Full, Detail::SharedResource, Detail::Sketch] {
        parse(python.as_bytes(), detail).unwrap();
        parse(nulls.as_bytes(), detail).unwrap();
    }
}

#[test]
fn every_attribute_type_round_trips() {
    let mut rs = sample();
    let span = &mut rs.scope_spans[0].spans[0];
    for (k, v) in [
        ("neg", Value::IntValue(i64::MIN)),
        ("max", Value::IntValue(i64::MAX)),
        ("tiny", Value::DoubleValue(5e-324)),
        ("third", Value::DoubleValue(1.0 / 3.0)),
        ("big", Value::DoubleValue(1.797_693_134_862_315_7e308)),
        (
            "unicode",
            Value::StringValue("é✓ 𝄞 \u{7f} \"q\" \\ \n".into()),
        ),
        ("empty", Value::StringValue(String::new())),
        ("f", Value::BoolValue(false)),
    ] {
        span.attributes.push(attr::kv(k, v));
    }
    for format in [LineFormat::Python, LineFormat::Otlp] {
        let mut buf = Vec::new();
        render(&mut buf, format, &[rs.clone()]);
        let back = parse_line(buf.trim_ascii()).unwrap();
        assert_eq!(back.resource_spans, vec![rs.clone()], "{format:?}");
    }
    // What python attributes cannot hold: bytes as base64 (as Python's base64.b64encode writes);
    // non-finite doubles as Python's json writes them.
    let mut odd = sample();
    odd.scope_spans[0].spans[0].attributes = vec![
        attr::kv("b0", Value::BytesValue(vec![])),
        attr::kv("b1", Value::BytesValue(b"f".to_vec())),
        attr::kv("b2", Value::BytesValue(b"fo".to_vec())),
        attr::kv("b6", Value::BytesValue(b"foobar".to_vec())),
        attr::double("nan", f64::NAN),
        attr::double("inf", f64::INFINITY),
    ];
    let mut buf = Vec::new();
    render(&mut buf, Format::Python, &[odd]);
    let text = String::from_utf8(buf).unwrap();
    assert!(
        text.contains(r#""attributes":{"b0":"","b1":"Zg==","b2":"Zm8=","b6":"Zm9vYmFy","nan":NaN,"inf":Infinity}"#),
        "{text}"
    );
}

#[test]
fn bad_complete_line_is_not_torn() {
    let mut r = Reader::new("f", &b"{not json}\n"[..]);
    let err = r.next_data().unwrap_err();
    assert!(!err.torn);
    assert!(err.to_string().starts_with("f:1: "), "{err}");
}

#[test]
fn span_files_are_never_opened_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious\n").unwrap();
    let path = dir.path().join("f.jsonl");
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    for fresh in [false, true] {
        let err = SpanFile::open(&path, LineFormat::Python, fresh)
            .err()
            .expect("a symlink is refused");
        assert!(err.to_string().contains("f.jsonl"), "{err:#}");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    // A name made up from a random `*` must be new.
    let existing = dir.path().join("existing.jsonl");
    std::fs::write(&existing, b"").unwrap();
    assert!(SpanFile::open(&existing, LineFormat::Python, true).is_err());
    assert!(SpanFile::open(&existing, LineFormat::Python, false).is_ok());
}

#[test]
fn the_rewrite_uses_the_kept_descriptor_not_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.jsonl");
    let victim = dir.path().join("victim");
    let precious = vec![b'v'; 4096];
    std::fs::write(&victim, &precious).unwrap();
    let mut f = SpanFile::open(&path, LineFormat::Python, true).unwrap();
    let r = f.append_reserved(&[sample()], 100).unwrap();
    // Another user renames the file away and plants a symlink to a victim at its name.
    let moved = dir.path().join("moved.jsonl");
    std::fs::rename(&path, &moved).unwrap();
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let mut changed = sample();
    changed.scope_spans[0].spans[0].name = "final".into();
    assert!(f.rewrite(&r, &[changed]).unwrap());
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        precious,
        "victim untouched"
    );
    let content = std::fs::read(&moved).unwrap();
    let mut reader = Reader::new("f", &content[..]);
    let (_, data) = reader.next_data().unwrap().unwrap();
    assert_eq!(data.resource_spans[0].scope_spans[0].spans[0].name, "final");
    // Appends after the rewrite still go to the end (O_APPEND is back on).
    f.append(&[sample()]).unwrap();
    let content = std::fs::read(&moved).unwrap();
    let mut reader = Reader::new("f", &content[..]);
    assert!(reader.next_data().unwrap().is_some());
    assert!(reader.next_data().unwrap().is_some());
    assert_eq!(reader.next_data().unwrap(), None);
    assert!(!f.failed());
}

#[test]
fn a_large_batch_is_written_in_chunks_of_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.jsonl");
    let mut f = SpanFile::open(&path, LineFormat::Python, false).unwrap();
    let mut rs = sample();
    let span = rs.scope_spans[0].spans[0].clone();
    rs.scope_spans[0].spans = vec![span; 5000];
    // A large resource, repeated on every python line.
    rs.resource
        .as_mut()
        .unwrap()
        .attributes
        .push(crate::attr::string("big", "x".repeat(2000)));
    f.append(&[rs]).unwrap();
    let content = std::fs::read(&path).unwrap();
    let mut reader = Reader::new("f", &content[..]);
    let mut n = 0;
    while reader.next_data().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 5000);
}

#[test]
fn overlong_lines_are_errors_and_skipped_without_holding_them() {
    let mut input = Vec::new();
    input.extend_from_slice(b"short\n");
    input.extend(std::iter::repeat_n(b'x', 10_000));
    input.extend_from_slice(b"\nnext\n");
    input.extend(std::iter::repeat_n(0u8, 10_000));
    let reader = std::io::BufReader::with_capacity(64, &input[..]);
    let mut lines = Lines::new("f", reader).with_max_line(1000);
    let text = |l: &mut Lines<_>| l.next_line(|line| line.text.to_vec());
    assert_eq!(text(&mut lines).unwrap().unwrap(), b"short");
    let err = text(&mut lines).unwrap_err();
    assert_eq!(err.to_string(), "f:2: line longer than 1000 bytes");
    assert!(!err.torn);
    assert_eq!(text(&mut lines).unwrap().unwrap(), b"next");
    let err = text(&mut lines).unwrap_err();
    assert_eq!(err.line, 4);
    assert_eq!(text(&mut lines).unwrap(), None);
}

#[test]
fn garbage_without_a_newline_is_not_a_torn_line() {
    let mut r = Reader::new("f", &b"\x00\x01garbage"[..]);
    let err = r.next_data().unwrap_err();
    assert!(!err.torn, "{err}");
    let mut r = Reader::new("f", &b"{\"name\": \"cut"[..]);
    assert!(r.next_data().unwrap_err().torn);
}

/// The scanner (the fast path for plain python lines) reads exactly what serde reads, in every
/// detail, and leaves everything unusual to serde — so results and error messages are serde's.
#[test]
fn the_scanner_reads_what_serde_reads() {
    use crate::format::python::read::scanner_agrees;
    let agrees = |line: &str| scanner_agrees(line).unwrap_or_else(|e| panic!("{e}"));
    // otel-run's own writer, with and without escapes.
    let mut written = Vec::new();
    render(&mut written, LineFormat::Python, &[sample()]);
    let mut plain = sample();
    plain.scope_spans[0].spans[0].name = "step 1".into();
    render(&mut written, LineFormat::Python, &[plain]);
    let written = String::from_utf8(written).unwrap();
    let taken: Vec<bool> = written.lines().map(agrees).collect();
    assert_eq!(
        taken,
        [false, true],
        "the escaped name goes to serde, the plain line not"
    );

    // Python's layout, with a resource seen before, a new one, and a nested one.
    let line = |attrs: &str, resource: &str| {
        format!(
            r#"{{"name": "simulate", "context": {{"trace_id": "0x0af7651916cd43dd8448eb211c80319c", "span_id": "0x00f067aa0ba902b7", "trace_state": "[]"}}, "kind": "SpanKind.INTERNAL", "parent_id": "0x0000000000000001", "start_time": "2024-01-01T00:00:00.000001Z", "end_time": "2024-01-01T00:00:01.5Z", "status": {{"status_code": "UNSET"}}, "attributes": {{{attrs}}}, "events": [{{"name": "e", "timestamp": "2024-01-01T00:00:00.5Z", "attributes": {{"k": 1}}}}], "links": [{{"context": {{"trace_id": "0x0af7651916cd43dd8448eb211c80319d", "span_id": "0x00f067aa0ba902b8", "trace_state": null}}, "attributes": {{}}}}], "resource": {resource}}}"#
        )
    };
    let res = |rank: &str| {
        format!(
            r#"{{"attributes": {{"service.name": "sim", "mpi.rank": {rank}, "nested": {{"a": [1, {{"b": "}}{{"}}]}}}}, "schema_url": ""}}"#
        )
    };
    // Must be taken: what Python and otel-run write.
    for attrs in [
        r#""i": 1, "f": 0.25, "neg": -7, "s": "text", "b": true, "no": false, "n": null"#,
        r#""xs": [1, 2.5, "s", true, null, [], {}], "m": {"inner": {"deep": [1]}}"#,
        r#""otel_run.span": "process", "mpi.rank": 3"#,
        r#""otel_run.span": 5, "mpi.rank": "3", "otel_run.span": "step", "mpi.rank": 4"#,
        r#""big": 999999999999999999, "min": -999999999999999999, "zero": 0, "frac": -0.0"#,
        r#""unicode": "ünïcødé ✓", "empty": """#,
        "",
    ] {
        for rank in ["0", "1", "0", "\"2\""] {
            let l = line(attrs, &res(rank));
            assert!(agrees(&l), "not taken: {l}");
        }
    }
    // Left to serde (taken or not, the readings agree).
    for attrs in [
        r#""e": 1e-05"#,
        r#""e": 1E+300"#,
        r#""e": 1e400"#,
        r#""z": -0"#,
        r#""huge": 9223372036854775807"#,
        r#""huge": 9223372036854775808"#,
        r#""huge": 18446744073709551616"#,
        r#""neg": -9223372036854775808"#,
        r#""lead": 01"#,
        r#""dot": 1."#,
        r#""dot": .5"#,
        r#""plus": +1"#,
        r#""nan": NaN"#,
        r#""inf": -Infinity"#,
        r#""esc": "a\"b""#,
        r#""esc\u0041": 1"#,
        "\"ctl\": \"a\tb\"",
        r#""trail": 1,"#,
        r#""dup": 1, "dup": 2"#,
        r#""otel_run.span": "a\u0062""#,
    ] {
        let _ = agrees(&line(attrs, &res("0")));
    }
    let deep = format!("\"deep\": {}1{}", "[".repeat(150), "]".repeat(150));
    let _ = agrees(&line(&deep, &res("0")));
    for resource in [
        "null",
        r#""text""#,
        "5",
        r#"{"attributes": 5}"#,
        r#"{"attributes": {}} "#,
    ] {
        let _ = agrees(&line("", resource));
    }
    let base = line("", &res("0"));
    let variants = [
        base.replacen(r#""name": "simulate", "#, "", 1),
        base.replacen(r#""name": "simulate""#, r#""name": null"#, 1),
        base.replacen(r#""kind": "SpanKind.INTERNAL""#, r#""kind": null"#, 1),
        base.replacen(
            r#""status": {"status_code": "UNSET"}"#,
            r#""status": null"#,
            1,
        ),
        base.replacen(
            r#""status_code": "UNSET""#,
            r#""status_code": "ERROR", "description": "x""#,
            1,
        ),
        base.replacen(r#""status_code": "UNSET""#, r#""description": "x""#, 1),
        base.replacen(
            r#""trace_state": "[]""#,
            r#""trace_state": "[]", "span_id": "0x1""#,
            1,
        ),
        base.replacen(r#""kind""#, r#""unknown": 1, "kind""#, 1),
        base.replacen(r#""kind""#, r#""name": "again", "kind""#, 1),
        base.replacen(r#""events": ["#, r#""events": null, "x": ["#, 1),
        base.replacen(r#""links": ["#, r#""links": null, "x": ["#, 1),
        base.replacen(r#""end_time": "2024-01-01T00:00:01.5Z", "#, "", 1),
        base.replacen(r#""timestamp""#, r#""when""#, 1),
        base.replace(' ', ""),
        format!("  {base}  \r"),
        format!("{base}x"),
        format!("{base},"),
        base.replacen('{', "[", 1),
        format!(
            r#"{}, "instrumentation_scope": {{"name": "lib", "version": null, "schema_url": "u", "attributes": {{"a": 1}}}}}}"#,
            &base[..base.len() - 1]
        ),
        format!(
            r#"{}, "instrumentation_scope": null}}"#,
            &base[..base.len() - 1]
        ),
    ];
    for l in &variants {
        let _ = agrees(l);
    }
    assert!(agrees(&variants[13]), "compact layout");
    assert!(agrees(&variants[14]), "whitespace around");
    assert!(agrees(&variants[18]), "instrumentation_scope");
}

/// What the otlp reader once refused or could get wrong: integers beyond i64 (a double, not an
/// error), non-integral intValues, and nesting deeper than serde's limit (an error, not a crash).
#[test]
fn otlp_lines_with_big_integers_and_deep_nesting() {
    let line = |value: &str| {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"00f067aa0ba902b7","attributes":[{{"key":"v","value":{value}}}]}}]}}]}}]}}"#
        )
    };
    let value = |v: &str| -> Result<Option<Value>, String> {
        let data = otlp_json::parse_line(line(v).as_bytes())?;
        let span = &data.resource_spans[0].scope_spans[0].spans[0];
        Ok(span.attributes[0].value.as_ref().unwrap().value.clone())
    };
    for (v, want) in [
        (
            r#"{"intValue":"-9223372036854775808"}"#,
            Value::IntValue(i64::MIN),
        ),
        (
            r#"{"intValue":9223372036854775807}"#,
            Value::IntValue(i64::MAX),
        ),
        (
            r#"{"intValue":"9223372036854775808"}"#,
            Value::DoubleValue(9223372036854775808.0),
        ),
        (
            r#"{"intValue":9223372036854775808}"#,
            Value::DoubleValue(9223372036854775808.0),
        ),
        (
            r#"{"intValue":"-18446744073709551616"}"#,
            Value::DoubleValue(-18446744073709551616.0),
        ),
        (
            r#"{"intValue":18446744073709551616}"#,
            Value::DoubleValue(18446744073709551616.0),
        ),
    ] {
        assert_eq!(value(v), Ok(Some(want)), "{v}");
    }
    for v in [
        r#"{"intValue":1.5}"#,
        r#"{"intValue":"1.5"}"#,
        r#"{"intValue":"1e3"}"#,
        r#"{"intValue":""}"#,
    ] {
        let e = value(v).unwrap_err();
        assert!(e.contains("is not an integer"), "{v}: {e}");
    }
    let deep = format!(
        "{}{{\"intValue\":1}}{}",
        r#"{"arrayValue":{"values":["#.repeat(100),
        "]}}".repeat(100)
    );
    let e = value(&deep).unwrap_err();
    assert!(e.contains("recursion limit"), "{e}");
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let python = format!(
        r#"{{"name": "s", "context": {{"trace_id": "0x0af7651916cd43dd8448eb211c80319c", "span_id": "0x00f067aa0ba902b7"}}, "attributes": {{"deep": {deep}}}}}"#
    );
    for detail in [Detail::Full, Detail::SharedResource, Detail::Sketch] {
        let e = parse(python.as_bytes(), detail).unwrap_err();
        assert!(e.contains("recursion limit"), "{detail:?}: {e}");
    }
}

/// `uint32` fields (flags, dropped counts) beyond 32 bits were once cast and wrapped silently
/// (4294967296 dropped attributes read as 0): now the line is refused with the value named.
#[test]
fn otlp_32_bit_fields_are_refused_beyond_their_range_not_wrapped() {
    let line = |field: &str, v: &str| {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"00f067aa0ba902b7","{field}":{v}}}]}}]}}]}}"#
        )
    };
    for field in [
        "flags",
        "droppedAttributesCount",
        "droppedEventsCount",
        "droppedLinksCount",
    ] {
        let data = otlp_json::parse_line(line(field, "\"4294967295\"").as_bytes()).unwrap();
        let span = &data.resource_spans[0].scope_spans[0].spans[0];
        let got = match field {
            "flags" => span.flags,
            "droppedAttributesCount" => span.dropped_attributes_count,
            "droppedEventsCount" => span.dropped_events_count,
            _ => span.dropped_links_count,
        };
        assert_eq!(got, u32::MAX, "{field}");
        for v in ["4294967296", "\"4294967296\""] {
            let e = otlp_json::parse_line(line(field, v).as_bytes()).unwrap_err();
            assert!(e.contains("4294967296 does not fit"), "{field} {v}: {e}");
        }
    }
}
