//! Where merged spans go: python or otlp lines or Chrome trace-event JSON (through the format's
//! `export::SpanWriter`), to stdout or to a file that appears only when the merge succeeded (written beside it
//! under a temporary name, then renamed), so an interrupted merge never leaves half a file.

use super::record::Record;
use crate::cli::MergeFormat;
use crate::export::{Format, SpanWriter};
use anyhow::Context;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// otlp lines group consecutive spans of one resource and scope, up to this many per line.
const OTLP_SPANS_PER_LINE: usize = 512;
const FLUSH_AT: usize = 1 << 20;

pub struct Output {
    sink: BufWriter<Box<dyn Write + Send>>,
    /// (temporary path, final path) for -o.
    rename: Option<(PathBuf, PathBuf)>,
    name: String,
    format: MergeFormat,
    buf: Vec<u8>,
    pending: Option<ResourceSpans>,
    writer: Box<dyn SpanWriter>,
    pub written: u64,
}

impl Output {
    pub fn create(path: Option<&Path>, format: MergeFormat) -> anyhow::Result<Output> {
        let (sink, rename, name): (Box<dyn Write + Send>, _, _) = match path {
            None => (Box::new(std::io::stdout()), None, "<stdout>".to_string()),
            // A device or pipe (-o /dev/null, a FIFO) is written in place: renaming a temporary
            // file over it would replace the device node itself.
            Some(path) if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("-o {}: cannot open", path.display()))?;
                (Box::new(file), None, path.display().to_string())
            }
            Some(path) => {
                let file_name = path
                    .file_name()
                    .with_context(|| format!("-o {}: not a file name", path.display()))?;
                let temp = path.with_file_name(format!(
                    ".{}.otel-run-{}.tmp",
                    file_name.to_string_lossy(),
                    std::process::id()
                ));
                let file = File::create(&temp).with_context(|| {
                    format!("-o {}: cannot create {}", path.display(), temp.display())
                })?;
                (
                    Box::new(file),
                    Some((temp, path.to_path_buf())),
                    path.display().to_string(),
                )
            }
        };
        let mut out = Output {
            sink: BufWriter::with_capacity(FLUSH_AT, sink),
            rename,
            name,
            format,
            buf: Vec::with_capacity(FLUSH_AT + 64 * 1024),
            pending: None,
            writer: Format::from(format).writer(),
            written: 0,
        };
        out.writer.begin(&mut out.buf);
        Ok(out)
    }

    /// Whether python lines are written as they were read (see [`Output::write_lines`]).
    pub fn copies_python_lines(&self) -> bool {
        self.format == MergeFormat::Python
    }

    /// Writes `count` python lines (each ending in a newline) as they are.
    pub fn write_lines(&mut self, lines: &[u8], count: u64) -> anyhow::Result<()> {
        self.written += count;
        if self.buf.is_empty() {
            return self
                .sink
                .write_all(lines)
                .with_context(|| format!("cannot write {}", self.name));
        }
        self.buf.extend_from_slice(lines);
        if self.buf.len() >= FLUSH_AT {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Writes one record's span: a python line as it was read when the output is python too.
    pub fn write_record(&mut self, r: &Record) -> anyhow::Result<()> {
        match r.python_line() {
            Some(line) if self.format == MergeFormat::Python => {
                self.written += 1;
                self.buf.extend_from_slice(line);
                self.buf.push(b'\n');
                if self.buf.len() >= FLUSH_AT {
                    self.flush_buf()?;
                }
                Ok(())
            }
            _ => self.write(r.decode()?),
        }
    }

    /// Writes one span (a `ResourceSpans` holding it alone).
    pub fn write(&mut self, rs: ResourceSpans) -> anyhow::Result<()> {
        self.written += 1;
        match self.format {
            MergeFormat::Otlp => self.group(rs),
            MergeFormat::Python | MergeFormat::Chrome => self.writer.write(&mut self.buf, &[rs]),
        }
        if self.buf.len() >= FLUSH_AT {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn group(&mut self, rs: ResourceSpans) {
        if let Some(p) = &mut self.pending {
            let fits = p.resource == rs.resource
                && p.schema_url == rs.schema_url
                && p.scope_spans[0].scope == rs.scope_spans[0].scope
                && p.scope_spans[0].schema_url == rs.scope_spans[0].schema_url
                && p.scope_spans[0].spans.len() < OTLP_SPANS_PER_LINE;
            if fits {
                p.scope_spans[0]
                    .spans
                    .extend(rs.scope_spans.into_iter().flat_map(|ss| ss.spans));
                return;
            }
        }
        if let Some(done) = self.pending.replace(rs) {
            self.writer.write(&mut self.buf, &[done]);
        }
    }

    fn flush_buf(&mut self) -> anyhow::Result<()> {
        self.sink
            .write_all(&self.buf)
            .with_context(|| format!("cannot write {}", self.name))?;
        self.buf.clear();
        Ok(())
    }

    /// Completes the output (and renames it into place for -o).
    pub fn finish(mut self) -> anyhow::Result<()> {
        if let Some(done) = self.pending.take() {
            self.writer.write(&mut self.buf, &[done]);
        }
        self.writer.end(&mut self.buf);
        self.flush_buf()?;
        self.sink
            .flush()
            .with_context(|| format!("cannot write {}", self.name))?;
        if let Some((temp, path)) = self.rename.take() {
            std::fs::rename(&temp, &path).with_context(|| {
                format!("cannot rename {} to {}", temp.display(), path.display())
            })?;
        }
        Ok(())
    }
}

impl Drop for Output {
    /// An output dropped before `finish` (an error) leaves no file behind.
    fn drop(&mut self) {
        if let Some((temp, _)) = self.rename.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}
