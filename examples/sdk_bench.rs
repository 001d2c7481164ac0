//! Per-span cost on the program's thread and run time of a paced workload (~1,000 spans/s), for
//! scripts/bench-sdk.sh. `sdk_bench MODE SECONDS [LABEL]` with MODE:
//!   sdk    otel_run_sdk::init() (configured by the environment; OTEL_TRACES_EXPORTER=none for "none")
//!   plain  opentelemetry_sdk + opentelemetry-otlp set up by hand: batch processor, HTTP exporter
//!          configured by the same OTEL_EXPORTER_OTLP_TRACES_* variables
//!   off    no tracing at all (the workload alone)
//! Prints one line: `LABEL spans wall_s span_us burst_us` (LABEL defaults to MODE).

use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// 1 ms of arithmetic, the work inside each span. Bounded by the clock rather than calibrated,
/// so every mode does the same amount of wall time of work and the run time's excess over
/// spans × 1 ms is what tracing cost (including any preemption it caused).
fn work() -> f64 {
    let t = Instant::now();
    let mut x = 1.0f64;
    let mut i = 0u64;
    while t.elapsed() < Duration::from_millis(1) {
        for _ in 0..100 {
            x = black_box(x * 1.000_000_1 + (i as f64) * 1e-12);
            i += 1;
        }
    }
    x
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "sdk".into());
    let seconds: f64 = args.next().map_or(5.0, |s| s.parse().expect("SECONDS"));
    let label = args.next().unwrap_or_else(|| mode.clone());

    let mut guard = None;
    let mut plain_provider = None;
    let tracer: Option<opentelemetry_sdk::trace::SdkTracer> = match mode.as_str() {
        "sdk" => {
            guard = Some(otel_run_sdk::init().expect("init"));
            Some(otel_run_sdk::tracer_named("bench"))
        }
        "plain" => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .build()
                .expect("exporter");
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .build();
            let t = provider.tracer("bench");
            plain_provider = Some(provider);
            Some(t)
        }
        "off" => None,
        other => panic!("unknown mode {other}"),
    };

    // Paced: one span per ~1 ms of work.
    let n = (seconds * 1000.0) as u64;
    let mut in_span_calls = Duration::ZERO;
    let start = Instant::now();
    for i in 0..n {
        let t0 = Instant::now();
        let span = tracer.as_ref().map(|t| {
            let mut s = t.start("step");
            s.set_attribute(KeyValue::new("i", i as i64));
            s
        });
        let t1 = Instant::now();
        black_box(work());
        let t2 = Instant::now();
        if let Some(mut s) = span {
            s.end();
        }
        in_span_calls += (t1 - t0) + t2.elapsed();
    }
    let wall = start.elapsed();

    // Burst: back-to-back spans, the pure cost of start + attribute + end.
    let burst = 20_000u32;
    let t = Instant::now();
    if let Some(tr) = &tracer {
        for i in 0..burst {
            let mut s = tr.start("burst");
            s.set_attribute(KeyValue::new("i", i as i64));
            s.end();
        }
    }
    let burst_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(burst);
    println!(
        "{label} {n} {:.3} {:.3} {:.3}",
        wall.as_secs_f64(),
        in_span_calls.as_secs_f64() * 1e6 / n as f64,
        burst_us
    );
    if let Some(p) = plain_provider {
        let _ = p.shutdown();
    }
    drop(guard);
}
