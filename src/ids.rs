//! Trace identity: W3C `traceparent` parsing/formatting and the derivation of the job's trace id
//! and step-root span id (ARCHITECTURE.md §5).
//!
//! Every rank derives the same ids from the same job key without talking to the others, so the
//! per-rank span files form one trace when merged.

use sha2::{Digest, Sha256};
use std::fmt;

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// Domain separator so our derived ids never collide with another tool hashing the same key.
const DERIVATION_PREFIX: &[u8] = b"otel-run/1\0";

/// A validated W3C trace context (`traceparent` + optional `tracestate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub flags: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    #[error("expected 4 dash-separated fields (version-traceid-spanid-flags)")]
    Shape,
    #[error("version {0:?} is not two lowercase hex digits other than ff")]
    Version(String),
    #[error("version 00 allows nothing after the flags")]
    TrailingData,
    #[error("trace id {0:?} is not 32 lowercase hex digits")]
    TraceId(String),
    #[error("span id {0:?} is not 16 lowercase hex digits")]
    SpanId(String),
    #[error("flags {0:?} are not two hex digits")]
    Flags(String),
    #[error("trace id is all zeroes")]
    ZeroTraceId,
    #[error("span id is all zeroes")]
    ZeroSpanId,
}

impl TraceParent {
    /// Parses a `traceparent` value as the W3C Trace Context spec says a receiver must: exact
    /// lowercase hex, no all-zero ids, version ff invalid, future versions may append fields.
    pub fn parse(value: &str) -> Result<Self, TraceParentError> {
        let value = value.trim();
        let mut parts = value.splitn(5, '-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TraceParentError::Shape);
        };
        let rest = parts.next();
        if version.len() != 2 || !is_lower_hex(version) || version == "ff" {
            return Err(TraceParentError::Version(version.to_string()));
        }
        if version == "00" && rest.is_some() {
            return Err(TraceParentError::TrailingData);
        }
        let flags_str = flags;
        if flags_str.len() != 2 || !is_lower_hex(flags_str) {
            return Err(TraceParentError::Flags(flags_str.to_string()));
        }
        let trace_id: TraceId =
            decode_hex_exact(trace).ok_or_else(|| TraceParentError::TraceId(trace.to_string()))?;
        let span_id: SpanId =
            decode_hex_exact(span).ok_or_else(|| TraceParentError::SpanId(span.to_string()))?;
        if trace_id == [0; 16] {
            return Err(TraceParentError::ZeroTraceId);
        }
        if span_id == [0; 8] {
            return Err(TraceParentError::ZeroSpanId);
        }
        let flags = u8::from_str_radix(flags_str, 16)
            .map_err(|_| TraceParentError::Flags(flags_str.into()))?;
        Ok(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Lowercase hex of any byte string.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Decodes exactly `N` bytes of lowercase hex (the W3C rule; uppercase is invalid there).
pub fn decode_hex_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !is_lower_hex(s) {
        return None;
    }
    decode_hex_any::<N>(s)
}

/// Decodes exactly `N` bytes of hex, either case (span files written by other tools).
pub fn decode_hex_any<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The job's trace id: `SHA-256("otel-run/1\0" + job key)[0..16]`.
pub fn derive_trace_id(job_key: &str) -> TraceId {
    let digest = Sha256::new()
        .chain_update(DERIVATION_PREFIX)
        .chain_update(job_key.as_bytes())
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    non_zero_trace(id)
}

/// The step root's span id, derived from (trace id, job key) so that every rank names the same
/// parent; including the trace id keeps it distinct when an outer TRACEPARENT sets the trace.
pub fn derive_step_span_id(trace_id: &TraceId, job_key: &str) -> SpanId {
    let digest = Sha256::new()
        .chain_update(DERIVATION_PREFIX)
        .chain_update(b"step\0")
        .chain_update(trace_id)
        .chain_update(job_key.as_bytes())
        .finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    non_zero_span(id)
}

pub fn random_trace_id() -> TraceId {
    non_zero_trace(rand::random())
}

pub fn random_span_id() -> SpanId {
    non_zero_span(rand::random())
}

// An all-zero id is invalid in W3C and OTLP; the chance is 2^-64 or less, but it costs nothing.
fn non_zero_trace(mut id: TraceId) -> TraceId {
    if id == [0; 16] {
        id[15] = 1;
    }
    id
}

fn non_zero_span(mut id: SpanId) -> SpanId {
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_w3c_example() {
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(v).unwrap();
        assert_eq!(hex(&tp.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&tp.span_id), "00f067aa0ba902b7");
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.to_string(), v);
    }

    #[test]
    fn rejects_malformed_traceparents() {
        let cases = [
            ("", TraceParentError::Shape),
            ("00-abc", TraceParentError::Shape),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceParentError::Version("ff".into()),
            ),
            (
                "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceParentError::Version("0".into()),
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                TraceParentError::TraceId("4BF92F3577B34DA6A3CE929D0E0E4736".into()),
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                TraceParentError::ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                TraceParentError::ZeroSpanId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
                TraceParentError::SpanId("00f067aa0ba902b".into()),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                TraceParentError::Flags("1".into()),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                TraceParentError::TrailingData,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(TraceParent::parse(input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn future_versions_may_carry_more_fields() {
        let tp = TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what")
            .unwrap();
        assert_eq!(tp.flags, 1);
    }

    #[test]
    fn derivation_is_stable_and_key_dependent() {
        let a = derive_trace_id("slurm:localci:12.0:0");
        assert_eq!(a, derive_trace_id("slurm:localci:12.0:0"));
        assert_ne!(a, derive_trace_id("slurm:localci:13.0:0"));
        let s = derive_step_span_id(&a, "slurm:localci:12.0:0");
        assert_eq!(s, derive_step_span_id(&a, "slurm:localci:12.0:0"));
        assert_ne!(
            s,
            derive_step_span_id(&random_trace_id(), "slurm:localci:12.0:0")
        );
    }
}
