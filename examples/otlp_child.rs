//! A real Rust OpenTelemetry SDK child for the sink tests: configured by environment only (the
//! sink's OTEL_EXPORTER_OTLP_TRACES_* variables; no code reads TRACEPARENT), it creates a nested
//! trace with events, a link, an ERROR status and attributes of every type, then flushes.
//! Prints the ids it created as `name span_id parent_id` lines on stdout.
//!
//! `otlp_child N` adds N spans `rust.extra` under the root (not printed), exported in batches
//! (OTEL_BSP_* apply) instead of one request per span: a load like a real program's.

use opentelemetry::trace::{
    Link, Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

fn main() {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .expect("OTLP exporter from the environment");
    let extra: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("otlp_child [EXTRA_SPANS]"))
        .unwrap_or(0);
    let builder = SdkTracerProvider::builder();
    let builder = if extra > 0 {
        builder.with_batch_exporter(exporter)
    } else {
        builder.with_simple_exporter(exporter)
    };
    let provider = builder
        .with_resource(
            Resource::builder()
                .with_attribute(KeyValue::new("child.language", "rust"))
                .build(),
        )
        .build();
    let tracer = provider.tracer("rust-child");

    let mut root = tracer
        .span_builder("rust.root")
        .with_kind(SpanKind::Server)
        .start(&tracer);
    root.set_attribute(KeyValue::new("s", "text"));
    root.set_attribute(KeyValue::new("b", true));
    root.set_attribute(KeyValue::new("i", 42i64));
    root.set_attribute(KeyValue::new("d", 2.5f64));
    root.set_attribute(KeyValue::new(
        "as",
        Value::Array(Array::String(vec![
            StringValue::from("x"),
            StringValue::from("y"),
        ])),
    ));
    root.set_attribute(KeyValue::new("ai", Value::Array(Array::I64(vec![1, 2, 3]))));
    let root_cx = opentelemetry::Context::current_with_span(root);
    let root_ctx = root_cx.span().span_context().clone();
    println!("rust.root {} -", root_ctx.span_id());

    let mut child = tracer
        .span_builder("rust.child")
        .with_links(vec![Link::with_context(root_ctx.clone())])
        .start_with_context(&tracer, &root_cx);
    child.add_event("checkpoint", vec![KeyValue::new("iteration", 3i64)]);
    child.set_status(Status::error("solver diverged"));
    println!(
        "rust.child {} {}",
        child.span_context().span_id(),
        root_ctx.span_id()
    );
    child.end();
    for i in 0..extra {
        let mut span = tracer.start_with_context("rust.extra", &root_cx);
        span.set_attribute(KeyValue::new("i", i as i64));
        span.end();
    }
    root_cx.span().end();
    provider.shutdown().expect("flush to the sink");
}
