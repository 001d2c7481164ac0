//! Span files: two JSON Lines formats (python and otlp), readable everywhere and detected per line
//! from the first key. This module reads them ([`Lines`], [`Reader`], [`parse`]) and owns the span
//! file itself ([`SpanFile`]); rendering spans in a format is `export`'s job.

mod file;
mod lines;
pub mod otlp_json;
pub mod path;
pub mod python;
pub mod repair;
pub mod time;

pub use file::{Reservation, SpanFile};
pub use lines::{Line, Lines, Reader, MAX_LINE_BYTES};
pub use python::{Detail, SharedResource};

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};
use std::sync::Arc;

/// The line format otel-run writes; both are always accepted on input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LineFormat {
    /// OpenTelemetry Python's `ReadableSpan.to_json()`, one span per line (bsb-otel compatible).
    #[default]
    Python,
    /// OTLP/JSON `TracesData` per line (OpenTelemetry Collector file exporter format).
    Otlp,
}

/// Counts spans in a batch.
pub fn span_count(resource_spans: &[ResourceSpans]) -> usize {
    resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

/// A line that could not be read, with where it is (`file:line: reason`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct LineError {
    pub file: String,
    pub line: u64,
    pub reason: String,
    /// The file's last line, without a trailing newline: what a crash mid-write leaves. Readers
    /// skip it with a warning instead of failing.
    pub torn: bool,
}

/// Parses one line of either format, python lines' resources copied in.
pub fn parse_line(line: &[u8]) -> Result<TracesData, String> {
    parse(line, Detail::Full).map(|(data, _)| data)
}

/// Parses one line of either format; python lines in `detail`, with their resource beside them
/// when it is shared. otlp lines are always whole and hold their resources.
pub fn parse(
    line: &[u8],
    detail: Detail,
) -> Result<(TracesData, Option<Arc<SharedResource>>), String> {
    let parsed = if is_otlp_line(line) {
        otlp_json::parse_line(line).map(|data| (data, None))
    } else {
        python::parse(line, detail).map(|(rs, shared)| {
            let data = TracesData {
                resource_spans: vec![rs],
            };
            (data, shared)
        })
    };
    parsed.map_err(|reason| with_hint(line, reason))
}

/// `reason`, plus what is probably wrong when `line` looks like a piece of pretty-printed JSON
/// (every reader that refuses a line says it the same way).
pub fn with_hint(line: &[u8], reason: String) -> String {
    match looks_pretty_printed(line) {
        true => format!(
            "{reason} (one span per line expected; this looks like pretty-printed JSON, e.g. \
             console exporter output)"
        ),
        false => reason,
    }
}

/// A line that is only part of a JSON value: `{`, `}`, `"key": value,` — what pretty-printed
/// JSON (OpenTelemetry's console exporter, `json.dumps(indent=4)`) puts on a line.
fn looks_pretty_printed(line: &[u8]) -> bool {
    let t = line.trim_ascii();
    matches!(t, b"{" | b"}" | b"}," | b"[" | b"]" | b"],") || t.starts_with(b"\"")
}

/// Whether a line is in the otlp format: its first key is `resourceSpans`.
pub fn is_otlp_line(line: &[u8]) -> bool {
    let rest = line.trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b"{") else {
        return false;
    };
    rest.trim_ascii_start().starts_with(b"\"resourceSpans\"")
}

#[cfg(test)]
pub(crate) mod tests;
