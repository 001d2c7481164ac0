//! Where otel-run's own spans go (`--traces-exporter`): the rank's span file, the console, an OTLP
//! collector, any combination. The file comes first: it is what survives a missing collector.

pub mod console;

use crate::format::SpanFile;
use crate::otlp::OtlpClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The rank's span file, shared by otel-run's own spans and the sink (the program's spans).
pub type SharedFile = Arc<Mutex<Option<SpanFile>>>;

#[derive(Default)]
pub struct Outputs {
    pub file: SharedFile,
    /// Where the file is, even if it could not be opened (for messages).
    pub path: Option<PathBuf>,
    pub console: bool,
    pub otlp: Option<Arc<OtlpClient>>,
}

impl Outputs {
    /// Appends to the span file and fsyncs it, and prints to the console. A file that cannot be
    /// written costs a warning, never the job.
    pub fn write_local(&self, batch: &[ResourceSpans]) {
        if let Some(file) = self.file.lock().unwrap().as_mut() {
            if let Err(e) = file.append(batch).and_then(|_| file.sync()) {
                tracing::warn!("{e:#}");
            }
        }
        if self.console {
            eprint!("{}", console::render(batch));
        }
    }

    /// Sends to the collector within `bound` (and the configured timeout); failures are reported
    /// with where the spans can still be found.
    pub async fn send_otlp(&self, batch: Vec<ResourceSpans>, bound: Duration) {
        let Some(client) = &self.otlp else { return };
        let count = crate::format::span_count(&batch);
        let request = ExportTraceServiceRequest {
            resource_spans: batch,
        };
        let endpoint = &client.config().endpoint;
        match tokio::time::timeout(bound, client.export(request)).await {
            Ok(Ok(outcome)) if outcome.rejected_spans > 0 => tracing::warn!(
                "collector {endpoint} rejected {} of {count} spans: {}{}",
                outcome.rejected_spans,
                outcome.message,
                self.replay_hint()
            ),
            Ok(Ok(_)) => tracing::debug!("sent {count} spans to {endpoint}"),
            Ok(Err(e)) => tracing::warn!(
                "could not send {count} spans to {endpoint}: {e}{}",
                self.replay_hint()
            ),
            Err(_) => tracing::warn!(
                "could not send {count} spans to {endpoint} within {bound:?}{}",
                self.replay_hint()
            ),
        }
    }

    pub fn replay_hint(&self) -> String {
        match (&self.path, self.file.lock().unwrap().is_some()) {
            (Some(p), true) => format!(
                "; they are in {0} (send them later with: otel-run replay {0})",
                p.display()
            ),
            _ => String::new(),
        }
    }
}
