//! Span files (DESIGN.md §4): two JSON Lines formats, readable everywhere and autodetected per
//! line, written with one `write(2)` per batch of whole lines on an `O_APPEND` file so a crash
//! leaves at most one torn last line.

pub mod chrome;
pub mod otlp_json;
pub mod path;
pub mod python;
pub mod time;

use anyhow::Context;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};
use python::{ResourceMode, SharedResource};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
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

/// Renders spans in `format` as whole lines appended to `out`.
pub fn render(out: &mut Vec<u8>, format: LineFormat, resource_spans: &[ResourceSpans]) {
    match format {
        LineFormat::Otlp => {
            if resource_spans
                .iter()
                .any(|rs| rs.scope_spans.iter().any(|ss| !ss.spans.is_empty()))
            {
                otlp_json::write_line(out, resource_spans)
            }
        }
        LineFormat::Python => {
            for rs in resource_spans {
                python::write_resource_spans(out, rs);
            }
        }
    }
}

/// Counts spans in a batch.
pub fn span_count(resource_spans: &[ResourceSpans]) -> usize {
    resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

/// One rank's span file, opened for appending. Shared by otel-run's own spans and (via the sink)
/// the child's, so both land in the same file in the same format.
pub struct SpanFile {
    file: File,
    path: PathBuf,
    format: LineFormat,
}

impl SpanFile {
    /// Creates (mode 0600) or appends to `path`.
    pub fn open(path: &Path, format: LineFormat) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot open span file {}", path.display()))?;
        Ok(SpanFile {
            file,
            path: path.to_path_buf(),
            format,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> LineFormat {
        self.format
    }

    /// Appends the spans as whole lines in one write, so concurrent writers (the child's own
    /// `jsonlines` exporter appends to the same file) never interleave inside a line.
    pub fn append(&mut self, resource_spans: &[ResourceSpans]) -> anyhow::Result<()> {
        let mut buf = Vec::with_capacity(1024);
        render(&mut buf, self.format, resource_spans);
        self.append_rendered(&buf)
    }

    pub fn append_rendered(&mut self, buf: &[u8]) -> anyhow::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(buf)
            .with_context(|| format!("cannot write span file {}", self.path.display()))
    }

    /// Forces the file to stable storage (called at the end of a run and after a signal).
    pub fn sync(&self) -> anyhow::Result<()> {
        self.file
            .sync_data()
            .with_context(|| format!("cannot fsync span file {}", self.path.display()))
    }

    /// Appends spans whose final version is not known yet, with `room` spare bytes (spaces before
    /// the last newline, which JSON readers ignore), so [`SpanFile::rewrite`] can later replace
    /// them in place. The file never holds two versions of a span.
    pub fn append_reserved(
        &mut self,
        resource_spans: &[ResourceSpans],
        room: usize,
    ) -> anyhow::Result<Reservation> {
        let mut buf = Vec::with_capacity(2048);
        render(&mut buf, self.format, resource_spans);
        let padded = buf.len() + room;
        pad_last_line(&mut buf, padded);
        self.append_rendered(&buf)?;
        // O_APPEND leaves the offset at the end of what this write added, even with other writers.
        let end = self
            .file
            .stream_position()
            .with_context(|| format!("cannot locate the write in {}", self.path.display()))?;
        Ok(Reservation {
            offset: end - buf.len() as u64,
            len: buf.len(),
        })
    }

    /// Replaces reserved spans in place; `Ok(false)` when the new version does not fit.
    pub fn rewrite(
        &mut self,
        reservation: &Reservation,
        resource_spans: &[ResourceSpans],
    ) -> anyhow::Result<bool> {
        let mut buf = Vec::with_capacity(reservation.len);
        render(&mut buf, self.format, resource_spans);
        if buf.len() > reservation.len {
            return Ok(false);
        }
        pad_last_line(&mut buf, reservation.len);
        // pwrite on an O_APPEND descriptor appends on Linux, so rewriting needs its own.
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .with_context(|| format!("cannot reopen span file {}", self.path.display()))?;
        use std::os::unix::fs::FileExt;
        file.write_all_at(&buf, reservation.offset)
            .with_context(|| format!("cannot rewrite span file {}", self.path.display()))?;
        file.sync_data()
            .with_context(|| format!("cannot fsync span file {}", self.path.display()))?;
        Ok(true)
    }
}

/// Where reserved spans are in the file.
#[derive(Debug, Clone, Copy)]
pub struct Reservation {
    offset: u64,
    len: usize,
}

fn pad_last_line(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len && buf.last() == Some(&b'\n') {
        buf.pop();
        buf.resize(len - 1, b' ');
        buf.push(b'\n');
    }
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

/// Parses one line of either format (detected from its first key: `resourceSpans` is otlp).
pub fn parse_line(line: &[u8]) -> Result<TracesData, String> {
    parse_line_opts(line, ResourceMode::Copy).map(|(data, _)| data)
}

/// Python lines' resources as `mode` says (see [`Reader::without_resources`] and
/// [`Reader::shared_resources`]); otlp lines keep theirs in the data.
fn parse_line_opts(
    line: &[u8],
    mode: ResourceMode,
) -> Result<(TracesData, Option<Arc<SharedResource>>), String> {
    if first_key(line) == Some(&b"resourceSpans"[..]) {
        otlp_json::parse_line(line).map(|data| (data, None))
    } else {
        python::parse(line, mode).map(|(rs, shared)| {
            let data = TracesData {
                resource_spans: vec![rs],
            };
            (data, shared)
        })
    }
}

fn first_key(line: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < line.len() && line[*i].is_ascii_whitespace() {
            *i += 1
        }
    };
    skip_ws(&mut i);
    if line.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    skip_ws(&mut i);
    if line.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let end = start + line[start..].iter().position(|b| *b == b'"')?;
    Some(&line[start..end])
}

/// Streams the lines of one span file as parsed `TracesData`, numbering lines from 1.
pub struct Reader<R> {
    name: String,
    input: R,
    line_no: u64,
    buf: Vec<u8>,
    resources: ResourceMode,
    shared: Option<Arc<SharedResource>>,
}

impl<R: BufRead> Reader<R> {
    pub fn new(name: impl Into<String>, input: R) -> Self {
        Reader {
            name: name.into(),
            input,
            line_no: 0,
            buf: Vec::with_capacity(4096),
            resources: ResourceMode::Copy,
            shared: None,
        }
    }

    /// For passes that only validate and count: python lines come without their resource
    /// (checked, not copied: no allocation for it).
    pub fn without_resources(mut self) -> Self {
        self.resources = ResourceMode::Skip;
        self
    }

    /// Python lines come without their resource, which [`Reader::shared_resource`] hands out
    /// instead: the same `Arc` for lines with the same resource text, so a consumer can group by
    /// it without copying and comparing a resource per span.
    pub fn shared_resources(mut self) -> Self {
        self.resources = ResourceMode::Shared;
        self
    }

    /// With [`Reader::shared_resources`], the resource of the python line `next_data` returned
    /// last (its data then holds none); `None` for an otlp line (its data holds its resources).
    pub fn shared_resource(&self) -> Option<&Arc<SharedResource>> {
        self.shared.as_ref()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The line `next_data` parsed last, trimmed: lets merge copy python lines through unchanged.
    pub fn last_line(&self) -> &[u8] {
        trim_ascii(&self.buf)
    }

    /// The next non-blank line: `Ok(None)` at end of input.
    pub fn next_data(&mut self) -> Result<Option<(u64, TracesData)>, LineError> {
        let read_error = |name: &str, line: u64, e: std::io::Error| LineError {
            file: name.to_string(),
            line,
            reason: format!("read error: {e}"),
            torn: false,
        };
        loop {
            // A whole line in the input's buffer is parsed where it is, without a copy.
            let available = self
                .input
                .fill_buf()
                .map_err(|e| read_error(&self.name, self.line_no + 1, e))?;
            if let Some(end) = memchr::memchr(b'\n', available) {
                self.line_no += 1;
                let line = trim_ascii(&available[..end]);
                // Kept for `last_line` (merge copies python lines through): a memcpy, a few
                // percent of the parse.
                self.buf.clear();
                self.buf.extend_from_slice(line);
                let parsed = (!line.is_empty()).then(|| parse_line_opts(line, self.resources));
                self.input.consume(end + 1);
                match parsed {
                    None => continue,
                    Some(parsed) => return self.outcome(parsed, true),
                }
            }
            // The line runs past the buffer (or is the last one, without a newline).
            self.buf.clear();
            let n = self
                .input
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| read_error(&self.name, self.line_no + 1, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let complete = self.buf.last() == Some(&b'\n');
            let line = trim_ascii(&self.buf);
            if line.is_empty() {
                continue;
            }
            let parsed = parse_line_opts(line, self.resources);
            return self.outcome(parsed, complete);
        }
    }

    fn outcome(
        &mut self,
        parsed: Result<(TracesData, Option<Arc<SharedResource>>), String>,
        complete: bool,
    ) -> Result<Option<(u64, TracesData)>, LineError> {
        self.shared = None;
        match parsed {
            Ok((data, shared)) => {
                self.shared = shared;
                Ok(Some((self.line_no, data)))
            }
            Err(reason) => Err(LineError {
                file: self.name.clone(),
                line: self.line_no,
                // A line without its newline is the last one; if it does not parse, it is
                // what a crash in the middle of a write leaves behind.
                torn: !complete,
                reason: if complete {
                    reason
                } else {
                    format!("torn last line (no newline): {reason}")
                },
            }),
        }
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::common::v1::{
        any_value::Value, AnyValue, ArrayValue, KeyValueList,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{span, ScopeSpans, Span, Status};

    pub(crate) fn sample() -> ResourceSpans {
        let nested = Value::KvlistValue(KeyValueList {
            values: vec![attr::int("inner", 1)],
        });
        let array = Value::ArrayValue(ArrayValue {
            values: vec![
                AnyValue {
                    value: Some(Value::IntValue(1)),
                },
                AnyValue {
                    value: Some(Value::IntValue(2)),
                },
            ],
        });
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    attr::string("service.name", "sim"),
                    attr::int("mpi.rank", 3),
                ],
                ..Default::default()
            }),
            schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1.2".into(),
                    ..Default::default()
                }),
                schema_url: "https://opentelemetry.io/schemas/scope".into(),
                spans: vec![Span {
                    trace_id: vec![0xab; 16],
                    span_id: vec![0x01; 8],
                    parent_span_id: vec![0x02; 8],
                    trace_state: "vendor=value".into(),
                    name: "step \"1\"".into(),
                    kind: span::SpanKind::Client as i32,
                    start_time_unix_nano: 1_700_000_000_123_456_789,
                    end_time_unix_nano: 1_700_000_001_000_000_001,
                    attributes: vec![
                        attr::string("s", "x"),
                        attr::boolean("b", true),
                        attr::int("i", -7),
                        attr::double("d", 1.0),
                        attr::kv("a", array),
                        attr::kv("m", nested),
                    ],
                    events: vec![span::Event {
                        time_unix_nano: 1_700_000_000_500_000_000,
                        name: "ev".into(),
                        attributes: vec![attr::int("n", 1)],
                        dropped_attributes_count: 0,
                    }],
                    links: vec![span::Link {
                        trace_id: vec![0xcd; 16],
                        span_id: vec![0x03; 8],
                        trace_state: String::new(),
                        attributes: vec![attr::string("why", "x")],
                        dropped_attributes_count: 0,
                        flags: 0,
                    }],
                    status: Some(Status {
                        code: 2,
                        message: "boom".into(),
                    }),
                    ..Default::default()
                }],
            }],
        }
    }

    #[test]
    fn both_formats_round_trip_losslessly() {
        for format in [LineFormat::Python, LineFormat::Otlp] {
            let mut buf = Vec::new();
            render(&mut buf, format, &[sample()]);
            assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 1);
            let back = parse_line(trim_ascii(&buf)).unwrap();
            assert_eq!(
                back.resource_spans,
                vec![sample()],
                "{format:?}: {}",
                String::from_utf8_lossy(&buf)
            );
        }
    }

    #[test]
    fn reader_numbers_lines_and_flags_torn_last_line() {
        let mut good = Vec::new();
        render(&mut good, LineFormat::Python, &[sample()]);
        let mut input = good.clone();
        input.extend_from_slice(b"\n");
        input.extend_from_slice(&good);
        input.extend_from_slice(&good[..good.len() / 2]);
        let mut r = Reader::new("f.jsonl", &input[..]);
        assert_eq!(r.next_data().unwrap().unwrap().0, 1);
        assert_eq!(r.next_data().unwrap().unwrap().0, 3);
        let err = r.next_data().unwrap_err();
        assert!(err.torn && err.line == 4, "{err}");
        assert!(
            err.to_string().starts_with("f.jsonl:4: torn last line"),
            "{err}"
        );
        assert_eq!(r.next_data().unwrap(), None);
    }

    #[test]
    fn reserved_spans_are_rewritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        let mut f = SpanFile::open(&path, LineFormat::Python).unwrap();
        f.append(&[sample()]).unwrap();
        let r = f.append_reserved(&[sample()], 100).unwrap();
        f.append(&[sample()]).unwrap();
        let mut changed = sample();
        changed.scope_spans[0].spans[0].name = "a longer name than before".into();
        assert!(f.rewrite(&r, &[changed.clone()]).unwrap());
        let content = std::fs::read(&path).unwrap();
        let mut reader = Reader::new("f", &content[..]);
        let names: Vec<String> = std::iter::from_fn(|| reader.next_data().unwrap())
            .map(|(_, d)| d.resource_spans[0].scope_spans[0].spans[0].name.clone())
            .collect();
        assert_eq!(
            names,
            ["step \"1\"", "a longer name than before", "step \"1\""]
        );
        changed.scope_spans[0].spans[0].name = "x".repeat(500);
        assert!(
            !f.rewrite(&r, &[changed]).unwrap(),
            "too long: refused, file untouched"
        );
    }

    #[test]
    fn without_resources_keeps_everything_but_the_resource_copy() {
        let mut line = Vec::new();
        render(&mut line, LineFormat::Python, &[sample()]);
        let full = Reader::new("f", &line[..]).next_data().unwrap().unwrap().1;
        let mut bare = Reader::new("f", &line[..])
            .without_resources()
            .next_data()
            .unwrap()
            .unwrap()
            .1;
        assert_eq!(bare.resource_spans[0].resource, None);
        assert_eq!(bare.resource_spans[0].schema_url, "");
        bare.resource_spans[0].resource = full.resource_spans[0].resource.clone();
        bare.resource_spans[0].schema_url = full.resource_spans[0].schema_url.clone();
        assert_eq!(bare, full);
        // The resource is still validated.
        let bad = String::from_utf8(line).unwrap().replace(
            r#""schema_url":"https://opentelemetry.io/schemas/1.21.0""#,
            r#""schema_url":5"#,
        );
        let err = Reader::new("f", bad.as_bytes())
            .without_resources()
            .next_data()
            .unwrap_err();
        assert!(err.reason.contains("resource: invalid type"), "{err}");
    }

    #[test]
    fn bad_complete_line_is_not_torn() {
        let mut r = Reader::new("f", &b"{not json}\n"[..]);
        let err = r.next_data().unwrap_err();
        assert!(!err.torn);
        assert!(err.to_string().starts_with("f:1: "), "{err}");
    }
}
