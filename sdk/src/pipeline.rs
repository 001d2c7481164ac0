//! The span processor and its exporter thread.
//!
//! The program's thread only moves an ended span into a bounded queue; one plain thread (no async
//! runtime around it, so the blocking HTTP client may run there; a tokio runtime of its own only
//! for gRPC) batches and exports. That keeps exporting off the program's thread (whatever its
//! runtime) and makes flushing explicit: `flush` and `shutdown` are messages in the same queue,
//! so when their answer arrives every span ended before them has been handed to the exporters.
//! Waiting for that answer is bounded by the exporter timeout; MPI is never involved.
//!
//! While the unwinder is armed, `on_start` also keeps a snapshot of every open span, so a signal
//! can end what the program never will.

use crate::config::{Config, ExporterKind, Protocol};
use crate::jsonlines::JsonLinesExporter;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Nearly every message is a span, stored inline in the channel: boxing it would add an allocation
// per span on the program's thread to save memory on the rare control messages.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    Span(SpanData),
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

/// State shared by the processor, the guard and the unwinder.
#[derive(Debug)]
pub(crate) struct Shared {
    tx: SyncSender<Msg>,
    /// Snapshots of started, not yet ended spans (only while `track` is set).
    pub open: Mutex<HashMap<SpanId, SpanData>>,
    pub track: AtomicBool,
    /// Set by the unwinder: spans it already ended must not be exported a second time.
    pub terminating: AtomicBool,
    pub dropped: AtomicU64,
    pub timeout: Duration,
}

impl Shared {
    pub fn send(&self, span: SpanData) {
        match self.tx.try_send(Msg::Span(span)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits until everything queued before this call went through the exporters, at most `bound`.
    pub fn flush(&self, bound: Duration) -> bool {
        self.request(Msg::Flush, bound)
    }

    pub fn shutdown(&self, bound: Duration) -> bool {
        self.request(Msg::Shutdown, bound)
    }

    fn request(&self, msg: fn(SyncSender<()>) -> Msg, bound: Duration) -> bool {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let deadline = Instant::now() + bound;
        let mut m = msg(ack_tx);
        // The queue may be full; keep trying until the bound rather than block forever.
        loop {
            match self.tx.try_send(m) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return true, // already shut down
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    m = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

#[derive(Debug)]
pub(crate) struct Processor {
    pub shared: Arc<Shared>,
}

impl SpanProcessor for Processor {
    fn on_start(&self, span: &mut Span, _cx: &Context) {
        if self.shared.track.load(Ordering::Relaxed)
            && !self.shared.terminating.load(Ordering::Relaxed)
        {
            if let Some(data) = span.exported_data() {
                let mut open = self.shared.open.lock().unwrap_or_else(|e| e.into_inner());
                open.insert(data.span_context.span_id(), data);
            }
        }
    }

    fn on_end(&self, span: SpanData) {
        if self.shared.track.load(Ordering::Relaxed) {
            let mut open = self.shared.open.lock().unwrap_or_else(|e| e.into_inner());
            let known = open.remove(&span.span_context.span_id()).is_some();
            if !known && self.shared.terminating.load(Ordering::Relaxed) {
                return; // the unwinder ended it already
            }
        }
        self.shared.send(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        if self.shared.flush(self.shared.timeout) {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(self.shared.timeout))
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shared.shutdown(timeout) {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(timeout))
        }
    }
}

/// One configured destination.
enum Exporter {
    Otlp(Box<opentelemetry_otlp::SpanExporter>, String),
    JsonLines(JsonLinesExporter),
    Console(String),
}

/// Starts the exporter thread; the exporters are built on it (the gRPC client needs the runtime
/// that lives there).
pub(crate) fn start(
    config: &Config,
    resource: Resource,
    jsonlines_path: Option<String>,
) -> Arc<Shared> {
    let (tx, rx) = mpsc::sync_channel::<Msg>(config.max_queue);
    let shared = Arc::new(Shared {
        tx,
        open: Mutex::new(HashMap::new()),
        track: AtomicBool::new(false),
        terminating: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
        timeout: config.otlp.timeout,
    });
    let config = config.clone();
    let parent = config.parent.as_ref().map(|p| {
        (
            TraceId::from_bytes(p.trace_id),
            SpanId::from_bytes(p.span_id),
        )
    });
    let spawned = std::thread::Builder::new()
        .name("otel-run-sdk-export".into())
        .spawn(move || run(config, resource, jsonlines_path, parent, rx));
    if let Err(e) = spawned {
        crate::warn(&format!(
            "cannot start the exporter thread ({e}); spans are dropped"
        ));
    }
    shared
}

fn run(
    config: Config,
    resource: Resource,
    jsonlines_path: Option<String>,
    parent: Option<(TraceId, SpanId)>,
    rx: Receiver<Msg>,
) {
    #[cfg(feature = "grpc")]
    let runtime = (config.exporters.contains(&ExporterKind::Otlp)
        && config.otlp.protocol == Protocol::Grpc)
        .then(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    crate::warn(&format!(
                        "cannot start the gRPC runtime ({e}); OTLP export is off"
                    ))
                })
                .ok()
        })
        .flatten();
    let mut exporters = Vec::new();
    for kind in &config.exporters {
        match kind {
            ExporterKind::Otlp => {
                #[cfg(feature = "grpc")]
                let built = build_otlp(&config, runtime.as_ref());
                #[cfg(not(feature = "grpc"))]
                let built = build_otlp(&config);
                match built {
                    Ok(mut e) => {
                        e.set_resource(&resource);
                        exporters.push(Exporter::Otlp(Box::new(e), config.otlp.endpoint.clone()));
                    }
                    Err(e) => crate::warn(&format!(
                        "OTLP exporter to {}: {e}; OTLP export is off",
                        config.otlp.endpoint
                    )),
                }
            }
            ExporterKind::JsonLines => {
                if let Some(path) = &jsonlines_path {
                    let mut e = JsonLinesExporter::new(path);
                    e.set_resource(&resource);
                    exporters.push(Exporter::JsonLines(e));
                }
            }
            ExporterKind::Console => exporters.push(Exporter::Console(
                crate::jsonlines::resource_json(&resource),
            )),
        }
    }
    let mut failed = vec![false; exporters.len()];
    let mut batch: Vec<SpanData> = Vec::with_capacity(config.max_batch);
    let mut oldest: Option<Instant> = None;

    let mut export = |batch: &mut Vec<SpanData>| {
        if batch.is_empty() {
            return;
        }
        for span in batch.iter_mut() {
            adopt_root(span, parent);
        }
        let n = exporters.len();
        for (i, exporter) in exporters.iter().enumerate() {
            let spans = if i + 1 == n {
                std::mem::take(batch)
            } else {
                batch.clone()
            };
            let count = spans.len();
            let result = match exporter {
                Exporter::Otlp(e, endpoint) => {
                    #[cfg(feature = "grpc")]
                    let r = match runtime.as_ref() {
                        Some(rt) => rt.block_on(e.export(spans)),
                        None => futures_executor::block_on(e.export(spans)),
                    };
                    #[cfg(not(feature = "grpc"))]
                    let r = futures_executor::block_on(e.export(spans));
                    r.map_err(|err| format!("OTLP export to {endpoint} failed: {err}"))
                }
                Exporter::JsonLines(e) => futures_executor::block_on(e.export(spans))
                    .map_err(|err| format!("writing spans failed: {err}")),
                Exporter::Console(resource) => {
                    let mut out = Vec::new();
                    for s in &spans {
                        crate::jsonlines::write_line(&mut out, s, resource);
                    }
                    use std::io::Write;
                    std::io::stdout()
                        .lock()
                        .write_all(&out)
                        .map_err(|err| format!("console exporter: {err}"))
                }
            };
            // One warning per destination: a dead collector must not flood the program's stderr.
            if let Err(msg) = result {
                if !failed[i] {
                    failed[i] = true;
                    crate::warn(&format!(
                        "{msg} ({count} spans lost; further failures are not reported)"
                    ));
                }
            }
        }
        batch.clear();
    };

    loop {
        let msg = match oldest {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(t) => rx.recv_timeout(
                (t + config.schedule_delay).saturating_duration_since(Instant::now()),
            ),
        };
        match msg {
            Ok(Msg::Span(s)) => {
                batch.push(s);
                oldest.get_or_insert_with(Instant::now);
                if batch.len() >= config.max_batch {
                    export(&mut batch);
                    oldest = None;
                }
            }
            Ok(Msg::Flush(ack)) => {
                export(&mut batch);
                oldest = None;
                let _ = ack.send(());
            }
            Ok(Msg::Shutdown(ack)) => {
                export(&mut batch);
                let _ = ack.send(());
                break;
            }
            Err(RecvTimeoutError::Timeout) => {
                export(&mut batch);
                oldest = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                export(&mut batch);
                break;
            }
        }
    }
}

/// A root span of the program continues TRACEPARENT: the id generator gave it the trace id, this
/// gives it the parent span id.
fn adopt_root(span: &mut SpanData, parent: Option<(TraceId, SpanId)>) {
    if let Some((trace, parent_span)) = parent {
        if span.parent_span_id == SpanId::INVALID && span.span_context.trace_id() == trace {
            span.parent_span_id = parent_span;
            span.parent_span_is_remote = true;
        }
    }
}

#[cfg(feature = "grpc")]
fn build_otlp(
    config: &Config,
    runtime: Option<&tokio::runtime::Runtime>,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
    if config.otlp.protocol == Protocol::Grpc {
        let rt = runtime.ok_or("no gRPC runtime")?;
        let _enter = rt.enter();
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (k, v) in &config.otlp.headers {
            match (
                tonic::metadata::MetadataKey::from_bytes(k.as_bytes()),
                v.parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>(),
            ) {
                (Ok(k), Ok(v)) => {
                    metadata.insert(k, v);
                }
                _ => return Err(format!("header {k:?} is not valid gRPC metadata")),
            }
        }
        let mut b = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.otlp.endpoint.clone())
            .with_timeout(config.otlp.timeout)
            .with_metadata(metadata);
        if config.otlp.gzip {
            b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        return b.build().map_err(|e| e.to_string());
    }
    build_http(config)
}

#[cfg(not(feature = "grpc"))]
fn build_otlp(config: &Config) -> Result<opentelemetry_otlp::SpanExporter, String> {
    build_http(config)
}

fn build_http(config: &Config) -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let mut b = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(config.otlp.endpoint.clone())
        .with_timeout(config.otlp.timeout)
        .with_headers(config.otlp.headers.iter().cloned().collect());
    if config.otlp.gzip {
        b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    b.build().map_err(|e| e.to_string())
}
