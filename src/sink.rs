//! The loopback OTLP sink: a tiny OTLP receiver on 127.0.0.1 for the child's own SDK, so spans
//! from any language land in the rank's span file with no code change.
//!
//! One ephemeral port serves OTLP/gRPC (tonic's generated `TraceServiceServer`, HTTP/2 cleartext)
//! and OTLP/HTTP (`POST /v1/traces`, protobuf or JSON, optionally gzip), because children pick
//! their transport from build features and defaults we cannot see. hyper accepts both HTTP/1 and
//! HTTP/2 on the socket; each request is routed by its content type. Every request must carry the
//! per-launch token that only the child's environment holds; bodies are limited after
//! decompression; malformed input is answered with an error and the sink keeps serving. It runs
//! on otel-run's current-thread runtime: no threads, no polling — an idle sink costs nothing.

use crate::contract::SINK_TOKEN_HEADER;
use crate::format::SpanFile;
use crate::ids::{hex, SpanId, TraceId};
use crate::{attr, semconv};
use bytes::Bytes;
use flate2::read::GzDecoder;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use std::convert::Infallible;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;
use tonic::Code;
use tower::ServiceExt;

/// What the sink needs to know about the launch.
pub struct SinkConfig {
    pub token: String,
    /// The job's trace and the rank's process span: where adopted spans are re-homed.
    pub trace_id: TraceId,
    pub process_span_id: SpanId,
    /// Re-home spans of foreign traces into the job's trace (off: write them unchanged).
    pub adopt: bool,
    /// Largest accepted request body, after decompression.
    pub body_limit: usize,
    pub file: Arc<Mutex<Option<SpanFile>>>,
    /// Received batches go on to the collector (store and forward), when `otlp` is an exporter.
    pub forward: Option<crate::spill::Queue>,
}

/// Exact counts of what the sink did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SinkStats {
    pub requests: u64,
    pub spans_received: u64,
    pub spans_written: u64,
    pub spans_adopted: u64,
    /// Spans refused inside otherwise valid requests (invalid ids): reported as partial success.
    pub spans_rejected: u64,
    pub requests_refused: u64,
}

struct State {
    config: SinkConfig,
    stats: Mutex<SinkStats>,
}

pub struct Sink {
    endpoint: String,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Sink {
    /// Binds 127.0.0.1 on an ephemeral port and starts serving on the current runtime.
    pub async fn start(config: SinkConfig) -> std::io::Result<Sink> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let endpoint = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let state = Arc::new(State {
            config,
            stats: Mutex::new(SinkStats::default()),
        });
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(listener, state.clone(), stopped));
        Ok(Sink {
            endpoint,
            state,
            stop,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Stops accepting (after taking what is already queued on the socket), lets connections
    /// finish the requests they carry, and waits at most `bound` for them.
    pub async fn shutdown(self, bound: Duration) -> SinkStats {
        let _ = self.stop.send(true);
        if tokio::time::timeout(bound, self.server).await.is_err() {
            tracing::warn!("sink: connections still open after {bound:?}; closing them");
        }
        let stats = *self.state.stats.lock().unwrap();
        stats
    }
}

async fn serve(listener: TcpListener, state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let grpc = TraceServiceServer::new(Receiver(state.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(state.config.body_limit);
    loop {
        let accepted = tokio::select! {
            biased;
            // Connections already queued by the kernel are served before stopping: a child that
            // exported and exited must not lose that request.
            a = listener.accept() => a,
            // A poll, not a zero timeout: tokio's timer would wait for its next 1 ms tick.
            _ = stopped.changed() => match std::future::poll_fn(|cx| Poll::Ready(listener.poll_accept(cx))).await {
                Poll::Ready(a) => a,
                Poll::Pending => break,
            },
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("sink: accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (state, grpc) = (state.clone(), grpc.clone());
        let service =
            hyper::service::service_fn(move |req| route(req, state.clone(), grpc.clone()));
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("sink: connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Every request passes the token check, then goes to tonic's generated OTLP/gRPC service
/// (content type application/grpc, HTTP/2) or to the OTLP/HTTP handler (`POST /v1/traces`).
async fn route(
    req: Request<Incoming>,
    state: Arc<State>,
    grpc: TraceServiceServer<Receiver>,
) -> Result<Response<tonic::body::Body>, Infallible> {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let is_grpc = content_type.starts_with("application/grpc");
    // The token first: nothing about the request is looked at for an unauthenticated caller.
    let token_ok = req
        .headers()
        .get(SINK_TOKEN_HEADER)
        .is_some_and(|v| constant_time_eq(v.as_bytes(), state.config.token.as_bytes()));
    let result = if !token_ok {
        Err(refuse(
            StatusCode::UNAUTHORIZED,
            Code::Unauthenticated,
            "missing or wrong otel-run sink token",
        ))
    } else if is_grpc {
        let response = grpc.oneshot(req).await.unwrap_or_else(|e| match e {});
        Ok(grpc_refusals(response))
    } else {
        http_export(req, &state, &content_type).await
    };
    let response = match result {
        Ok(response) => response,
        Err(r) if is_grpc => tonic::Status::new(r.grpc, r.message).into_http(),
        Err(r) => http_error(&content_type, r),
    };
    // A refused gRPC call is a trailers-only answer: its status is in the headers.
    let refused = if is_grpc {
        tonic::Status::from_header_map(response.headers())
            .filter(|s| s.code() != Code::Ok)
            .map(|s| format!("gRPC {:?}: {}", s.code(), s.message()))
    } else {
        (response.status() != StatusCode::OK).then(|| format!("HTTP {}", response.status()))
    };
    let mut stats = state.stats.lock().unwrap();
    stats.requests += 1;
    if let Some(why) = refused {
        stats.requests_refused += 1;
        tracing::debug!("sink: refused a request ({why})");
    }
    Ok(response)
}

/// tonic answers a request it cannot decode with codes that mean something else to an OTLP
/// client. The exporter spec retries OUT_OF_RANGE (tonic's "message over the size limit"), so a
/// child would resend an oversized batch until its timeout; it becomes RESOURCE_EXHAUSTED
/// without RetryInfo, which the spec says not to retry. tonic reports undecodable protobuf, bad
/// gzip and truncated messages as INTERNAL; they are the client's fault: INVALID_ARGUMENT. Our
/// own service answers neither code, so only tonic's decoding can produce them.
fn grpc_refusals(response: Response<tonic::body::Body>) -> Response<tonic::body::Body> {
    let Some(status) = tonic::Status::from_header_map(response.headers()) else {
        return response;
    };
    let code = match status.code() {
        Code::OutOfRange => Code::ResourceExhausted,
        Code::Internal => Code::InvalidArgument,
        _ => return response,
    };
    tonic::Status::new(code, status.message()).into_http()
}

/// The gRPC side: tonic decodes (size limit, gzip), this accepts.
struct Receiver(Arc<State>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        Ok(tonic::Response::new(accept(
            &self.0,
            request.into_inner().resource_spans,
        )))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Protobuf,
    Json,
}

/// A refusal: HTTP status and gRPC code with a message.
#[derive(Debug)]
struct Refusal {
    http: StatusCode,
    grpc: Code,
    message: String,
}

fn refuse(http: StatusCode, grpc: Code, message: impl Into<String>) -> Refusal {
    Refusal {
        http,
        grpc,
        message: message.into(),
    }
}

/// OTLP/HTTP: `POST /v1/traces`, protobuf or JSON, optionally gzip.
async fn http_export(
    req: Request<Incoming>,
    state: &State,
    content_type: &str,
) -> Result<Response<tonic::body::Body>, Refusal> {
    if req.method() != http::Method::POST {
        return Err(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Unimplemented,
            "only POST is served",
        ));
    }
    let path = req.uri().path();
    if !path.ends_with("/v1/traces") {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            Code::Unimplemented,
            format!("no such path {path} (traces go to /v1/traces)"),
        ));
    }
    let wire = match content_type.split(';').next().unwrap_or("").trim() {
        "application/x-protobuf" | "application/protobuf" => Wire::Protobuf,
        "application/json" => Wire::Json,
        other => {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::InvalidArgument,
                format!("content type {other:?} (want application/x-protobuf or application/json)"),
            ))
        }
    };
    let gzip = match req
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        None | Some("identity") | Some("") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::Unimplemented,
                format!("content-encoding {other:?} (gzip only)"),
            ))
        }
    };
    let limit = state.config.body_limit;
    let body = Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(
            |e| match e.downcast_ref::<http_body_util::LengthLimitError>() {
                Some(_) => refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Code::ResourceExhausted,
                    format!("request body over the {limit}-byte limit"),
                ),
                None => refuse(
                    StatusCode::BAD_REQUEST,
                    Code::InvalidArgument,
                    format!("reading the request body: {e}"),
                ),
            },
        )?
        .to_bytes();
    let message = if gzip { gunzip(&body, limit)? } else { body };
    let request = match wire {
        Wire::Json => {
            serde_json::from_slice::<ExportTraceServiceRequest>(&message).map_err(|e| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    Code::InvalidArgument,
                    format!("invalid OTLP/JSON: {e}"),
                )
            })?
        }
        Wire::Protobuf => ExportTraceServiceRequest::decode(message).map_err(|e| {
            refuse(
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                format!("invalid OTLP protobuf: {e}"),
            )
        })?,
    };
    let response = accept(state, request.resource_spans);
    let (content_type, data) = match wire {
        Wire::Protobuf => ("application/x-protobuf", response.encode_to_vec()),
        Wire::Json => (
            "application/json",
            serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
        ),
    };
    Ok(http_response(StatusCode::OK, content_type, data))
}

fn http_response(
    status: StatusCode,
    content_type: &str,
    data: Vec<u8>,
) -> Response<tonic::body::Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(tonic::body::Body::new(Full::new(Bytes::from(data))))
        .expect("static response parts")
}

/// OTLP/HTTP errors carry a google.rpc.Status, in the encoding the request used.
fn http_error(content_type: &str, r: Refusal) -> Response<tonic::body::Body> {
    if content_type.starts_with("application/json") {
        let json = serde_json::json!({"code": r.grpc as i32, "message": r.message});
        return http_response(r.http, "application/json", json.to_string().into_bytes());
    }
    let status = tonic_types::Status {
        code: r.grpc as i32,
        message: r.message,
        details: Vec::new(),
    };
    http_response(r.http, "application/x-protobuf", status.encode_to_vec())
}

/// Decompresses at most `limit` bytes: a gzip bomb is refused after `limit`, not after it fills memory.
fn gunzip(b: &[u8], limit: usize) -> Result<Bytes, Refusal> {
    let mut out = Vec::new();
    GzDecoder::new(b)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            refuse(
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                format!("invalid gzip body: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            format!("decompressed body over the {limit}-byte limit"),
        ));
    }
    Ok(Bytes::from(out))
}

/// Validates, adopts, writes and queues for forwarding; returns the OTLP answer.
fn accept(state: &State, mut batch: Vec<ResourceSpans>) -> ExportTraceServiceResponse {
    let cfg = &state.config;
    let received = crate::format::span_count(&batch) as u64;
    let mut rejected = 0u64;
    for rs in &mut batch {
        for ss in &mut rs.scope_spans {
            let before = ss.spans.len();
            ss.spans.retain(|s| {
                s.trace_id.len() == 16
                    && s.span_id.len() == 8
                    && (s.parent_span_id.is_empty() || s.parent_span_id.len() == 8)
            });
            rejected += (before - ss.spans.len()) as u64;
        }
    }
    let adopted = if cfg.adopt {
        adopt(&mut batch, &cfg.trace_id, &cfg.process_span_id)
    } else {
        0
    };
    let kept = received - rejected;
    let mut written = 0;
    if kept > 0 {
        if let Some(file) = cfg.file.lock().unwrap().as_mut() {
            match file.append(&batch) {
                Ok(()) => written = kept,
                Err(e) => tracing::warn!("sink: {e:#}"),
            }
        }
    }
    if let (Some(queue), true) = (&cfg.forward, kept > 0) {
        queue.submit(batch);
    }
    let mut stats = state.stats.lock().unwrap();
    stats.spans_received += received;
    stats.spans_rejected += rejected;
    stats.spans_written += written;
    stats.spans_adopted += adopted;
    ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: format!("{rejected} spans with invalid trace, span or parent ids"),
        }),
    }
}

/// Re-homes spans of other traces into the job's trace (DESIGN.md §6): the trace id becomes the
/// job's, the original is kept as an attribute, and parentless spans hang under the process span.
/// Spans already in the job's trace (children that honour TRACEPARENT) are left unchanged.
/// Returns how many spans were adopted.
pub fn adopt(batch: &mut [ResourceSpans], trace_id: &TraceId, process_span_id: &SpanId) -> u64 {
    let mut adopted = 0;
    for rs in batch {
        for ss in &mut rs.scope_spans {
            for span in &mut ss.spans {
                if span.trace_id.as_slice() == trace_id.as_slice() {
                    continue;
                }
                let original = hex(&span.trace_id);
                span.trace_id = trace_id.to_vec();
                attr::upsert(
                    &mut span.attributes,
                    attr::string(semconv::ORIGINAL_TRACE_ID, original),
                );
                if span.parent_span_id.is_empty() {
                    span.parent_span_id = process_span_id.to_vec();
                }
                adopted += 1;
            }
        }
    }
    adopted
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh 128-bit token, hex.
pub fn new_token() -> String {
    hex(&rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

    fn span(trace: u8, id: u8, parent: Option<u8>) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn adoption_rehomes_foreign_traces_only() {
        let job = [9u8; 16];
        let process = [7u8; 8];
        let mut batch = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span(1, 1, None), span(1, 2, Some(1)), span(9, 3, Some(7))],
                ..Default::default()
            }],
            ..Default::default()
        }];
        assert_eq!(adopt(&mut batch, &job, &process), 2);
        let spans = &batch[0].scope_spans[0].spans;
        assert!(spans.iter().all(|s| s.trace_id == job));
        assert_eq!(
            spans[0].parent_span_id, process,
            "root goes under the process span"
        );
        assert_eq!(spans[1].parent_span_id, vec![1; 8], "inner parents intact");
        assert_eq!(
            attr::get_str(&spans[0].attributes, semconv::ORIGINAL_TRACE_ID),
            Some(hex(&[1; 16]).as_str())
        );
        assert!(
            spans[2].attributes.is_empty(),
            "spans already in the job's trace are unchanged"
        );
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(new_token().len(), 32);
    }

    #[test]
    fn gzip_bombs_stop_at_the_limit() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 10 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 100_000);
        assert!(gunzip(&bomb, 1 << 20).is_err());
        assert_eq!(gunzip(&bomb, 16 << 20).unwrap().len(), 10 << 20);
    }
}
