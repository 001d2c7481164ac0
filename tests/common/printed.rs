//! What rotel's detailed debug log prints for a span, and the check that every span of a set of
//! files arrived exactly once, printed exactly as otel-run's reader sees it (replay, bsb-otel).

use super::{hex, Rotel};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One span as rotel's detailed debug log shows it: the resource and scope headers it was printed
/// under, and its own block (ids, name, kind, trace state, times, status, attributes, events,
/// links).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    pub resource: String,
    pub scope: String,
    pub span: String,
}

fn is_header(line: &str) -> bool {
    line.starts_with("ResourceSpans #")
        || line.starts_with("ScopeSpans #")
        || line.starts_with("Span #")
}

/// Splits rotel's output into spans, keyed by span id (hex); a span received twice shows up twice.
pub fn printed(output: &str) -> BTreeMap<String, Vec<Printed>> {
    let lines: Vec<&str> = output.lines().collect();
    let mut out: BTreeMap<String, Vec<Printed>> = BTreeMap::new();
    let (mut resource, mut scope) = (String::new(), String::new());
    let mut i = 0;
    // The block after a header runs to the next header; values may span lines (a string with a
    // newline is printed raw).
    let block = |i: &mut usize| {
        let start = *i;
        while *i < lines.len() && !is_header(lines[*i]) {
            *i += 1;
        }
        lines[start..*i].join("\n").trim_end().to_string()
    };
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.starts_with("ResourceSpans #") {
            resource = block(&mut i);
        } else if line.starts_with("ScopeSpans #") {
            scope = block(&mut i);
        } else if line.starts_with("Span #") {
            let span = block(&mut i);
            let id = span
                .lines()
                .find_map(|l| l.strip_prefix("    ID             : "))
                .unwrap_or_else(|| panic!("span without ID in rotel output:\n{span}"))
                .to_string();
            out.entry(id).or_default().push(Printed {
                resource: resource.clone(),
                scope: scope.clone(),
                span,
            });
        }
    }
    out
}

/// What rotel's detailed log prints for a value.
pub fn value(v: Option<&Value>) -> String {
    let list = |values: &[AnyValue]| {
        values
            .iter()
            .map(|v| value(v.value.as_ref()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match v {
        None => "Empty".into(),
        Some(Value::StringValue(s)) => format!("Str({s})"),
        Some(Value::BoolValue(b)) => format!("Bool({b})"),
        Some(Value::IntValue(i)) => format!("Int({i})"),
        Some(Value::DoubleValue(d)) => format!("Double({d})"),
        Some(Value::BytesValue(b)) => format!("Bytes({b:?})"),
        Some(Value::ArrayValue(a)) => format!("Slice({})", list(&a.values)),
        Some(Value::KvlistValue(l)) => format!(
            "Map({})",
            l.values
                .iter()
                .map(|kv| format!(
                    "{}:{}",
                    kv.key,
                    value(kv.value.as_ref().and_then(|v| v.value.as_ref()))
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(other) => panic!("no test data uses {other:?}"),
    }
}

fn attrs(out: &mut Vec<String>, title: &str, indent: &str, kvs: &[KeyValue]) {
    if kvs.is_empty() {
        return;
    }
    out.push(title.to_string());
    for kv in kvs {
        let v = value(kv.value.as_ref().and_then(|v| v.value.as_ref()));
        out.push(format!("{indent}-> {}: {v}", kv.key));
    }
}

const KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// What rotel must print for `span`, its times shifted by `shift` nanoseconds.
pub fn expected(rs: &ResourceSpans, ss: &ScopeSpans, span: &Span, shift: i128) -> Printed {
    let t = |ns: u64| (ns as i128 + shift).to_string();
    let mut r = vec![format!("Resource SchemaURL: {}", rs.schema_url)];
    let empty = Resource::default();
    attrs(
        &mut r,
        "Resource attributes:",
        "     ",
        &rs.resource.as_ref().unwrap_or(&empty).attributes,
    );
    let scope = ss.scope.clone().unwrap_or_default();
    let mut sc = vec![
        format!("ScopeSpans SchemaURL: {}", ss.schema_url),
        format!("InstrumentationScope {} {}", scope.name, scope.version),
    ];
    attrs(
        &mut sc,
        "InstrumentationScope attributes:",
        "     ",
        &scope.attributes,
    );
    let status = span.status.clone().unwrap_or_default();
    let mut s = vec![
        format!("    Trace ID       : {}", hex(&span.trace_id)),
        format!("    Parent ID      : {}", hex(&span.parent_span_id)),
        format!("    ID             : {}", hex(&span.span_id)),
        format!("    Name           : {}", span.name),
        format!("    Kind           : {}", KINDS[span.kind as usize]),
    ];
    if !span.trace_state.is_empty() {
        s.push(format!("    TraceState     : {}", span.trace_state));
    }
    s.push(format!("Start time: {}", t(span.start_time_unix_nano)));
    s.push(format!("End time: {}", t(span.end_time_unix_nano)));
    s.push(format!(
        "    Status code    : {}",
        STATUS[status.code as usize]
    ));
    s.push(format!("    Status message : {}", status.message));
    attrs(&mut s, "Attributes:", "     ", &span.attributes);
    if !span.events.is_empty() {
        s.push("Events:".into());
    }
    for (i, e) in span.events.iter().enumerate() {
        s.push(format!("SpanEvent #{i}"));
        s.push(format!("     -> Name: {}", e.name));
        s.push(format!("     -> Timestamp: {}", t(e.time_unix_nano)));
        s.push("     -> DroppedAttributesCount: 0".into());
        attrs(&mut s, "     -> Attributes::", "          ", &e.attributes);
    }
    if !span.links.is_empty() {
        s.push("Links:".into());
    }
    for (i, l) in span.links.iter().enumerate() {
        s.push(format!("SpanLink #{i}"));
        s.push(format!("     -> Trace ID: {}", hex(&l.trace_id)));
        s.push(format!("     -> ID: {}", hex(&l.span_id)));
        s.push(format!("     -> TraceState: {}", l.trace_state));
        s.push("     -> DroppedAttributesCount: 0".into());
        attrs(&mut s, "     -> Attributes::", "          ", &l.attributes);
    }
    // Trimmed like the printed blocks (rotel ends some lines with spaces).
    Printed {
        resource: r.join("\n").trim_end().to_string(),
        scope: sc.join("\n").trim_end().to_string(),
        span: s.join("\n").trim_end().to_string(),
    }
}

/// Every span of `files` arrived exactly once, printed exactly as expected.
pub fn assert_received_exactly(
    rotel: &Rotel,
    files: &[(PathBuf, Vec<ResourceSpans>)],
    shift: i128,
) {
    let want: usize = files
        .iter()
        .map(|(_, d)| otel_run::format::span_count(d))
        .sum();
    rotel.wait_spans(want);
    let got = printed(&rotel.output());
    assert_eq!(
        got.values().map(Vec::len).sum::<usize>(),
        want,
        "spans at rotel"
    );
    for (file, data) in files {
        for rs in data {
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    let id = hex(&span.span_id);
                    let seen = got.get(&id).map(Vec::as_slice).unwrap_or_default();
                    assert_eq!(
                        seen.len(),
                        1,
                        "{}: span {id} {:?} received {} times",
                        file.display(),
                        span.name,
                        seen.len()
                    );
                    assert_eq!(
                        seen[0],
                        expected(rs, ss, span, shift),
                        "{}: span {id}",
                        file.display()
                    );
                }
            }
        }
    }
}
