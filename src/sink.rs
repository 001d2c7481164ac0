//! The loopback OTLP sink (DESIGN.md §1, §6): a tiny OTLP receiver on 127.0.0.1 for the child's
//! own SDK, so spans from any language land in the rank's span file with no code change.
//!
//! One ephemeral port serves OTLP/gRPC (HTTP/2 cleartext) and OTLP/HTTP (`POST /v1/traces`,
//! protobuf or JSON, optionally gzip), because children pick their transport from build features
//! and defaults we cannot see. Every request must carry the per-launch token that only the child's
//! environment holds; bodies are limited after decompression; malformed input is answered with
//! an error and the sink keeps serving. It runs on otel-run's current-thread runtime: no threads,
//! no polling — an idle sink costs nothing.

use crate::contract::SINK_TOKEN_HEADER;
use crate::format::SpanFile;
use crate::ids::{hex, SpanId, TraceId};
use crate::{attr, semconv};
use bytes::{Buf, Bytes};
use flate2::read::GzDecoder;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use std::convert::Infallible;
use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

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
    /// Copies of received batches for the collector, when `otlp` is among the exporters.
    pub forward: Option<mpsc::Sender<Vec<ResourceSpans>>>,
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
    /// Spans that could not be queued for forwarding (queue full); they are in the file.
    pub forward_dropped: u64,
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

    pub fn stats(&self) -> SinkStats {
        *self.state.stats.lock().unwrap()
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
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
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

/// Response body: the message, then (for gRPC) the trailers carrying the status.
pub struct Body {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

/// google.rpc.Status, the body OTLP/HTTP servers answer errors with.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Grpc,
    Protobuf,
    Json,
}

/// A refusal: HTTP status and gRPC code with a message.
#[derive(Debug)]
struct Refusal {
    http: StatusCode,
    grpc: u32,
    message: String,
}

fn refuse(http: StatusCode, grpc: u32, message: impl Into<String>) -> Refusal {
    Refusal {
        http,
        grpc,
        message: message.into(),
    }
}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Response<Body>, Infallible> {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let grpc = content_type.starts_with("application/grpc");
    let result = process(req, &state, grpc, &content_type).await;
    let mut stats = state.stats.lock().unwrap();
    stats.requests += 1;
    Ok(match result {
        Ok((wire, response)) => respond_ok(wire, &response),
        Err(r) => {
            stats.requests_refused += 1;
            tracing::debug!("sink: refused a request: {} ({})", r.message, r.http);
            respond_err(grpc, &content_type, r)
        }
    })
}

async fn process(
    req: Request<Incoming>,
    state: &State,
    grpc: bool,
    content_type: &str,
) -> Result<(Wire, ExportTraceServiceResponse), Refusal> {
    // The token first: nothing about the request is looked at for an unauthenticated caller.
    let token_ok = req
        .headers()
        .get(SINK_TOKEN_HEADER)
        .is_some_and(|v| constant_time_eq(v.as_bytes(), state.config.token.as_bytes()));
    if !token_ok {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            16,
            "missing or wrong otel-run sink token",
        ));
    }
    if req.method() != http::Method::POST {
        return Err(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            12,
            "only POST is served",
        ));
    }
    let path = req.uri().path().to_string();
    let wire = if grpc {
        if !path.ends_with(GRPC_EXPORT_PATH) {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                12,
                format!("no gRPC method {path}"),
            ));
        }
        Wire::Grpc
    } else {
        if !path.ends_with("/v1/traces") {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                12,
                format!("no such path {path} (traces go to /v1/traces)"),
            ));
        }
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/x-protobuf" | "application/protobuf" => Wire::Protobuf,
            "application/json" => Wire::Json,
            other => {
                return Err(refuse(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    3,
                    format!(
                        "content type {other:?} (want application/x-protobuf or application/json)"
                    ),
                ))
            }
        }
    };
    let gzip_header = |name: &str| -> Result<bool, Refusal> {
        match req
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
        {
            None | Some("identity") | Some("") => Ok(false),
            Some("gzip") => Ok(true),
            Some(other) => Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                12,
                format!("{name} {other:?} (gzip only)"),
            )),
        }
    };
    let gzip = gzip_header(if grpc {
        "grpc-encoding"
    } else {
        "content-encoding"
    })?;
    let limit = state.config.body_limit;
    let body = Limited::new(req.into_body(), limit + 5)
        .collect()
        .await
        .map_err(
            |e| match e.downcast_ref::<http_body_util::LengthLimitError>() {
                Some(_) => refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    8,
                    format!("request body over the {limit}-byte limit"),
                ),
                None => refuse(
                    StatusCode::BAD_REQUEST,
                    3,
                    format!("reading the request body: {e}"),
                ),
            },
        )?
        .to_bytes();

    let message = if grpc {
        let mut b = body;
        if b.len() < 5 {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                3,
                "gRPC message shorter than its 5-byte prefix",
            ));
        }
        let compressed = b.get_u8();
        let len = b.get_u32() as usize;
        if len != b.len() {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                3,
                format!("gRPC prefix announces {len} bytes, body has {}", b.len()),
            ));
        }
        match compressed {
            0 => bounded(b, limit)?,
            1 if gzip => gunzip(&b, limit)?,
            _ => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    3,
                    "compressed gRPC message without grpc-encoding: gzip",
                ))
            }
        }
    } else if gzip {
        gunzip(&body, limit)?
    } else {
        bounded(body, limit)?
    };

    let request = match wire {
        Wire::Json => {
            serde_json::from_slice::<ExportTraceServiceRequest>(&message).map_err(|e| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    3,
                    format!("invalid OTLP/JSON: {e}"),
                )
            })?
        }
        _ => ExportTraceServiceRequest::decode(message).map_err(|e| {
            refuse(
                StatusCode::BAD_REQUEST,
                3,
                format!("invalid OTLP protobuf: {e}"),
            )
        })?,
    };
    let response = accept(state, request.resource_spans);
    Ok((wire, response))
}

fn bounded(b: Bytes, limit: usize) -> Result<Bytes, Refusal> {
    if b.len() > limit {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            8,
            format!("request body over the {limit}-byte limit"),
        ));
    }
    Ok(b)
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
                3,
                format!("invalid gzip body: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            8,
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
    let mut forward_dropped = 0;
    if let (Some(tx), true) = (&cfg.forward, kept > 0) {
        if tx.try_send(batch).is_err() {
            forward_dropped = kept;
        }
    }
    let mut stats = state.stats.lock().unwrap();
    stats.spans_received += received;
    stats.spans_rejected += rejected;
    stats.spans_written += written;
    stats.spans_adopted += adopted;
    stats.forward_dropped += forward_dropped;
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

fn respond_ok(wire: Wire, response: &ExportTraceServiceResponse) -> Response<Body> {
    let (content_type, data, trailers) = match wire {
        Wire::Grpc => {
            let msg = response.encode_to_vec();
            let mut framed = Vec::with_capacity(msg.len() + 5);
            framed.push(0);
            framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
            framed.extend_from_slice(&msg);
            let mut t = HeaderMap::new();
            t.insert("grpc-status", HeaderValue::from_static("0"));
            ("application/grpc", Bytes::from(framed), Some(t))
        }
        Wire::Protobuf => (
            "application/x-protobuf",
            Bytes::from(response.encode_to_vec()),
            None,
        ),
        Wire::Json => (
            "application/json",
            Bytes::from(serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec())),
            None,
        ),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .body(Body {
            data: Some(data),
            trailers,
        })
        .expect("static response parts")
}

fn respond_err(grpc: bool, content_type: &str, r: Refusal) -> Response<Body> {
    if grpc {
        // Trailers-only response: the status travels in the headers.
        let message: String = r
            .message
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/grpc")
            .header("grpc-status", r.grpc.to_string())
            .header(
                "grpc-message",
                HeaderValue::from_str(&message).unwrap_or(HeaderValue::from_static("refused")),
            )
            .body(Body {
                data: None,
                trailers: None,
            })
            .expect("static response parts");
    }
    let status = RpcStatus {
        code: r.grpc as i32,
        message: r.message,
    };
    let (ct, data) = if content_type.starts_with("application/json") {
        (
            "application/json",
            serde_json::json!({"code": status.code, "message": status.message})
                .to_string()
                .into_bytes(),
        )
    } else {
        ("application/x-protobuf", status.encode_to_vec())
    };
    Response::builder()
        .status(r.http)
        .header("content-type", ct)
        .body(Body {
            data: Some(Bytes::from(data)),
            trailers: None,
        })
        .expect("static response parts")
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
