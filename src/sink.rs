//! The loopback OTLP sink: a tiny OTLP receiver on 127.0.0.1 for the child's own SDK, so spans
//! from any language land in the rank's span file with no code change.
//!
//! One ephemeral port serves OTLP/gRPC (the unary Export call, HTTP/2 cleartext, framed and
//! decoded here) and OTLP/HTTP (`POST /v1/traces`, protobuf or JSON, optionally gzip), because
//! children pick their transport from build features and defaults we cannot see. hyper accepts
//! both HTTP/1 and HTTP/2 on the socket; each request is routed by its content type. Every request must carry the
//! per-launch token that only the child's environment holds; bodies are limited after
//! decompression; malformed input is answered with an error and the sink keeps serving. It runs
//! on otel-run's current-thread runtime: no threads, no polling — an idle sink costs nothing.

use crate::contract::SINK_TOKEN_HEADER;
use crate::format::SpanFile;
use crate::ids::{hex, SpanId, TraceId};
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
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
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Code;

/// Connections served at once. At the limit, the oldest connection that has not yet shown the
/// token is closed for a new one: strangers cannot lock the program out of its own sink.
pub const MAX_CONNECTIONS: usize = 128;
/// An HTTP/1 request's headers must arrive within this, and any connection (HTTP/1 or HTTP/2)
/// must have shown the token by then: hyper bounds HTTP/1 header reads itself, but an HTTP/2
/// client can trickle a header block (or open unauthenticated streams) for ever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no traffic for this long is closed (SDKs reconnect).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// HTTP/1 read buffer and HTTP/2 header list: what one connection may hold before its request
/// is even looked at.
const HEADER_BYTES: usize = 16 * 1024;
/// Request bodies held at once across all connections; beyond it requests are answered
/// 429 / RESOURCE_EXHAUSTED with Retry-After (they are retried, not lost).
pub const IN_FLIGHT_BUDGET: usize = 48 << 20;
/// Decoded objects (spans, events, links, attributes, attribute values) one request may hold.
/// Their structs are 30-200 times their smallest encoding (an empty Span is 2 bytes on the wire
/// and ~250 in memory), so a request is counted before it is decoded; SDKs send batches of 512.
pub const MAX_OBJECTS_PER_REQUEST: usize = 256 * 1024;
/// The largest `--sink-body-limit`, in MiB. A request becomes lines of the span file, and every
/// reader refuses a line over 128 MiB (`format::MAX_LINE_BYTES`), so no request may produce
/// one. The longest line one request can make is one span with the whole resource and scope:
/// text grows at most 6 times through JSON escaping (a control character becomes `\u0001`),
/// and each decoded object (at most [`MAX_OBJECTS_PER_REQUEST`], 2 bytes on the wire when
/// empty) at most ~100 bytes of field names and punctuation: 6 × 16 MiB + 100 × 256 Ki ≈
/// 121 MiB. `tests/attack.rs` writes and reads back such a line.
pub const MAX_BODY_LIMIT_MIB: u32 = 16;
/// How long an SDK is told to wait before retrying a request refused for lack of memory or disk.
const RETRY_AFTER_SECS: u64 = 1;
/// Back-off after a failed accept (EMFILE: the descriptor limit), instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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
    /// Print what is received as the console exporter prints otel-run's own spans (stderr).
    pub console: bool,
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
    /// Bytes of request bodies held now (see [`IN_FLIGHT_BUDGET`]).
    in_flight: Arc<tokio::sync::Semaphore>,
    connections: Mutex<Vec<Arc<Conn>>>,
    warnings: Mutex<RateLimit>,
}

/// One open connection: whether it has shown the token, and how to close it.
struct Conn {
    authenticated: std::sync::atomic::AtomicBool,
    close: tokio::sync::Notify,
    last_active: std::sync::atomic::AtomicU64,
}

/// At most one warning per second reaches the job's stderr; the rest are counted and mentioned.
struct RateLimit {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl State {
    fn warn(&self, message: std::fmt::Arguments) {
        let mut w = self.warnings.lock().unwrap();
        let now = std::time::Instant::now();
        if w.last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            w.suppressed += 1;
            return;
        }
        w.last = Some(now);
        if w.suppressed > 0 {
            tracing::warn!(
                "sink: {message} ({} similar warnings suppressed)",
                w.suppressed
            );
            w.suppressed = 0;
        } else {
            tracing::warn!("sink: {message}");
        }
    }
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
        let budget = IN_FLIGHT_BUDGET.max(config.body_limit);
        let state = Arc::new(State {
            config,
            stats: Mutex::new(SinkStats::default()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(budget)),
            connections: Mutex::new(Vec::new()),
            warnings: Mutex::new(RateLimit {
                last: None,
                suppressed: 0,
            }),
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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(HEADER_BYTES.max(8192));
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_header_list_size(HEADER_BYTES as u32)
        // No keep-alive pings: their traffic would keep an idle connection from timing out.
        .max_concurrent_streams(16);
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
                // EMFILE/ENFILE/ENOBUFS persist until a descriptor is freed: retrying at once
                // would spin at 100% CPU next to the program.
                state.warn(format_args!(
                    "accept failed: {e}; retrying in {ACCEPT_BACKOFF:?}"
                ));
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn_info = admit(&state);
        let (state2, info) = (state.clone(), conn_info.clone());
        let service =
            hyper::service::service_fn(move |req| route(req, state2.clone(), info.clone()));
        let io = Activity {
            inner: stream,
            conn: conn_info.clone(),
        };
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let state = state.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            // Until the connection shows the token; then only the idle timeout applies.
            let token_deadline = tokio::time::sleep(HEADER_READ_TIMEOUT);
            tokio::pin!(token_deadline);
            let mut token_checked = false;
            loop {
                tokio::select! {
                    r = &mut conn => {
                        if let Err(e) = r {
                            tracing::debug!("sink: connection ended: {e}");
                        }
                        break;
                    }
                    _ = conn_info.close.notified() => break,
                    _ = &mut token_deadline, if !token_checked => {
                        if !conn_info.authenticated.load(std::sync::atomic::Ordering::Relaxed) {
                            state.warn(format_args!(
                                "closed a connection that showed no token within {HEADER_READ_TIMEOUT:?}"
                            ));
                            break;
                        }
                        token_checked = true;
                    }
                    // Until the last traffic plus the timeout, whatever woke the loop before.
                    _ = tokio::time::sleep(IDLE_TIMEOUT.saturating_sub(idle_for(&conn_info))) => {
                        if idle_for(&conn_info) >= IDLE_TIMEOUT {
                            break;
                        }
                    }
                }
            }
            state
                .connections
                .lock()
                .unwrap()
                .retain(|c| !Arc::ptr_eq(c, &conn_info));
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Registers a new connection; at [`MAX_CONNECTIONS`], closes the oldest one that never showed
/// the token (or, if all did, the oldest).
fn admit(state: &State) -> Arc<Conn> {
    let conn = Arc::new(Conn {
        authenticated: false.into(),
        close: tokio::sync::Notify::new(),
        last_active: now_ms().into(),
    });
    let mut conns = state.connections.lock().unwrap();
    if conns.len() >= MAX_CONNECTIONS {
        let victim = conns
            .iter()
            .position(|c| !c.authenticated.load(std::sync::atomic::Ordering::Relaxed))
            .unwrap_or(0);
        let old = conns.remove(victim);
        old.close.notify_one();
        drop(conns);
        state.warn(format_args!(
            "more than {MAX_CONNECTIONS} connections; closed the oldest unauthenticated one"
        ));
        conns = state.connections.lock().unwrap();
    }
    conns.push(conn.clone());
    conn
}

/// How long the connection has carried no bytes.
fn idle_for(conn: &Conn) -> Duration {
    let last = conn.last_active.load(std::sync::atomic::Ordering::Relaxed);
    Duration::from_millis(now_ms().saturating_sub(last))
}

fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// The connection's socket, noting when bytes last moved (for [`IDLE_TIMEOUT`]).
struct Activity {
    inner: tokio::net::TcpStream,
    conn: Arc<Conn>,
}

impl Activity {
    fn touch(&self) {
        self.conn
            .last_active
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
    }
}

impl tokio::io::AsyncRead for Activity {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl tokio::io::AsyncWrite for Activity {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Every request passes the token check, then goes to the OTLP/gRPC handler (content type
/// application/grpc, HTTP/2) or to the OTLP/HTTP handler (`POST /v1/traces`).
async fn route(
    req: Request<Incoming>,
    state: Arc<State>,
    conn: Arc<Conn>,
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
    if token_ok {
        conn.authenticated
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let result = if !token_ok {
        Err(refuse(
            StatusCode::UNAUTHORIZED,
            Code::Unauthenticated,
            "missing or wrong otel-run sink token",
        ))
    } else {
        // Reserve the request's worst-case body before reading it: many concurrent large
        // requests wait for each other (briefly) instead of adding up.
        let declared = req
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let compressed = req.headers().contains_key("content-encoding")
            || req.headers().contains_key("grpc-encoding");
        let want = match declared {
            Some(n) if !compressed && !is_grpc => n.min(state.config.body_limit),
            _ => state.config.body_limit,
        };
        match reserve(&state, want).await {
            Err(r) => Err(r),
            Ok(_permit) if is_grpc => grpc_export(req, &state).await,
            Ok(_permit) => http_export(req, &state, &content_type).await,
        }
    };
    // Every answer but the handlers' Ok is a refusal: counted from the refusal itself, not
    // read back out of the response it became.
    let refused = result.is_err();
    let response = match result {
        Ok(response) => response,
        Err(r) if is_grpc => {
            tracing::debug!("sink: refused a request (gRPC {:?}: {})", r.grpc, r.message);
            // A trailers-only answer: the status is in the headers.
            tonic::Status::new(r.grpc, r.message).into_http()
        }
        Err(r) => {
            tracing::debug!("sink: refused a request (HTTP {})", r.http);
            http_error(&content_type, r)
        }
    };
    let mut stats = state.stats.lock().unwrap();
    stats.requests += 1;
    stats.requests_refused += refused as u64;
    Ok(response)
}

/// Takes `bytes` of the in-flight budget, waiting a little for other requests to finish.
async fn reserve(
    state: &State,
    bytes: usize,
) -> Result<tokio::sync::OwnedSemaphorePermit, Refusal> {
    let n = bytes.clamp(1, u32::MAX as usize) as u32;
    let wait = state.in_flight.clone().acquire_many_owned(n);
    match tokio::time::timeout(Duration::from_secs(2), wait).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable,
            format!("sink busy: over {IN_FLIGHT_BUDGET} bytes of requests in flight; retry"),
        )),
    }
}

/// The one gRPC method the sink serves.
const EXPORT_METHOD: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// OTLP/gRPC, a unary call: the 5-byte-framed message is read whole (within the body limit),
/// counted and decoded by [`decode_grpc_body`], accepted, and answered with one framed message
/// and `grpc-status: 0` trailers. Done here rather than by tonic's generated server so that a
/// gRPC request is counted before it is decoded, exactly like an OTLP/HTTP one.
async fn grpc_export(
    req: Request<Incoming>,
    state: &State,
) -> Result<Response<tonic::body::Body>, Refusal> {
    let path = req.uri().path();
    if path != EXPORT_METHOD {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            Code::Unimplemented,
            format!("no such method {path} (the sink serves {EXPORT_METHOD})"),
        ));
    }
    let gzip = gzip_encoded(req.headers(), "grpc-encoding")?;
    let limit = state.config.body_limit;
    let body = read_body(req.into_body(), limit.saturating_add(GRPC_PREFIX)).await?;
    let request = decode_grpc_body(gzip, body, limit)?;
    let response = accept(state, request.resource_spans)?;
    let message = response.encode_to_vec();
    let mut framed = Vec::with_capacity(GRPC_PREFIX + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/grpc")
        .body(tonic::body::Body::new(Unary {
            data: Some(Bytes::from(framed)),
            trailers: Some(trailers),
        }))
        .expect("static response parts"))
}

/// A gRPC unary answer: one data frame, then the trailers.
struct Unary {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl hyper::body::Body for Unary {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(data))));
        }
        Poll::Ready(
            self.trailers
                .take()
                .map(|t| Ok(hyper::body::Frame::trailers(t))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

/// The gRPC message prefix: a compressed flag and a big-endian u32 length.
const GRPC_PREFIX: usize = 5;

/// A request body, whole, refused beyond `limit` bytes.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Refusal> {
    Ok(Limited::new(body, limit)
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
        .to_bytes())
}

/// Decodes a unary gRPC request body: exactly one length-prefixed message (gzip undone within
/// `limit` when its flag says so), counted before it is decoded. Pure, like [`decode_body`].
/// Refusals use the codes OTLP clients act on: RESOURCE_EXHAUSTED without RetryInfo for "too
/// big" (not retried; tonic's OUT_OF_RANGE would be), INVALID_ARGUMENT for malformed input.
fn decode_grpc_body(
    gzip: bool,
    body: Bytes,
    limit: usize,
) -> Result<ExportTraceServiceRequest, Refusal> {
    let invalid = |m: String| refuse(StatusCode::BAD_REQUEST, Code::InvalidArgument, m);
    if body.len() < GRPC_PREFIX {
        return Err(invalid(format!(
            "a gRPC message of {} bytes, shorter than its 5-byte prefix",
            body.len()
        )));
    }
    let compressed = match body[0] {
        0 => false,
        1 if gzip => true,
        1 => {
            return Err(invalid(
                "a compressed gRPC message without grpc-encoding: gzip".into(),
            ))
        }
        flag => return Err(invalid(format!("gRPC message flag {flag} (0 or 1)"))),
    };
    let len = u32::from_be_bytes(body[1..GRPC_PREFIX].try_into().expect("4 bytes")) as usize;
    if len > limit {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            format!("a gRPC message of {len} bytes, over the {limit}-byte limit"),
        ));
    }
    let rest = body.len() - GRPC_PREFIX;
    if rest < len {
        return Err(invalid(format!(
            "a gRPC message of {len} bytes cut short after {rest}"
        )));
    }
    if rest > len {
        return Err(invalid("more than one message in a unary gRPC call".into()));
    }
    let message = body.slice(GRPC_PREFIX..);
    let message = if compressed {
        gunzip(&message, limit)?
    } else {
        message
    };
    decode_protobuf(message)
}

/// [`decode_grpc_body`] for the fuzz targets and the corpus test: `grpc_encoding` as the header
/// says, the refusal as its message.
#[doc(hidden)]
pub fn decode_grpc_request(
    grpc_encoding: &str,
    body: &[u8],
    limit: usize,
) -> Result<ExportTraceServiceRequest, String> {
    let gzip = gzip_encoding("grpc-encoding", Some(grpc_encoding)).map_err(|r| r.message)?;
    decode_grpc_body(gzip, Bytes::copy_from_slice(body), limit).map_err(|r| r.message)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Protobuf,
    Json,
}

/// The OTLP/HTTP encoding a content type names (its parameters, like `charset`, ignored).
fn wire_of(content_type: &str) -> Result<Wire, Refusal> {
    match content_type.split(';').next().unwrap_or("").trim() {
        "application/x-protobuf" | "application/protobuf" => Ok(Wire::Protobuf),
        "application/json" => Ok(Wire::Json),
        other => Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::InvalidArgument,
            format!("content type {other:?} (want application/x-protobuf or application/json)"),
        )),
    }
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
    let wire = wire_of(content_type)?;
    let gzip = gzip_encoded(req.headers(), "content-encoding")?;
    let limit = state.config.body_limit;
    let body = read_body(req.into_body(), limit).await?;
    let request = decode_body(wire, gzip, body, limit)?;
    let response = accept(state, request.resource_spans)?;
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
    let retry = matches!(
        r.http,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    );
    let mut response = if content_type.starts_with("application/json") {
        let json = serde_json::json!({"code": r.grpc as i32, "message": r.message});
        http_response(r.http, "application/json", json.to_string().into_bytes())
    } else {
        let status = tonic_types::Status {
            code: r.grpc as i32,
            message: r.message,
            details: Vec::new(),
        };
        http_response(r.http, "application/x-protobuf", status.encode_to_vec())
    };
    if retry {
        response
            .headers_mut()
            .insert("retry-after", http::HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

/// Decodes an OTLP/HTTP body (gzip undone within `limit`, protobuf counted before it is
/// decoded): pure, so the fuzz targets and the corpus test run exactly what requests run.
fn decode_body(
    wire: Wire,
    gzip: bool,
    body: Bytes,
    limit: usize,
) -> Result<ExportTraceServiceRequest, Refusal> {
    let message = if gzip { gunzip(&body, limit)? } else { body };
    match wire {
        Wire::Protobuf => decode_protobuf(message),
        Wire::Json => {
            within_object_limit(count_json_objects(&message))?;
            serde_json::from_slice::<ExportTraceServiceRequest>(&message).map_err(|e| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    Code::InvalidArgument,
                    format!("invalid OTLP/JSON: {e}"),
                )
            })
        }
    }
}

/// Protobuf of either transport: counted on the wire first, then decoded.
fn decode_protobuf(message: Bytes) -> Result<ExportTraceServiceRequest, Refusal> {
    let invalid = |e: String| {
        refuse(
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            format!("invalid OTLP protobuf: {e}"),
        )
    };
    within_object_limit(count_objects(&message).map_err(invalid)?)?;
    ExportTraceServiceRequest::decode(message).map_err(|e| invalid(e.to_string()))
}

fn within_object_limit(objects: usize) -> Result<(), Refusal> {
    if objects > MAX_OBJECTS_PER_REQUEST {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            format!(
                "{objects} spans, events, links and attributes in one request (at most {MAX_OBJECTS_PER_REQUEST}); send smaller batches"
            ),
        ));
    }
    Ok(())
}

/// An upper bound on the structs an OTLP/JSON body decodes into, without parsing it: every one
/// of them (request, resource spans, span, event, link, key-value, any-value, ...) is a JSON
/// object, so the `{` outside strings bound them. Unknown fields are skipped by the decoder
/// without allocating, so counting them too only errs on the safe side.
fn count_json_objects(body: &[u8]) -> usize {
    let (mut objects, mut in_string, mut escaped) = (0, false, false);
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'{' {
            objects += 1;
        }
    }
    objects
}

/// [`decode_body`] for the fuzz targets and the corpus test: `content_type` and
/// `content_encoding` as the headers say, the refusal as its message.
#[doc(hidden)]
pub fn decode_http_request(
    content_type: &str,
    content_encoding: &str,
    body: &[u8],
    limit: usize,
) -> Result<ExportTraceServiceRequest, String> {
    let wire = wire_of(content_type).map_err(|r| r.message)?;
    let gzip = gzip_encoding("content-encoding", Some(content_encoding)).map_err(|r| r.message)?;
    decode_body(wire, gzip, Bytes::copy_from_slice(body), limit).map_err(|r| r.message)
}

/// Which fields of which OTLP message are messages that decode into a struct of their own.
#[derive(Clone, Copy)]
enum Msg {
    Request,
    ResourceSpans,
    Resource,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    KeyValue,
    AnyValue,
    ArrayValue,
    KvList,
}

impl Msg {
    fn child(self, field: u64) -> Option<Msg> {
        use Msg::*;
        Some(match (self, field) {
            (Request, 1) => ResourceSpans,
            (ResourceSpans, 1) => Resource,
            (ResourceSpans, 2) => ScopeSpans,
            (Resource, 1) => KeyValue,
            (ScopeSpans, 1) => Scope,
            (ScopeSpans, 2) => Span,
            (Scope, 3) => KeyValue,
            (Span, 9) => KeyValue,
            (Span, 11) => Event,
            (Span, 13) => Link,
            (Event, 3) => KeyValue,
            (Link, 4) => KeyValue,
            (KeyValue, 2) => AnyValue,
            (AnyValue, 5) => ArrayValue,
            (AnyValue, 6) => KvList,
            (ArrayValue, 1) => AnyValue,
            (KvList, 1) => KeyValue,
            _ => return None,
        })
    }
}

/// Counts the messages an `ExportTraceServiceRequest` would decode into, without decoding it
/// (no allocation; the nesting is bounded like prost's own limit of 100).
pub fn count_objects(mut body: &[u8]) -> Result<usize, String> {
    fn walk(mut b: &[u8], msg: Msg, depth: u32, count: &mut usize) -> Result<(), String> {
        if depth > 100 {
            return Err("nested too deeply".into());
        }
        while !b.is_empty() {
            let key = prost::encoding::decode_varint(&mut b).map_err(|e| e.to_string())?;
            let (field, wire) = (key >> 3, key & 7);
            match wire {
                0 => {
                    prost::encoding::decode_varint(&mut b).map_err(|e| e.to_string())?;
                }
                1 | 5 => {
                    let n = if wire == 1 { 8 } else { 4 };
                    if b.len() < n {
                        return Err("truncated fixed-width field".into());
                    }
                    b = &b[n..];
                }
                2 => {
                    let len = prost::encoding::decode_varint(&mut b).map_err(|e| e.to_string())?;
                    if len > b.len() as u64 {
                        return Err("truncated length-delimited field".into());
                    }
                    let (inner, rest) = b.split_at(len as usize);
                    b = rest;
                    if let Some(child) = msg.child(field) {
                        *count += 1;
                        walk(inner, child, depth + 1, count)?;
                    }
                }
                _ => return Err(format!("invalid wire type {wire}")),
            }
        }
        Ok(())
    }
    let mut count = 0;
    walk(std::mem::take(&mut body), Msg::Request, 0, &mut count)?;
    Ok(count)
}

/// Decompresses at most `limit` bytes: a gzip bomb is refused after `limit`, not after it fills memory.
fn gunzip(b: &[u8], limit: usize) -> Result<Bytes, Refusal> {
    let mut out = Vec::new();
    // Multi-member: a body of concatenated gzip members is all of them, not the first.
    MultiGzDecoder::new(b)
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

/// What every reader accepts of an id: the right length and not all zeroes.
fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|b| *b != 0)
}

/// Spans the readers would refuse (and with them the whole file) are refused here instead,
/// through partial success.
fn valid_span(s: &opentelemetry_proto::tonic::trace::v1::Span) -> bool {
    valid_id(&s.trace_id, 16)
        && valid_id(&s.span_id, 8)
        && (s.parent_span_id.is_empty() || valid_id(&s.parent_span_id, 8))
        && s.links
            .iter()
            .all(|l| valid_id(&l.trace_id, 16) && valid_id(&l.span_id, 8))
}

/// Validates, adopts, writes and queues for forwarding; returns the OTLP answer, or a retryable
/// refusal when the spans could not be written (a full disk): never acknowledge what is not in
/// the file.
fn accept(
    state: &State,
    mut batch: Vec<ResourceSpans>,
) -> Result<ExportTraceServiceResponse, Refusal> {
    let cfg = &state.config;
    let received = crate::format::span_count(&batch) as u64;
    let mut rejected = 0u64;
    for rs in &mut batch {
        for ss in &mut rs.scope_spans {
            let before = ss.spans.len();
            ss.spans.retain(valid_span);
            rejected += (before - ss.spans.len()) as u64;
        }
    }
    let adopted = if cfg.adopt {
        let home = crate::adopt::Home {
            trace_id: cfg.trace_id,
            span_id: cfg.process_span_id,
        };
        crate::adopt::rehome_batch(&mut batch, &home)
    } else {
        0
    };
    let kept = received - rejected;
    let mut written = 0;
    if kept > 0 {
        if let Some(file) = cfg.file.lock().unwrap().as_mut() {
            match file.append(&batch) {
                Ok(()) => written = kept,
                Err(e) => {
                    // `append` left none of the batch in the file: the SDK retries it whole.
                    // Not counted as received: the SDK sends the same spans again.
                    state.warn(format_args!("{e:#}; the request is refused for a retry"));
                    return Err(refuse(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Code::Unavailable,
                        format!("cannot write the span file ({e:#}); retry later"),
                    ));
                }
            }
        }
    }
    if cfg.console && kept > 0 {
        // One write per batch, so concurrent requests do not interleave inside a span's text.
        let text = crate::export::console::render(&batch);
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes());
    }
    if let (Some(queue), true) = (&cfg.forward, kept > 0) {
        queue.submit(batch);
    }
    let mut stats = state.stats.lock().unwrap();
    stats.spans_received += received;
    stats.spans_rejected += rejected;
    stats.spans_written += written;
    stats.spans_adopted += adopted;
    Ok(ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: format!(
                "{rejected} spans with invalid (wrong length or all-zero) trace, span, parent or link ids"
            ),
        }),
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh 128-bit token, hex.
pub fn new_token() -> String {
    hex(&rand::random::<[u8; 16]>())
}

/// Whether the body is gzip-compressed, from `header` (`grpc-encoding` or `content-encoding`);
/// any other encoding is refused, as the sink decodes only these two.
fn gzip_encoded(headers: &http::HeaderMap, header: &str) -> Result<bool, Refusal> {
    gzip_encoding(header, headers.get(header).and_then(|v| v.to_str().ok()))
}

/// [`gzip_encoded`] of the header's value, for the fuzz entry points too.
fn gzip_encoding(header: &str, value: Option<&str>) -> Result<bool, Refusal> {
    match value.map(str::trim) {
        None | Some("identity") | Some("") => Ok(false),
        Some("gzip") => Ok(true),
        Some(other) => Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::Unimplemented,
            format!("{header} {other:?} (gzip or identity only)"),
        )),
    }
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
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(new_token().len(), 32);
    }

    #[test]
    fn objects_are_counted_before_decoding() {
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
        let mut s = span(1, 2, None);
        s.attributes = vec![KeyValue {
            key: "a".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue::default(); 3],
                })),
            }),
            ..Default::default()
        }];
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![s.clone(), s],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        // rs, ss, 2 × (span, kv, anyvalue, array, 3 values)
        assert_eq!(count_objects(&request.encode_to_vec()), Ok(2 + 2 * 7));
        assert!(count_objects(b"\x0a\x05ab").is_err());
    }

    #[test]
    fn json_objects_are_counted_outside_strings() {
        assert_eq!(count_json_objects(br#"{"a":[{},{}],"s":"{\"{"}"#), 3);
        assert_eq!(count_json_objects(br#""\\"{}"#), 1);
    }

    #[test]
    fn grpc_bodies_are_one_framed_message() {
        let message = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(1, 2, None)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let frame = |flag: u8, m: &[u8]| {
            let mut b = vec![flag];
            b.extend((m.len() as u32).to_be_bytes());
            b.extend(m);
            b
        };
        let plain = frame(0, &message);
        assert_eq!(
            decode_grpc_request("", &plain, 1 << 20)
                .unwrap()
                .resource_spans
                .len(),
            1
        );
        let gz = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&message).unwrap();
            frame(1, &e.finish().unwrap())
        };
        assert!(decode_grpc_request("gzip", &gz, 1 << 20).is_ok());
        let err =
            |enc: &str, b: &[u8], limit: usize| decode_grpc_request(enc, b, limit).unwrap_err();
        assert!(err("", &gz, 1 << 20).contains("without grpc-encoding"));
        assert!(err("", &plain[..4], 1 << 20).contains("shorter than its 5-byte prefix"));
        assert!(err("", &plain[..plain.len() - 1], 1 << 20).contains("cut short"));
        assert!(
            err("", &[plain.clone(), plain.clone()].concat(), 1 << 20).contains("more than one")
        );
        assert!(err("", &plain, 8).contains("over the 8-byte limit"));
        assert!(err("", &frame(2, &message), 1 << 20).contains("flag 2"));
        // Empty spans: 2 bytes each on the wire, counted and refused before decoding.
        let mut spans = [0x12u8, 0x00].repeat(MAX_OBJECTS_PER_REQUEST + 1);
        let mut ss = Vec::new();
        prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut ss);
        prost::encoding::encode_varint(spans.len() as u64, &mut ss);
        ss.append(&mut spans);
        let mut rs = Vec::new();
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut rs);
        prost::encoding::encode_varint(ss.len() as u64, &mut rs);
        rs.append(&mut ss);
        assert!(err("", &frame(0, &rs), 16 << 20).contains("send smaller batches"));
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
