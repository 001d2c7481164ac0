//! OTLP trace export client (gRPC and HTTP/protobuf), used for otel-run's own spans, for the
//! sink's forwarding and by `replay`. It sends `ExportTraceServiceRequest` as is — every attribute
//! type survives — and reports partial success exactly, which the SDK exporters do not expose.
//! gRPC goes through tonic's generated `TraceServiceClient`, OTLP/HTTP through hyper; both share
//! one rustls (ring) TLS setup and the OTLP spec's retry rule (see [`OtlpClient::export_encoded`]).
//!
//! Configuration follows the OTLP exporter spec: a traces-specific setting beats the generic one,
//! and for each the command-line flag beats its environment variable.

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use flate2::{write::GzEncoder, Compression};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::{
    trace_service_client::TraceServiceClient, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    #[value(name = "grpc")]
    Grpc,
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Raw settings as given (flag or environment), before the spec's precedence is applied.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OtlpSettings {
    /// Collector endpoint; for http/protobuf `/v1/traces` is appended [default: grpc http://localhost:4317,
    /// http/protobuf http://localhost:4318]
    #[arg(
        long = "exporter-otlp-endpoint",
        alias = "exporter_otlp_endpoint",
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        value_name = "URL"
    )]
    pub endpoint: Option<String>,
    /// Traces endpoint, used as is (beats --exporter-otlp-endpoint)
    #[arg(
        long = "exporter-otlp-traces-endpoint",
        alias = "exporter_otlp_traces_endpoint",
        env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        value_name = "URL"
    )]
    pub traces_endpoint: Option<String>,
    /// Transport [default: http/protobuf]
    #[arg(
        long = "exporter-otlp-protocol",
        alias = "exporter_otlp_protocol",
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        value_name = "PROTOCOL"
    )]
    pub protocol: Option<Protocol>,
    #[arg(
        long = "exporter-otlp-traces-protocol",
        alias = "exporter_otlp_traces_protocol",
        env = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        value_name = "PROTOCOL"
    )]
    pub traces_protocol: Option<Protocol>,
    /// Extra request headers, `key=value,...` (values percent-decoded)
    #[arg(
        long = "exporter-otlp-headers",
        alias = "exporter_otlp_headers",
        env = "OTEL_EXPORTER_OTLP_HEADERS",
        value_name = "LIST"
    )]
    pub headers: Option<String>,
    #[arg(
        long = "exporter-otlp-traces-headers",
        alias = "exporter_otlp_traces_headers",
        env = "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        value_name = "LIST"
    )]
    pub traces_headers: Option<String>,
    /// Time limit for one export including retries, in milliseconds [default: 10000]
    #[arg(
        long = "exporter-otlp-timeout",
        alias = "exporter_otlp_timeout",
        env = "OTEL_EXPORTER_OTLP_TIMEOUT",
        value_name = "MS"
    )]
    pub timeout: Option<u64>,
    #[arg(
        long = "exporter-otlp-traces-timeout",
        alias = "exporter_otlp_traces_timeout",
        env = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        value_name = "MS"
    )]
    pub traces_timeout: Option<u64>,
    /// `gzip` or `none` [default: none]
    #[arg(
        long = "exporter-otlp-compression",
        alias = "exporter_otlp_compression",
        env = "OTEL_EXPORTER_OTLP_COMPRESSION",
        value_name = "ALGO"
    )]
    pub compression: Option<String>,
    #[arg(
        long = "exporter-otlp-traces-compression",
        alias = "exporter_otlp_traces_compression",
        env = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        value_name = "ALGO"
    )]
    pub traces_compression: Option<String>,
    /// PEM file with the CA certificate(s) to trust for https endpoints [default: the webpki roots]
    #[arg(
        long = "exporter-otlp-certificate",
        alias = "exporter_otlp_certificate",
        env = "OTEL_EXPORTER_OTLP_CERTIFICATE",
        value_name = "FILE"
    )]
    pub certificate: Option<PathBuf>,
    #[arg(
        long = "exporter-otlp-traces-certificate",
        alias = "exporter_otlp_traces_certificate",
        env = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        value_name = "FILE"
    )]
    pub traces_certificate: Option<PathBuf>,
}

/// Resolved exporter configuration.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    pub protocol: Protocol,
    /// Full URL: for HTTP the traces path, for gRPC scheme and authority.
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub gzip: bool,
    pub certificate: Option<PathBuf>,
}

impl OtlpSettings {
    /// True when the user configured a collector (this makes `otlp` the default exporter).
    pub fn endpoint_configured(&self) -> bool {
        self.endpoint.is_some() || self.traces_endpoint.is_some()
    }

    pub fn resolve(&self) -> anyhow::Result<OtlpConfig> {
        let protocol = self
            .traces_protocol
            .or(self.protocol)
            .unwrap_or(Protocol::HttpProtobuf);
        let endpoint = match (&self.traces_endpoint, &self.endpoint) {
            (Some(t), _) => with_scheme(t),
            (None, Some(base)) => match protocol {
                Protocol::Grpc => with_scheme(base),
                Protocol::HttpProtobuf => {
                    format!("{}/v1/traces", with_scheme(base).trim_end_matches('/'))
                }
            },
            (None, None) => match protocol {
                Protocol::Grpc => "http://localhost:4317".to_string(),
                Protocol::HttpProtobuf => "http://localhost:4318/v1/traces".to_string(),
            },
        };
        endpoint
            .parse::<http::Uri>()
            .map_err(|e| anyhow!("OTLP endpoint {endpoint:?} is not a URL: {e}"))?;
        let mut headers = Vec::new();
        for (name, list) in [
            ("OTEL_EXPORTER_OTLP_HEADERS", &self.headers),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", &self.traces_headers),
        ] {
            if let Some(list) = list {
                let parsed = crate::contract::parse_resource_attributes(list)
                    .map_err(|e| anyhow!("--exporter-otlp-headers / {name}: {e}"))?;
                for (k, v) in parsed {
                    HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| anyhow!("{name}: {k:?} is not a valid header name"))?;
                    HeaderValue::from_str(&v).map_err(|_| {
                        anyhow!("{name}: value of {k:?} is not a valid header value")
                    })?;
                    headers.retain(|(hk, _): &(String, String)| !hk.eq_ignore_ascii_case(&k));
                    headers.push((k.to_ascii_lowercase(), v));
                }
            }
        }
        let gzip = match self.traces_compression.as_deref().or(self.compression.as_deref()) {
            None | Some("none") | Some("") => false,
            Some("gzip") => true,
            Some(other) => bail!("--exporter-otlp-compression / OTEL_EXPORTER_OTLP_COMPRESSION: {other:?} is not gzip or none"),
        };
        Ok(OtlpConfig {
            protocol,
            endpoint,
            headers,
            timeout: Duration::from_millis(self.traces_timeout.or(self.timeout).unwrap_or(10_000)),
            gzip,
            certificate: self
                .traces_certificate
                .clone()
                .or_else(|| self.certificate.clone()),
        })
    }
}

// SDKs accept `host:port` for gRPC; give it a scheme so it parses as a URL.
fn with_scheme(s: &str) -> String {
    if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    }
}

/// What the collector said about an accepted request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    /// Spans the collector reported as rejected (OTLP partial success).
    pub rejected_spans: i64,
    pub message: String,
}

/// How far a failed request got, which says whether the collector can have its spans. Ordered:
/// over several attempts the furthest one counts (a request once written without an answer may
/// be at the collector even if a later attempt was refused a connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Delivery {
    /// No connection (refused, unreachable, TLS failed), or not even encoded: nothing was sent.
    NotSent,
    /// The collector answered with an error status: it did not take the spans.
    Answered,
    /// The request was written (at least in part) and no answer came: the collector may have it.
    Unanswered,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExportError {
    pub message: String,
    /// The furthest any attempt got.
    pub delivery: Delivery,
    /// Worth retrying per the OTLP spec (unavailable, throttled, timeouts); false for refusals
    /// like 400/401 or INVALID_ARGUMENT.
    pub retryable: bool,
    /// The delay the collector asked for (HTTP Retry-After, gRPC google.rpc.RetryInfo).
    pub retry_after: Option<Duration>,
}

fn fail(retryable: bool, delivery: Delivery, message: impl Into<String>) -> ExportError {
    ExportError {
        message: message.into(),
        delivery,
        retryable,
        retry_after: None,
    }
}

/// First delay between attempts; doubled after each retry up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub struct OtlpClient {
    config: OtlpConfig,
    transport: Transport,
}

// One per client, made once: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Transport {
    Grpc(GrpcTransport),
    Http(HttpTransport),
}

/// OTLP/gRPC through tonic's generated client. The channel is made on the first export, because
/// tonic spawns its connection task on the runtime current at that moment and a client may be
/// configured (flags checked) before any runtime exists.
struct GrpcTransport {
    endpoint: Endpoint,
    connector: HttpsConnector<HttpConnector>,
    client: OnceLock<TraceServiceClient<Channel>>,
    /// The configured headers, sent as request metadata.
    metadata: HeaderMap,
    gzip: bool,
}

/// OTLP/HTTP (protobuf) through hyper's pooled client.
struct HttpTransport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: http::Uri,
    headers: HeaderMap,
    gzip: bool,
}

impl OtlpClient {
    pub fn new(config: OtlpConfig) -> anyhow::Result<Self> {
        let tls = tls_config(config.certificate.as_deref())?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let mut headers = HeaderMap::new();
        for (k, v) in &config.headers {
            headers.insert(
                HeaderName::from_bytes(k.as_bytes())?,
                HeaderValue::from_str(v)?,
            );
        }
        let transport = match config.protocol {
            Protocol::Grpc => {
                // OTLP/gRPC ignores any path in the endpoint: the method path is fixed.
                let base: http::Uri = config.endpoint.parse()?;
                let scheme = base.scheme_str().unwrap_or("http");
                let authority = base
                    .authority()
                    .ok_or_else(|| anyhow!("OTLP endpoint {:?} has no host", config.endpoint))?;
                let endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
                    .with_context(|| format!("OTLP endpoint {:?}", config.endpoint))?
                    .user_agent(concat!("otel-run/", env!("CARGO_PKG_VERSION")))
                    .context("user agent")?;
                Transport::Grpc(GrpcTransport {
                    endpoint,
                    // TLS (when https) is this connector's: the same rustls setup as OTLP/HTTP,
                    // offering only h2 as gRPC requires.
                    connector: https.enable_http2().wrap_connector(tcp),
                    client: OnceLock::new(),
                    metadata: headers,
                    gzip: config.gzip,
                })
            }
            Protocol::HttpProtobuf => {
                let mut client = Client::builder(TokioExecutor::new());
                client.pool_idle_timeout(Duration::from_secs(30));
                Transport::Http(HttpTransport {
                    client: client.build(https.enable_http1().enable_http2().wrap_connector(tcp)),
                    uri: config.endpoint.parse()?,
                    headers,
                    gzip: config.gzip,
                })
            }
        };
        Ok(OtlpClient { config, transport })
    }

    pub fn config(&self) -> &OtlpConfig {
        &self.config
    }

    /// Sends one request, retrying retryable failures (see [`OtlpClient::export_encoded`]).
    pub async fn export(
        &self,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportOutcome, ExportError> {
        let encoded = Bytes::from(request.encode_to_vec());
        self.send(Some(request), encoded).await
    }

    /// [`OtlpClient::export`] for a request that is already protobuf-encoded (a load generator
    /// encodes once). Retries follow the OTLP spec: retryable gRPC codes and HTTP statuses only,
    /// after the delay the collector asked for or an exponential backoff with jitter, and never
    /// past the configured timeout counted from the first attempt.
    pub async fn export_encoded(&self, body: Bytes) -> Result<ExportOutcome, ExportError> {
        self.send(None, body).await
    }

    /// `encoded` is `request`'s protobuf encoding (or the request itself when `request` is None).
    async fn send(
        &self,
        mut request: Option<ExportTraceServiceRequest>,
        encoded: Bytes,
    ) -> Result<ExportOutcome, ExportError> {
        match &self.transport {
            Transport::Grpc(grpc) => {
                self.retrying(|left| {
                    // The generated client consumes the request. The first attempt sends the
                    // caller's; a retry decodes the encoding again. Cloning up front instead
                    // would cost every request an allocation per string and list.
                    let message = request.take().map(Ok).unwrap_or_else(|| {
                        ExportTraceServiceRequest::decode(encoded.clone()).map_err(|e| {
                            fail(
                                false,
                                Delivery::NotSent,
                                format!("not an OTLP request: {e}"),
                            )
                        })
                    });
                    async move { grpc.attempt(message?, left).await }
                })
                .await
            }
            Transport::Http(http) => self.retrying(|_| http.attempt(encoded.clone())).await,
        }
    }

    async fn retrying<F, Fut>(&self, mut attempt: F) -> Result<ExportOutcome, ExportError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<ExportOutcome, ExportError>>,
    {
        let deadline = Instant::now() + self.config.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut furthest = Delivery::NotSent;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut err = match tokio::time::timeout(left, attempt(left)).await {
                Ok(Ok(outcome)) => return Ok(outcome),
                Ok(Err(e)) => e,
                // Cut off while connecting or while waiting for the answer: which one is not
                // known here, so the collector may have the request.
                Err(_) => fail(
                    true,
                    Delivery::Unanswered,
                    format!(
                        "no answer from {} within {:?}",
                        self.config.endpoint, self.config.timeout
                    ),
                ),
            };
            furthest = furthest.max(err.delivery);
            err.delivery = furthest;
            let wait = err.retry_after.unwrap_or_else(|| jittered(backoff));
            if !err.retryable || Instant::now() + wait >= deadline {
                return Err(err);
            }
            tracing::debug!(
                "export to {} failed ({}), retrying in {:?}",
                self.config.endpoint,
                err.message,
                wait
            );
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// A random delay in [backoff/2, backoff]: clients that failed together do not retry together.
fn jittered(backoff: Duration) -> Duration {
    let nanos = backoff.as_nanos() as u64;
    Duration::from_nanos(rand::random_range(nanos / 2..=nanos))
}

fn tls_config(certificate: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match certificate {
        Some(path) => {
            use rustls::pki_types::{pem::PemObject, CertificateDer};
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read OTLP certificate {}", path.display()))?;
            for cert in certs {
                let cert = cert
                    .with_context(|| format!("bad PEM in OTLP certificate {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("unusable certificate in {}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS setup")?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

impl GrpcTransport {
    async fn attempt(
        &self,
        request: ExportTraceServiceRequest,
        time_left: Duration,
    ) -> Result<ExportOutcome, ExportError> {
        let mut client = self
            .client
            .get_or_init(|| {
                let channel = self
                    .endpoint
                    .connect_with_connector_lazy(self.connector.clone());
                let client = TraceServiceClient::new(channel);
                if self.gzip {
                    client
                        .send_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Gzip)
                } else {
                    client
                }
            })
            .clone();
        let mut request = tonic::Request::from_parts(
            MetadataMap::from_headers(self.metadata.clone()),
            Default::default(),
            request,
        );
        // Sent as grpc-timeout, so the collector gives up when we do; tonic enforces it here too.
        request.set_timeout(time_left);
        match client.export(request).await {
            Ok(response) => Ok(outcome(response.into_inner())),
            Err(status) => Err(grpc_error(&status)),
        }
    }
}

/// The OTLP spec's rule for gRPC: these codes are transient; RESOURCE_EXHAUSTED only when the
/// server says when to come back (google.rpc.RetryInfo), otherwise it means "too big, never".
fn grpc_error(status: &tonic::Status) -> ExportError {
    use tonic::Code;
    let retry_after = status.get_details_retry_info().and_then(|r| r.retry_delay);
    let retryable = match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => retry_after.is_some(),
        _ => false,
    };
    let mut message = format!(
        "gRPC status {} ({:?}): {}",
        status.code() as i32,
        status.code(),
        status.message()
    );
    // Connection failures carry their cause (refused, TLS, DNS) only in the source chain, whose
    // layers often repeat each other's text. A status the server sent has no source; one made on
    // this side (connection failures, resets, timeouts) carries its cause. tonic's connector
    // wraps every failure to connect (TCP, DNS, TLS) in ConnectError: then nothing was sent.
    let mut delivery = Delivery::Answered;
    let mut source = std::error::Error::source(status);
    while let Some(inner) = source {
        if inner.downcast_ref::<tonic::ConnectError>().is_some() {
            delivery = Delivery::NotSent;
        } else if delivery == Delivery::Answered {
            delivery = Delivery::Unanswered;
        }
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = inner.source();
    }
    ExportError {
        message,
        delivery,
        retryable,
        retry_after: retry_after.filter(|_| retryable),
    }
}

impl HttpTransport {
    async fn attempt(&self, payload: Bytes) -> Result<ExportOutcome, ExportError> {
        let mut builder = Request::post(self.uri.clone());
        *builder.headers_mut().expect("fresh request builder") = self.headers.clone();
        builder = builder.header("content-type", "application/x-protobuf");
        let body = if self.gzip {
            builder = builder.header("content-encoding", "gzip");
            gzip(&payload)
        } else {
            payload
        };
        let request = builder
            .body(Full::new(body))
            .map_err(|e| fail(false, Delivery::NotSent, format!("building request: {e}")))?;
        let response = self.client.request(request).await.map_err(|e| {
            // hyper retries a request on a pooled connection the server had closed before
            // anything was written; what fails after the connection was made may have arrived.
            let delivery = if e.is_connect() {
                Delivery::NotSent
            } else {
                Delivery::Unanswered
            };
            fail(
                true,
                delivery,
                format!("cannot reach {}: {}", self.uri, error_chain(&e)),
            )
        })?;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| {
                fail(
                    true,
                    Delivery::Unanswered,
                    format!("reading the answer of {}: {e}", self.uri),
                )
            })?
            .to_bytes();
        http_outcome(parts.status, &parts.headers, &bytes)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn gzip(data: &[u8]) -> Bytes {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::fast());
    enc.write_all(data).expect("gzip into memory");
    Bytes::from(enc.finish().expect("gzip into memory"))
}

fn outcome(response: ExportTraceServiceResponse) -> ExportOutcome {
    match response.partial_success {
        Some(p) => ExportOutcome {
            rejected_spans: p.rejected_spans,
            message: p.error_message,
        },
        None => ExportOutcome::default(),
    }
}

/// The OTLP spec's rule for HTTP: 429, 502, 503 and 504 are transient, with Retry-After honoured.
fn http_outcome(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<ExportOutcome, ExportError> {
    if status.is_success() {
        if headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
        {
            // Some collectors answer JSON even to protobuf; an empty object means full success.
            let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let p = &v["partialSuccess"];
            let rejected = p["rejectedSpans"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| p["rejectedSpans"].as_i64());
            return Ok(ExportOutcome {
                rejected_spans: rejected.unwrap_or(0),
                message: p["errorMessage"].as_str().unwrap_or("").into(),
            });
        }
        return ExportTraceServiceResponse::decode(body)
            .map(outcome)
            .map_err(|e| {
                fail(
                    false,
                    Delivery::Answered,
                    format!("collector answered with an undecodable response: {e}"),
                )
            });
    }
    let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = String::from_utf8_lossy(&body[..body.len().min(200)])
        .trim()
        .to_string();
    Err(ExportError {
        message: format!("collector answered HTTP {status}: {text}"),
        delivery: Delivery::Answered,
        retryable,
        retry_after: retry_after.filter(|_| retryable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OtlpSettings {
        OtlpSettings::default()
    }

    #[test]
    fn endpoint_precedence_follows_the_spec() {
        let mut s = settings();
        assert_eq!(
            s.resolve().unwrap().endpoint,
            "http://localhost:4318/v1/traces"
        );
        s.protocol = Some(Protocol::Grpc);
        assert_eq!(s.resolve().unwrap().endpoint, "http://localhost:4317");
        s.endpoint = Some("collector:4317".into());
        assert_eq!(s.resolve().unwrap().endpoint, "http://collector:4317");
        s.protocol = Some(Protocol::HttpProtobuf);
        s.endpoint = Some("https://c:4318/".into());
        assert_eq!(s.resolve().unwrap().endpoint, "https://c:4318/v1/traces");
        s.traces_endpoint = Some("http://t:9/custom".into());
        assert_eq!(s.resolve().unwrap().endpoint, "http://t:9/custom");
    }

    #[test]
    fn headers_timeout_compression() {
        let mut s = settings();
        s.headers = Some("Authorization=Bearer%20x,a=1".into());
        s.traces_headers = Some("a=2".into());
        s.timeout = Some(500);
        s.compression = Some("gzip".into());
        let c = s.resolve().unwrap();
        assert_eq!(
            c.headers,
            vec![
                ("authorization".into(), "Bearer x".into()),
                ("a".into(), "2".into())
            ]
        );
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert!(c.gzip);
        s.compression = Some("zstd".into());
        assert!(s
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("not gzip or none"));
    }

    #[test]
    fn grpc_retry_rule_follows_the_otlp_spec() {
        use tonic::Code;
        use tonic_types::{ErrorDetails, StatusExt};
        for (code, retryable) in [
            (Code::Cancelled, true),
            (Code::DeadlineExceeded, true),
            (Code::Aborted, true),
            (Code::OutOfRange, true),
            (Code::Unavailable, true),
            (Code::DataLoss, true),
            (Code::ResourceExhausted, false),
            (Code::InvalidArgument, false),
            (Code::Unauthenticated, false),
            (Code::Unimplemented, false),
            (Code::Internal, false),
        ] {
            let e = grpc_error(&tonic::Status::new(code, "x"));
            assert_eq!(e.retryable, retryable, "{code:?}");
            assert_eq!(e.retry_after, None, "{code:?}");
        }
        // RESOURCE_EXHAUSTED becomes retryable when the server says when, and the delay is kept.
        let throttled = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_millis(1500))),
        );
        let e = grpc_error(&throttled);
        assert!(e.retryable);
        assert_eq!(e.retry_after, Some(Duration::from_millis(1500)));
        assert!(
            e.message
                .contains("status 8 (ResourceExhausted): slow down"),
            "{}",
            e.message
        );
    }

    #[test]
    fn http_retry_rule_follows_the_otlp_spec() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        for (status, retryable) in [
            (429, true),
            (502, true),
            (503, true),
            (504, true),
            (400, false),
            (401, false),
            (500, false),
        ] {
            let e =
                http_outcome(StatusCode::from_u16(status).unwrap(), &headers, b"no").unwrap_err();
            assert_eq!(e.retryable, retryable, "{status}");
            assert_eq!(
                e.retry_after,
                retryable.then_some(Duration::from_secs(3)),
                "{status}"
            );
        }
        let ok = ExportTraceServiceResponse {
            partial_success: Some(
                opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                    rejected_spans: 2,
                    error_message: "old".into(),
                },
            ),
        };
        let outcome = http_outcome(StatusCode::OK, &HeaderMap::new(), &ok.encode_to_vec()).unwrap();
        assert_eq!(
            (outcome.rejected_spans, outcome.message.as_str()),
            (2, "old")
        );
    }

    #[test]
    fn backoff_is_jittered_within_half_to_full() {
        let base = Duration::from_millis(400);
        for _ in 0..1000 {
            let d = jittered(base);
            assert!(d >= base / 2 && d <= base, "{d:?}");
        }
    }
}
