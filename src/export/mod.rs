//! Where otel-run's own spans go (`--traces-exporter`): the rank's span file, the console, an OTLP
//! collector, any combination. The file comes first: it is what survives a missing collector.

pub mod console;

use crate::format::SpanFile;
use crate::otlp::OtlpClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

#[derive(Default)]
pub struct Outputs {
    pub file: Option<SpanFile>,
    pub console: bool,
    pub otlp: Option<OtlpClient>,
}

impl Outputs {
    /// Appends to the span file and fsyncs it, and prints to the console. A file that cannot be
    /// written costs a warning, never the job.
    pub fn write_local(&mut self, batch: &[ResourceSpans]) {
        if let Some(file) = &mut self.file {
            if let Err(e) = file.append(batch).and_then(|_| file.sync()) {
                tracing::warn!("{e:#}");
            }
        }
        if self.console {
            eprint!("{}", console::render(batch));
        }
    }

    /// Sends to the collector within the configured timeout; failures are reported with where the
    /// spans can still be found.
    pub async fn send_otlp(&self, batch: Vec<ResourceSpans>) {
        let Some(client) = &self.otlp else { return };
        let count = crate::format::span_count(&batch);
        let request = ExportTraceServiceRequest {
            resource_spans: batch,
        };
        match client.export(&request).await {
            Ok(outcome) if outcome.rejected_spans > 0 => tracing::warn!(
                "collector {} rejected {} of {count} spans: {}{}",
                client.config().endpoint,
                outcome.rejected_spans,
                outcome.message,
                self.replay_hint()
            ),
            Ok(_) => tracing::debug!("sent {count} spans to {}", client.config().endpoint),
            Err(e) => tracing::warn!(
                "could not send {count} spans to {}: {e}{}",
                client.config().endpoint,
                self.replay_hint()
            ),
        }
    }

    fn replay_hint(&self) -> String {
        match &self.file {
            Some(f) => format!(
                "; they are in {0} (send them later with: otel-run replay {0})",
                f.path().display()
            ),
            None => String::new(),
        }
    }
}
