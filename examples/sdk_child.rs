//! A real Rust program instrumented with otel-run-sdk, for the tests: `init()`, the unwinder, an
//! OpenTelemetry span with a child, and a `#[tracing::instrument]`ed function.
//!
//! `sdk_child` ends its spans and exits 0; `sdk_child hang` opens spans (one of them a tracing
//! span), prints `ready` and waits for a signal; `sdk_child nonfinite` also puts NaN, +Inf and
//! -Inf double attributes (`loss`, `up`, `down`) on the `work` span.

use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
use opentelemetry::KeyValue;

#[tracing::instrument(fields(grid = 64_u64, phase = "solve"))]
fn solve(iterations: u64, label: &str) -> u64 {
    (0..iterations).sum()
}

#[tracing::instrument]
fn wait_for_signal(reason: &str) {
    println!("ready");
    loop {
        std::thread::park();
    }
}

fn main() {
    let _otel = otel_run_sdk::init().expect("init");
    otel_run_sdk::ensure_spans_on_exit();
    let tracer = otel_run_sdk::tracer_named("sdk_child");
    let mode = std::env::args().nth(1);
    let hang = mode.as_deref() == Some("hang");
    tracer.in_span("work", |cx| {
        cx.span().set_attribute(KeyValue::new("work.items", 3));
        if mode.as_deref() == Some("nonfinite") {
            cx.span().set_attribute(KeyValue::new("loss", f64::NAN));
            cx.span().set_attribute(KeyValue::new("up", f64::INFINITY));
            cx.span()
                .set_attribute(KeyValue::new("down", f64::NEG_INFINITY));
        }
        let mut inner = tracer.start("inner");
        inner.add_event("halfway", vec![KeyValue::new("done", 0.5)]);
        inner.end();
        println!("sum {}", solve(10, "ten"));
        if hang {
            wait_for_signal("test");
        }
    });
}
