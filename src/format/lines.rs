//! Reading span files line by line: [`Lines`] hands out raw lines (numbered from 1, blank lines
//! skipped, a last line without its newline marked), [`Reader`] parses them. merge reads raw lines
//! (it copies python lines through as they are), replay and summary parsed ones; both go through
//! the same parser, `format::parse`.

use super::python::{Detail, SharedResource};
use super::LineError;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use std::io::BufRead;
use std::sync::Arc;

/// The longest line any reader accepts (`file:line: line longer than N bytes` beyond it): a line
/// is the one thing a reader must hold whole, so this bounds a reader's memory whatever the input
/// (a `.gz` of NULs without a newline). The sink's largest request, even rendered with every byte
/// escaped, stays below it.
pub const MAX_LINE_BYTES: usize = 128 << 20;

/// The non-blank lines of one input.
pub struct Lines<R> {
    name: String,
    input: R,
    line_no: u64,
    /// A line that runs past the input's buffer (or is the last one) is gathered here.
    buf: Vec<u8>,
    max_line: usize,
}

/// One line handed to [`Lines::next_line`]'s callback.
pub struct Line<'a> {
    /// The input's name, for messages.
    pub name: &'a str,
    pub no: u64,
    /// Trimmed of surrounding whitespace; never empty.
    pub text: &'a [u8],
    /// Ended by a newline: a last line without one may be torn.
    pub complete: bool,
}

impl Line<'_> {
    /// `file:line: reason`; a line without its newline is the last one, and if it does not parse
    /// it is what a crash in the middle of a write leaves behind.
    pub fn error(&self, reason: String) -> LineError {
        // Only what a crash in the middle of a write leaves is a torn line: the start of a JSON
        // object cut short. Garbage without a newline is an error like any other.
        let torn =
            !self.complete && self.text.starts_with(b"{") && reason.contains("EOF while parsing");
        LineError {
            file: self.name.to_string(),
            line: self.no,
            torn,
            reason: if self.complete || !torn {
                reason
            } else {
                format!("torn last line (no newline): {reason}")
            },
        }
    }
}

impl<R: BufRead> Lines<R> {
    pub fn new(name: impl Into<String>, input: R) -> Self {
        Lines {
            name: name.into(),
            input,
            line_no: 0,
            buf: Vec::with_capacity(4096),
            max_line: MAX_LINE_BYTES,
        }
    }

    /// A smaller line limit, for tests and the fuzz targets.
    #[doc(hidden)]
    pub fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls `f` with the next non-blank line (in place when it is whole in the input's buffer:
    /// no copy); `Ok(None)` at the end of the input.
    pub fn next_line<T>(&mut self, f: impl FnOnce(Line) -> T) -> Result<Option<T>, LineError> {
        let mut f = Some(f);
        let mut call = |line: Line| (f.take().expect("called once"))(line);
        loop {
            let available = match self.input.fill_buf() {
                Ok(available) => available,
                Err(e) => return Err(read_error(&self.name, self.line_no, e)),
            };
            if let Some(end) = memchr::memchr(b'\n', available) {
                self.line_no += 1;
                let text = available[..end].trim_ascii();
                let out = (!text.is_empty()).then(|| {
                    call(Line {
                        name: &self.name,
                        no: self.line_no,
                        text,
                        complete: true,
                    })
                });
                self.input.consume(end + 1);
                match out {
                    None => continue,
                    Some(out) => return Ok(Some(out)),
                }
            }
            self.buf.clear();
            let n = self.read_bounded_line()?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let complete = self.buf.last() == Some(&b'\n');
            let text = self.buf.trim_ascii();
            if text.is_empty() {
                continue;
            }
            return Ok(Some(call(Line {
                name: &self.name,
                no: self.line_no,
                text,
                complete,
            })));
        }
    }
}

impl<R: BufRead> Lines<R> {
    /// `read_until(b'\n')` into `self.buf` that stops at [`MAX_LINE_BYTES`]: the rest of an
    /// overlong line is skipped (read, not kept) and the line is an error, so a caller that skips
    /// bad lines goes on with the next one.
    fn read_bounded_line(&mut self) -> Result<usize, LineError> {
        let mut total = 0usize;
        loop {
            let available = match self.input.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(&self.name, self.line_no, e)),
            };
            if available.is_empty() {
                return Ok(total);
            }
            let (take, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if self.buf.len() + take > self.max_line + 1 {
                self.input.consume(take);
                let mut rest_done = done;
                while !rest_done {
                    let available = match self.input.fill_buf() {
                        Ok(a) => a,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(read_error(&self.name, self.line_no, e)),
                    };
                    if available.is_empty() {
                        break;
                    }
                    let (take, done) = match memchr::memchr(b'\n', available) {
                        Some(i) => (i + 1, true),
                        None => (available.len(), false),
                    };
                    self.input.consume(take);
                    rest_done = done;
                }
                self.line_no += 1;
                self.buf.clear();
                return Err(LineError {
                    file: self.name.clone(),
                    line: self.line_no,
                    reason: format!("line longer than {} bytes", self.max_line),
                    torn: false,
                });
            }
            self.buf.extend_from_slice(&available[..take]);
            self.input.consume(take);
            total += take;
            if done {
                return Ok(total);
            }
        }
    }
}

/// A read error, on the line after `line_no`.
fn read_error(name: &str, line_no: u64, e: std::io::Error) -> LineError {
    LineError {
        file: name.to_string(),
        line: line_no + 1,
        reason: format!("read error: {e}"),
        torn: false,
    }
}

/// Streams the lines of one span file as parsed `TracesData`.
pub struct Reader<R> {
    lines: Lines<R>,
    detail: Detail,
    shared: Option<Arc<SharedResource>>,
}

impl<R: BufRead> Reader<R> {
    pub fn new(name: impl Into<String>, input: R) -> Self {
        Lines::new(name, input).into()
    }

    /// Python lines come without their resource, which [`Reader::shared_resource`] hands out
    /// instead (see [`Detail::SharedResource`]).
    pub fn shared_resources(mut self) -> Self {
        self.detail = Detail::SharedResource;
        self
    }

    /// Python lines come as sketches (see [`Detail::Sketch`]): for passes that check and count.
    pub fn sketches(mut self) -> Self {
        self.detail = Detail::Sketch;
        self
    }

    /// The resource of the python line `next_data` returned last when it is shared (its data then
    /// holds none); `None` for an otlp line (its data holds its resources).
    pub fn shared_resource(&self) -> Option<&Arc<SharedResource>> {
        self.shared.as_ref()
    }

    pub fn name(&self) -> &str {
        self.lines.name()
    }

    /// The next non-blank line with its number: `Ok(None)` at end of input.
    pub fn next_data(&mut self) -> Result<Option<(u64, TracesData)>, LineError> {
        let detail = self.detail;
        let parsed = self.lines.next_line(|line| {
            super::parse(line.text, detail)
                .map(|(data, shared)| (line.no, data, shared))
                .map_err(|reason| line.error(reason))
        })?;
        self.shared = None;
        match parsed {
            None => Ok(None),
            Some(Err(e)) => Err(e),
            Some(Ok((no, data, shared))) => {
                self.shared = shared;
                Ok(Some((no, data)))
            }
        }
    }
}

impl<R: BufRead> From<Lines<R>> for Reader<R> {
    fn from(lines: Lines<R>) -> Self {
        Reader {
            lines,
            detail: Detail::Full,
            shared: None,
        }
    }
}
