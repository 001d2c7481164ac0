//! The span processor and its exporter thread.
//!
//! The program's thread only moves an ended span into a bounded queue that no thread blocks on,
//! so ending a span never wakes anybody (a wake-up per span let the scheduler preempt the program
//! on a busy node: ~100x the cost). One plain thread (no async runtime around it, so the blocking
//! HTTP client may run there; a tokio runtime of its own only for gRPC) sleeps on a control
//! channel and drains the queue when a batch is full (one wake-up per batch), when the schedule
//! delay passes, or on `flush`/`shutdown`; whoever sent those waits for the answer, which means
//! every span queued before them has been handed to the exporters. The wait is bounded by the
//! exporter timeout; MPI is never involved.
//!
//! While the unwinder is armed, `on_start` also keeps a snapshot of every open span, so a signal
//! can end what the program never will.

#[cfg(feature = "grpc")]
use crate::config::Protocol;
use crate::config::{Config, ExporterKind};
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

pub(crate) enum Msg {
    /// A batch is waiting in the span queue.
    Batch,
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

/// State shared by the processor, the guard and the unwinder.
#[derive(Debug)]
pub(crate) struct Shared {
    spans: SyncSender<SpanData>,
    /// Spans queued since the last `Batch` wake-up.
    pending: std::sync::atomic::AtomicUsize,
    max_batch: usize,
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
        match self.spans.try_send(span) {
            Ok(()) => {
                if self.pending.fetch_add(1, Ordering::Relaxed) + 1 >= self.max_batch {
                    self.pending.store(0, Ordering::Relaxed);
                    // Full control channel: a wake-up is already on its way.
                    let _ = self.tx.try_send(Msg::Batch);
                }
            }
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
    let (spans, span_rx) = mpsc::sync_channel::<SpanData>(config.max_queue);
    let (tx, rx) = mpsc::sync_channel::<Msg>(16);
    let shared = Arc::new(Shared {
        spans,
        pending: std::sync::atomic::AtomicUsize::new(0),
        max_batch: config.max_batch,
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
        .spawn(move || run(config, resource, jsonlines_path, parent, rx, span_rx));
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
    span_rx: Receiver<SpanData>,
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

    // Exports everything queued, in batches of at most max_batch.
    let mut drain = |batch: &mut Vec<SpanData>| loop {
        while batch.len() < config.max_batch {
            match span_rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return;
        }
        export(batch);
    };
    loop {
        match rx.recv_timeout(config.schedule_delay) {
            Ok(Msg::Batch) | Err(RecvTimeoutError::Timeout) => drain(&mut batch),
            Ok(Msg::Flush(ack)) => {
                drain(&mut batch);
                let _ = ack.send(());
            }
            Ok(Msg::Shutdown(ack)) => {
                drain(&mut batch);
                let _ = ack.send(());
                break;
            }
            Err(RecvTimeoutError::Disconnected) => {
                drain(&mut batch);
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
