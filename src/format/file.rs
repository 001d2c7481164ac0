//! One rank's span file: otel-run's own spans and (through the sink) the program's, appended as
//! whole lines with one `write(2)` per batch on an `O_APPEND` file, so concurrent writers never
//! interleave inside a line and a crash leaves at most one torn last line.

use super::LineFormat;
use crate::export::{Format, SpanWriter};
use anyhow::Context;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One rank's span file, opened for appending. Shared by otel-run's own spans and (via the sink)
/// the child's, so both land in the same file in the same format.
pub struct SpanFile {
    file: File,
    path: PathBuf,
    writer: Box<dyn SpanWriter>,
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
            writer: Format::from(format).writer(),
        })
    }

    /// Appends the spans as whole lines in one write, so concurrent writers (the child's own
    /// `jsonlines` exporter appends to the same file) never interleave inside a line.
    pub fn append(&mut self, resource_spans: &[ResourceSpans]) -> anyhow::Result<()> {
        let mut buf = Vec::with_capacity(1024);
        self.writer.write(&mut buf, resource_spans);
        self.append_rendered(&buf)
    }

    fn append_rendered(&mut self, buf: &[u8]) -> anyhow::Result<()> {
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
        self.writer.write(&mut buf, resource_spans);
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
        self.writer.write(&mut buf, resource_spans);
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
