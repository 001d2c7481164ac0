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
        let line = Line {
            resource_spans: batch,
        };
        // NaN and ±Infinity as proto3 JSON spells them, not serde_json's `null`.
        if super::nonfinite::queue_resource_spans(batch) {
            let keeping = super::nonfinite::Keeping::new(super::nonfinite::Spelling::Proto3);
            let mut ser = serde_json::Serializer::with_formatter(&mut *out, keeping);
            serde::Serialize::serialize(&line, &mut ser).expect("serialising spans to memory");
            super::nonfinite::clear();
        } else {
            serde_json::to_writer(&mut *out, &line).expect("serialising spans to memory");
        }
        out.push(b'\n');
    }
}
