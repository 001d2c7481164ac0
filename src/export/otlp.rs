//! The `otlp` line format's writer: one `TracesData` per batch in OTLP/JSON (the OpenTelemetry
//! Collector's file exporter format). Its reader is `format::otlp_json`.

use super::SpanWriter;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

pub struct Otlp;

impl SpanWriter for Otlp {
    /// One line for the whole batch; nothing for a batch without spans.
    fn write(&mut self, out: &mut Vec<u8>, batch: &[ResourceSpans]) {
        if crate::format::span_count(batch) == 0 {
            return;
        }
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Line<'a> {
            resource_spans: &'a [ResourceSpans],
        }
        serde_json::to_writer(
            &mut *out,
            &Line {
                resource_spans: batch,
            },
        )
        .expect("serialising spans to memory");
        out.push(b'\n');
    }
}
