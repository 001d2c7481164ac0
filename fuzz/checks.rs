//! What each fuzz target checks, shared with the root package's `tests/fuzz_corpus.rs` so the
//! committed corpus replays through exactly these checks in a plain `cargo test`.
//! Every check: the input never panics, and where an invariant is cheap it is asserted.

#![allow(dead_code)]

use opentelemetry_proto::tonic::trace::v1::TracesData;
use otel_run::export::{render, Format};
use otel_run::format::{self, Detail};
use prost::Message;

/// The targets, by name: the name is also the corpus directory under `fuzz/corpus/`.
/// A target's check: panics on a bug.
pub type Check = fn(&[u8]);

pub const TARGETS: &[(&str, Check)] = &[
    ("python_line", python_line),
    ("otlp_line", otlp_line),
    ("span_file", span_file),
    ("sink_request", sink_request),
    ("grpc_request", grpc_request),
    ("iso_time", iso_time),
    ("trace_context", trace_context),
    ("key_value_list", key_value_list),
    ("path_template", path_template),
];

/// A line that parses renders in its format and parses again; one round trip reaches the
/// canonical form (absent status or resource become empty ones), after that nothing changes.
/// Whatever parses is also written by the otlp writer exactly as by its serde oracle.
fn line_round_trip(data: &[u8], fmt: Format) {
    for detail in [Detail::Sketch, Detail::SharedResource] {
        let _ = format::parse(data, detail);
    }
    let Ok((parsed, _)) = format::parse(data, Detail::Full) else {
        return;
    };
    // The otlp writer writes what its serde oracle writes, for whatever either reader reads.
    if let Err(e) = otel_run::export::otlp::agrees_with_serde(&parsed.resource_spans) {
        panic!("{e}");
    }
    // Merge's otlp lines, placed from fragments, group spans as the proto types compare.
    for max in [1, 2, 512] {
        if let Err(e) =
            otel_run::export::otlp::lines_agree_with_grouped_types(&parsed.resource_spans, max)
        {
            panic!("{e}");
        }
    }
    let once = render_and_parse(&parsed, fmt);
    let twice = render_and_parse(&once, fmt);
    // Compared encoded: NaN doubles are not equal to themselves.
    assert_eq!(
        once.encode_to_vec(),
        twice.encode_to_vec(),
        "a span changed through a second round trip: {once:?} -> {twice:?}"
    );
}

/// Renders `data` in `fmt` and parses every line back into one `TracesData`.
fn render_and_parse(data: &TracesData, fmt: Format) -> TracesData {
    let mut out = Vec::new();
    render(&mut out, fmt, &data.resource_spans);
    let mut all = TracesData::default();
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let again = format::parse_line(line).unwrap_or_else(|e| {
            panic!(
                "re-rendered line does not parse: {e}\n{}",
                String::from_utf8_lossy(line)
            )
        });
        all.resource_spans.extend(again.resource_spans);
    }
    assert_eq!(
        format::span_count(&all.resource_spans),
        format::span_count(&data.resource_spans),
        "spans lost or added through a round trip"
    );
    all
}

/// Also: the scanner (the readers' fast path) reads exactly what serde reads, or leaves the line
/// to serde; merge's sketch reading accepts exactly the python lines a sketch parse accepts.
pub fn python_line(data: &[u8]) {
    if let Ok(line) = std::str::from_utf8(data) {
        if let Err(e) = format::python::scanner_agrees(line) {
            panic!("the scanner and serde disagree: {e}");
        }
    }
    if !format::is_otlp_line(data) {
        assert_eq!(
            format::python::sketch(data).is_ok(),
            format::parse(data, Detail::Sketch).is_ok(),
            "sketch() and parse(Sketch) disagree"
        );
    }
    line_round_trip(data, Format::Python);
}

pub fn otlp_line(data: &[u8]) {
    line_round_trip(data, Format::Otlp);
}

/// First byte picks content type and encoding; the rest is the body.
pub fn sink_request(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let content_type = if sel & 1 == 0 {
        "application/x-protobuf"
    } else {
        "application/json"
    };
    let encoding = if sel & 2 == 0 { "" } else { "gzip" };
    let _ = otel_run::decode_http_request(content_type, encoding, body, 1 << 20);
}

/// The sink's OTLP/gRPC body path: first byte bit 0 picks `grpc-encoding: gzip`; the rest is
/// the body as the sink reads it (5-byte prefix: compressed flag, big-endian length; then the
/// message). What decodes re-encodes, in a plain frame, to a body that decodes to the same
/// encoding again (compared encoded: NaN doubles are not equal to themselves).
pub fn grpc_request(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let encoding = if sel & 1 == 0 { "" } else { "gzip" };
    let limit = 1 << 20;
    let Ok(request) = otel_run::decode_grpc_request(encoding, body, limit) else {
        return;
    };
    let once = request.encode_to_vec();
    if once.len() > limit {
        return;
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(once.len() as u32).to_be_bytes());
    framed.extend_from_slice(&once);
    let again = otel_run::decode_grpc_request("", &framed, limit)
        .unwrap_or_else(|e| panic!("a re-encoded request does not decode: {e}"));
    assert_eq!(
        again.encode_to_vec(),
        once,
        "a request changed through a round trip"
    );
}

/// A time that parses formats and parses again to the same nanosecond; any u64 formats and
/// parses back.
pub fn iso_time(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(n) = format::time::parse_iso(s) {
            let iso = format::time::format_iso(n);
            assert_eq!(format::time::parse_iso(&iso), Ok(n), "{s:?} -> {iso}");
        }
    }
    if data.len() >= 8 {
        let n = u64::from_le_bytes(data[..8].try_into().unwrap());
        let iso = format::time::format_iso(n);
        assert_eq!(format::time::parse_iso(&iso), Ok(n), "{n} -> {iso}");
    }
}

/// TRACEPARENT that parses displays as itself (version 00) and parses again the same;
/// TRACESTATE converts without panicking.
pub fn trace_context(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tp) = otel_run::ids::TraceParent::parse(s) {
        let shown = tp.to_string();
        assert_eq!(otel_run::ids::TraceParent::parse(&shown), Ok(tp));
    }
    let _ = format::python::trace_state_to_python(s);
}

/// OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS syntax: what parses encodes and
/// parses back to the same pairs.
pub fn key_value_list(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pairs) = otel_run::contract::parse_resource_attributes(s) {
        let encoded = otel_run::contract::encode_resource_attributes(&pairs);
        assert_eq!(
            otel_run::contract::parse_resource_attributes(&encoded),
            Ok(pairs),
            "{s:?} -> {encoded:?}"
        );
    }
}

/// `template\0job\0step\0host`: values from the environment never add a directory or climb out.
pub fn path_template(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = s.split('\0');
    let template = parts.next().unwrap_or("");
    let job = parts.next().unwrap_or("1");
    let step = parts.next().unwrap_or("0");
    let host = parts.next().unwrap_or("node");
    let p = format::path::Placeholders {
        rank: 3,
        size: 4,
        job,
        step,
        host,
        pid: 42,
    };
    if let Ok(out) = format::path::expand(template, &p) {
        assert_eq!(
            out.matches('/').count(),
            template.matches('/').count(),
            "{template:?} with {job:?} {step:?} {host:?} -> {out:?}"
        );
        if !template.contains("..") && !template.contains('.') {
            assert!(!out.contains("/."), "{out:?} hides a file or climbs out");
        }
    }
}

/// A whole span file through the streaming reader, with a small read buffer (lines split across
/// reads) and a small line limit: it ends, line numbers only grow, an error skips its line.
pub fn span_file(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let capacity = 1 + usize::from(sel & 31);
    let max_line = 64 << (sel >> 6);
    let lines = format::Lines::new("fuzz", std::io::BufReader::with_capacity(capacity, body))
        .with_max_line(max_line);
    let reader = format::Reader::from(lines);
    let mut reader = match sel % 3 {
        0 => reader,
        1 => reader.sketches(),
        _ => reader.shared_resources(),
    };
    let lines_in_input = body.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let mut last = 0;
    for _ in 0..=lines_in_input {
        let no = match reader.next_data() {
            Ok(None) => return,
            Ok(Some((no, _))) => no,
            Err(e) => e.line,
        };
        assert!(no > last && no <= lines_in_input, "line {no} after {last}");
        last = no;
    }
    panic!("the reader did not end after {lines_in_input} lines");
}
