//! `tracing` spans as OpenTelemetry spans of `init`'s provider (tracing-opentelemetry). Span
//! fields become attributes; a tracing span is started as an SDK span when first entered, so the
//! unwinder sees entered spans as open.

use tracing_subscriber::layer::SubscriberExt;

pub(crate) fn layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(crate::tracer())
}

/// Installs a registry with the OpenTelemetry layer as the global default, unless the program
/// already set one (then it composes [`crate::tracing_layer`] itself).
pub(crate) fn install() {
    if tracing::dispatcher::has_been_set() {
        return;
    }
    let subscriber = tracing_subscriber::registry().with(layer());
    // Losing the race to another thread's set_global_default is that thread's choice: keep it.
    let _ = tracing::subscriber::set_global_default(subscriber);
}
