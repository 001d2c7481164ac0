//! OTLP/HTTP protobuf load generator for scripts/bench-sink.sh: sends BATCHES requests of 512
//! spans each (encoded once), CONCURRENCY at a time, to the endpoint in
//! OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (with OTEL_EXPORTER_OTLP_TRACES_HEADERS), so the same
//! binary loads otel-run's sink (run as its program) and rotel. Prints one line:
//! `spans=N seconds=S spans_per_s=R failed=F`.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::Event, ResourceSpans, ScopeSpans, Span, Status};
use otel_run::attr;
use otel_run::otlp::{OtlpClient, OtlpSettings, Protocol};
use prost::Message;
use std::sync::Arc;
use std::time::Instant;

const SPANS_PER_BATCH: usize = 512;

fn batch() -> Bytes {
    let spans = (0..SPANS_PER_BATCH)
        .map(|i| Span {
            trace_id: [7u8; 16].to_vec(),
            span_id: ((i as u64) + 1).to_be_bytes().to_vec(),
            parent_span_id: 1u64.to_be_bytes().to_vec(),
            name: format!("solver.iteration.{}", i % 16),
            kind: 1,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64 * 1000,
            end_time_unix_nano: 1_700_000_000_000_500_000 + i as u64 * 1000,
            attributes: vec![
                attr::string("solver.name", "cg"),
                attr::int("solver.iteration", i as i64),
                attr::double("solver.residual", 1e-6 * i as f64),
                attr::boolean("solver.converged", i % 2 == 0),
                attr::string("mesh.file", "/scratch/run/mesh.h5"),
                attr::int("mesh.cells", 1_048_576),
            ],
            events: vec![Event {
                time_unix_nano: 1_700_000_000_000_200_000,
                name: "checkpoint".into(),
                attributes: vec![attr::int("bytes", 4096)],
                dropped_attributes_count: 0,
            }],
            status: Some(Status {
                code: 0,
                message: String::new(),
            }),
            ..Default::default()
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    attr::string("service.name", "load"),
                    attr::int("mpi.rank", 0),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "load".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    Bytes::from(request.encode_to_vec())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let batches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let settings = OtlpSettings {
        traces_endpoint: std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").ok(),
        traces_headers: std::env::var("OTEL_EXPORTER_OTLP_TRACES_HEADERS").ok(),
        traces_protocol: Some(Protocol::HttpProtobuf),
        timeout: Some(30_000),
        ..Default::default()
    };
    let client = Arc::new(OtlpClient::new(settings.resolve().expect("endpoint")).expect("client"));
    let body = batch();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (sent, failed, secs) = rt.block_on(async {
        let start = Instant::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, body, next) = (client.clone(), body.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut bad) = (0usize, 0usize);
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < batches {
                    match client.export_encoded(body.clone()).await {
                        Ok(_) => ok += SPANS_PER_BATCH,
                        Err(_) => bad += SPANS_PER_BATCH,
                    }
                }
                (ok, bad)
            }));
        }
        let (mut ok, mut bad) = (0, 0);
        for t in tasks {
            let (o, b) = t.await.unwrap();
            ok += o;
            bad += b;
        }
        (ok, bad, start.elapsed().as_secs_f64())
    });
    println!(
        "spans={sent} seconds={secs:.3} spans_per_s={:.0} failed={failed}",
        sent as f64 / secs
    );
}
