//! OTLP trace export client (gRPC and HTTP/protobuf), used for otel-run's own spans, for the
//! sink's forwarding and by `replay`. It sends `ExportTraceServiceRequest` as is — every attribute
//! type survives — and reports partial success exactly, which the SDK exporters do not expose.
//!
//! Configuration follows the OTLP exporter spec: a traces-specific setting beats the generic one,
//! and for each the command-line flag beats its environment variable.

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, Bytes};
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExportError {
    pub message: String,
    /// Worth retrying (unavailable, throttled, timeouts); false for refusals like 400/401.
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

fn fail(retryable: bool, message: impl Into<String>) -> ExportError {
    ExportError {
        message: message.into(),
        retryable,
        retry_after: None,
    }
}

pub struct OtlpClient {
    config: OtlpConfig,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: http::Uri,
    headers: HeaderMap,
}

impl OtlpClient {
    pub fn new(config: OtlpConfig) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        match &config.certificate {
            Some(path) => {
                use rustls::pki_types::{pem::PemObject, CertificateDer};
                let certs = CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("cannot read OTLP certificate {}", path.display()))?;
                for cert in certs {
                    let cert = cert.with_context(|| {
                        format!("bad PEM in OTLP certificate {}", path.display())
                    })?;
                    roots
                        .add(cert)
                        .with_context(|| format!("unusable certificate in {}", path.display()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = match config.protocol {
            Protocol::Grpc => builder.enable_http2().wrap_connector(http),
            Protocol::HttpProtobuf => builder.enable_http1().enable_http2().wrap_connector(http),
        };
        let mut client = Client::builder(TokioExecutor::new());
        client.pool_idle_timeout(Duration::from_secs(30));
        if config.protocol == Protocol::Grpc {
            client.http2_only(true);
        }
        let uri: http::Uri = match config.protocol {
            Protocol::Grpc => {
                let base: http::Uri = config.endpoint.parse()?;
                let scheme = base.scheme_str().unwrap_or("http");
                let authority = base
                    .authority()
                    .ok_or_else(|| anyhow!("OTLP endpoint {:?} has no host", config.endpoint))?;
                format!("{scheme}://{authority}/opentelemetry.proto.collector.trace.v1.TraceService/Export").parse()?
            }
            Protocol::HttpProtobuf => config.endpoint.parse()?,
        };
        let mut headers = HeaderMap::new();
        for (k, v) in &config.headers {
            headers.insert(
                HeaderName::from_bytes(k.as_bytes())?,
                HeaderValue::from_str(v)?,
            );
        }
        Ok(OtlpClient {
            client: client.build(connector),
            uri,
            headers,
            config,
        })
    }

    pub fn config(&self) -> &OtlpConfig {
        &self.config
    }

    /// Sends one request, retrying retryable failures with exponential backoff until the configured
    /// timeout has passed since the first attempt.
    pub async fn export(
        &self,
        request: &ExportTraceServiceRequest,
    ) -> Result<ExportOutcome, ExportError> {
        self.export_encoded(Bytes::from(request.encode_to_vec()))
            .await
    }

    /// [`OtlpClient::export`] for a request that is already protobuf-encoded (encode once, send
    /// from a pipeline or a load generator).
    pub async fn export_encoded(&self, body: Bytes) -> Result<ExportOutcome, ExportError> {
        let deadline = Instant::now() + self.config.timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(left, self.attempt(body.clone(), left)).await;
            let err = match attempt {
                Ok(Ok(outcome)) => return Ok(outcome),
                Ok(Err(e)) => e,
                Err(_) => fail(
                    true,
                    format!(
                        "no answer from {} within {:?}",
                        self.config.endpoint, self.config.timeout
                    ),
                ),
            };
            let wait = err.retry_after.unwrap_or(backoff);
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
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn attempt(
        &self,
        payload: Bytes,
        time_left: Duration,
    ) -> Result<ExportOutcome, ExportError> {
        let mut builder = Request::post(self.uri.clone());
        *builder.headers_mut().expect("fresh request builder") = self.headers.clone();
        let body = match self.config.protocol {
            Protocol::Grpc => {
                builder = builder
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .header("grpc-timeout", format!("{}m", time_left.as_millis().max(1)));
                let (flag, msg) = if self.config.gzip {
                    builder = builder.header("grpc-encoding", "gzip");
                    (1u8, gzip(&payload))
                } else {
                    (0u8, payload)
                };
                let mut framed = Vec::with_capacity(msg.len() + 5);
                framed.push(flag);
                framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
                framed.extend_from_slice(&msg);
                Bytes::from(framed)
            }
            Protocol::HttpProtobuf => {
                builder = builder.header("content-type", "application/x-protobuf");
                if self.config.gzip {
                    builder = builder.header("content-encoding", "gzip");
                    gzip(&payload)
                } else {
                    payload
                }
            }
        };
        let request = builder
            .body(Full::new(body))
            .map_err(|e| fail(false, format!("building request: {e}")))?;
        let response = self.client.request(request).await.map_err(|e| {
            fail(
                true,
                format!("cannot reach {}: {}", self.config.endpoint, error_chain(&e)),
            )
        })?;
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.map_err(|e| {
            fail(
                true,
                format!("reading the answer of {}: {e}", self.config.endpoint),
            )
        })?;
        let trailers = collected.trailers().cloned();
        let bytes = collected.to_bytes();
        match self.config.protocol {
            Protocol::HttpProtobuf => http_outcome(parts.status, &parts.headers, &bytes),
            Protocol::Grpc => grpc_outcome(parts.status, &parts.headers, trailers.as_ref(), bytes),
        }
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

fn decode_response(bytes: &[u8]) -> Result<ExportOutcome, ExportError> {
    let resp = ExportTraceServiceResponse::decode(bytes).map_err(|e| {
        fail(
            false,
            format!("collector answered with an undecodable response: {e}"),
        )
    })?;
    Ok(match resp.partial_success {
        Some(p) => ExportOutcome {
            rejected_spans: p.rejected_spans,
            message: p.error_message,
        },
        None => ExportOutcome::default(),
    })
}

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
        return decode_response(body);
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
        retryable,
        retry_after,
    })
}

fn grpc_outcome(
    status: StatusCode,
    headers: &HeaderMap,
    trailers: Option<&HeaderMap>,
    mut body: Bytes,
) -> Result<ExportOutcome, ExportError> {
    if status != StatusCode::OK {
        let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
        return Err(fail(
            retryable,
            format!("collector answered HTTP {status} to a gRPC request"),
        ));
    }
    // Trailers-only responses carry grpc-status in the headers.
    let meta = trailers
        .filter(|t| t.contains_key("grpc-status"))
        .unwrap_or(headers);
    let code: u32 = meta
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| fail(true, "gRPC answer without grpc-status"))?;
    if code != 0 {
        let message = meta
            .get("grpc-message")
            .map(|v| percent_decode_lossy(v.as_bytes()))
            .unwrap_or_default();
        // UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED, CANCELLED, OUT_OF_RANGE,
        // DATA_LOSS are retryable per the OTLP spec.
        let retryable = matches!(code, 1 | 4 | 8 | 10 | 11 | 14 | 15);
        return Err(fail(
            retryable,
            format!(
                "collector answered gRPC status {code} ({}): {message}",
                grpc_code_name(code)
            ),
        ));
    }
    if body.len() < 5 {
        return Ok(ExportOutcome::default());
    }
    let compressed = body.get_u8() == 1;
    let len = body.get_u32() as usize;
    let msg = body.slice(..len.min(body.len()));
    if compressed {
        let mut out = Vec::new();
        GzDecoder::new(&msg[..])
            .read_to_end(&mut out)
            .map_err(|e| fail(false, format!("undecodable gzip gRPC answer: {e}")))?;
        decode_response(&out)
    } else {
        decode_response(&msg)
    }
}

pub fn grpc_code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("UNKNOWN")
}

fn percent_decode_lossy(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
}
