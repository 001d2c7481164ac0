//! The `otlp` line format: one `TracesData` per line in OTLP/JSON (the OpenTelemetry Collector's
//! file exporter and `otlpjsonfile` receiver format): lowerCamelCase keys, hex ids, 64-bit
//! integers as decimal strings (numbers accepted), enums as integers. Its writer is
//! `export::otlp`.

use opentelemetry_proto::tonic::trace::v1::TracesData;

/// Parses one otlp-format line and checks what serde's defaults would let through silently.
pub fn parse_line(line: &[u8]) -> Result<TracesData, String> {
    let data: TracesData = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    for rs in &data.resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                check_id("traceId", &span.trace_id, 16)?;
                check_id("spanId", &span.span_id, 8)?;
                if !span.parent_span_id.is_empty() {
                    check_id("parentSpanId", &span.parent_span_id, 8)?;
                }
                for link in &span.links {
                    check_id("links[].traceId", &link.trace_id, 16)?;
                    check_id("links[].spanId", &link.span_id, 8)?;
                }
            }
        }
    }
    Ok(data)
}

fn check_id(field: &str, id: &[u8], len: usize) -> Result<(), String> {
    if id.len() != len {
        return Err(format!(
            "{field} must be {} hex digits, found {}",
            2 * len,
            2 * id.len()
        ));
    }
    if id.iter().all(|b| *b == 0) {
        return Err(format!("{field} is all zeroes"));
    }
    Ok(())
}
