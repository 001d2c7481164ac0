//! The program side of [otel-run](https://github.com/): one call configures OpenTelemetry from the
//! environment otel-run gives its child (or the standard `OTEL_*` variables without otel-run).
//!
//! ```no_run
//! let _otel = otel_run_sdk::init()?;      // a guard: flushes every ended span when dropped
//! otel_run_sdk::ensure_spans_on_exit();   // SIGTERM/SIGINT/SIGHUP: open spans end as ERROR, flushed
//! let tracer = otel_run_sdk::tracer();
//! # Ok::<(), otel_run_sdk::Error>(())
//! ```
//!
//! What is read: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_EXPORTER`
//! (`otlp`, `jsonlines`, `console`, `none`, comma lists), `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`,
//! `_PROTOCOL` (`http/protobuf`; `grpc` with the `grpc` feature), `_HEADERS`, `_TIMEOUT`,
//! `_COMPRESSION` (`gzip`), `OTEL_EXPORTER_JSONLINES_PATH`, `TRACEPARENT`/`TRACESTATE`,
//! `OTEL_SDK_DISABLED`, `OTEL_BSP_SCHEDULE_DELAY`/`_MAX_QUEUE_SIZE`/`_MAX_EXPORT_BATCH_SIZE`.
//! With none of them set nothing is exported and nothing is printed. A malformed value prints one
//! warning on stderr and the default applies; `init` never panics.

mod config;
mod ids;
pub mod jsonlines;
mod pipeline;
mod unwind;

#[cfg(feature = "mpi")]
pub mod mpi;

#[cfg(feature = "tracing")]
mod tracing_support;

pub use config::{ExporterKind, Protocol};
pub use unwind::{ensure_spans_on_exit, ensure_spans_on_exit_within};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Instrumentation scope name of the spans this crate starts itself.
pub const SCOPE: &str = "otel-run-sdk";

#[derive(Debug)]
pub enum Error {
    /// `init` ran before in this process; the first configuration stays.
    AlreadyInitialized,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::AlreadyInitialized => {
                f.write_str("otel_run_sdk::init was already called in this process")
            }
        }
    }
}

impl std::error::Error for Error {}

/// What `init` set up, for the unwinder and the collective tracer.
pub(crate) struct State {
    pub provider: SdkTracerProvider,
    /// `None` when no exporter is configured (nothing to flush).
    pub shared: Option<Arc<pipeline::Shared>>,
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub parent: Option<config::Parent>,
}

static STATE: OnceLock<State> = OnceLock::new();

pub(crate) fn state() -> Option<&'static State> {
    STATE.get()
}

/// One line on stderr, prefixed so the user knows who speaks.
pub(crate) fn warn(msg: &str) {
    eprintln!("otel-run-sdk: warning: {msg}");
}

/// Flushes and shuts the provider down when dropped, bounded by the exporter timeout
/// (`OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s). Keep it alive for the program's whole life,
/// e.g. `let _otel = init()?;` in `main` before `mpi::initialize()` so it drops after
/// `MPI_Finalize`.
#[must_use = "dropping the guard shuts tracing down at once"]
pub struct Guard {
    done: bool,
}

impl Guard {
    /// Exports every span ended so far; `false` if the bound passed first.
    pub fn flush(&self) -> bool {
        match state().and_then(|s| s.shared.as_ref()) {
            Some(shared) => shared.flush(shared.timeout),
            None => true,
        }
    }

    /// What `init` configured: the exporters in use.
    pub fn exporters(&self) -> Vec<ExporterKind> {
        CONFIGURED.get().cloned().unwrap_or_default()
    }
}

static CONFIGURED: OnceLock<Vec<ExporterKind>> = OnceLock::new();

impl Drop for Guard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let Some(state) = state() else { return };
        // Shutting the provider down shuts the processor down: everything queued is exported
        // first, and the wait is bounded by the exporter timeout.
        let bound = state
            .shared
            .as_ref()
            .map_or(Duration::from_secs(1), |s| s.timeout);
        let _ = state.provider.shutdown_with_timeout(bound);
        if let Some(shared) = &state.shared {
            let dropped = shared.dropped.load(std::sync::atomic::Ordering::Relaxed);
            if dropped > 0 {
                warn(&format!(
                    "{dropped} spans were dropped because the export queue was full (OTEL_BSP_MAX_QUEUE_SIZE)"
                ));
            }
        }
    }
}

/// Configures the global tracer provider from the environment and returns the guard that
/// flushes it. With the `tracing` feature it also installs a `tracing` subscriber whose spans
/// become OpenTelemetry spans, unless the program installed one already (then add
/// [`tracing_layer`] to yours).
pub fn init() -> Result<Guard, Error> {
    init_from(&|name| std::env::var(name).ok())
}

fn init_from(var: &dyn Fn(&str) -> Option<String>) -> Result<Guard, Error> {
    if STATE.get().is_some() {
        return Err(Error::AlreadyInitialized);
    }
    #[cfg_attr(feature = "grpc", allow(unused_mut))]
    let mut config = config::from_lookup(var);
    for w in &config.warnings {
        warn(w);
    }
    #[cfg(not(feature = "grpc"))]
    if config.exporters.contains(&ExporterKind::Otlp) && config.otlp.protocol == Protocol::Grpc {
        // otel-run's sink serves both protocols on one port, so the same endpoint works.
        config.otlp.protocol = Protocol::HttpProtobuf;
        config.otlp.endpoint = format!("{}/v1/traces", config.otlp.endpoint.trim_end_matches('/'));
        warn(&format!(
            "OTLP protocol grpc needs otel-run-sdk's `grpc` feature; exporting http/protobuf to {}",
            config.otlp.endpoint
        ));
    }

    let resource = build_resource(&config);
    let (sampler, ts_warning) = ids::ContractSampler::new(config.parent.as_ref());
    if let Some(w) = ts_warning {
        warn(&w);
    }
    let mut builder = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_sampler(sampler)
        .with_id_generator(ids::ContractIds::new(config.parent.as_ref()));

    let mut jsonlines_path = None;
    if config.exporters.contains(&ExporterKind::JsonLines) {
        match jsonlines::expand_path(&config.jsonlines_path, var) {
            Ok(p) => jsonlines_path = Some(p),
            Err(e) => {
                warn(&format!(
                    "OTEL_EXPORTER_JSONLINES_PATH: {e}; using {}",
                    config::DEFAULT_JSONLINES_PATH
                ));
                jsonlines_path = jsonlines::expand_path(config::DEFAULT_JSONLINES_PATH, var).ok();
            }
        }
    }
    let shared = if config.exporters.is_empty() {
        None
    } else {
        let shared = pipeline::start(&config, resource, jsonlines_path);
        builder = builder.with_span_processor(pipeline::Processor {
            shared: shared.clone(),
        });
        Some(shared)
    };
    let provider = builder.build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let _ = CONFIGURED.set(config.exporters.clone());
    if STATE
        .set(State {
            provider,
            shared,
            parent: config.parent.clone(),
        })
        .is_err()
    {
        return Err(Error::AlreadyInitialized);
    }
    #[cfg(feature = "tracing")]
    tracing_support::install();
    Ok(Guard { done: false })
}

fn build_resource(config: &config::Config) -> Resource {
    let mut attrs = vec![KeyValue::new("service.name", config.service_name.clone())];
    for (k, v) in &config.resource {
        attrs.push(typed_attribute(k, v));
    }
    attrs.extend([
        KeyValue::new("telemetry.sdk.language", "rust"),
        KeyValue::new("telemetry.sdk.name", "opentelemetry"),
        KeyValue::new("telemetry.sdk.version", "0.33"),
    ]);
    Resource::builder_empty().with_attributes(attrs).build()
}

/// An environment variable carries no types; the integer attributes otel-run itself writes as
/// integers (rank, size, pid) are typed back, so the program's spans group with the launcher's.
fn typed_attribute(k: &str, v: &str) -> KeyValue {
    const INTS: [&str; 4] = ["mpi.rank", "mpi.size", "mpi.local_rank", "process.pid"];
    if INTS.contains(&k) {
        if let Ok(n) = v.parse::<i64>() {
            return KeyValue::new(k.to_string(), n);
        }
    }
    KeyValue::new(k.to_string(), v.to_string())
}

/// A tracer of the provider `init` configured (a no-op tracer before `init`).
pub fn tracer() -> SdkTracer {
    match state() {
        Some(s) => s.provider.tracer(SCOPE),
        None => SdkTracerProvider::builder().build().tracer(SCOPE),
    }
}

/// A tracer with the program's own instrumentation scope name.
pub fn tracer_named(scope: &'static str) -> SdkTracer {
    match state() {
        Some(s) => s.provider.tracer(scope),
        None => SdkTracerProvider::builder().build().tracer(scope),
    }
}

/// The `tracing` layer that turns tracing spans into spans of `init`'s provider, for programs
/// that build their own subscriber.
#[cfg(feature = "tracing")]
pub fn tracing_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_support::layer()
}

/// Default bound of the unwinder's flush.
pub const DEFAULT_EXIT_FLUSH: Duration = Duration::from_secs(1);
