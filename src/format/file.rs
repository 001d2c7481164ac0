//! One rank's span file: otel-run's own spans and (through the sink) the program's, appended as
//! whole lines with one `write(2)` per batch on an `O_APPEND` file, so concurrent writers never
//! interleave inside a line and a crash leaves at most one torn last line.

use super::LineFormat;
use crate::export::{Format, SpanWriter};
use anyhow::Context;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One rank's span file, opened for appending. Shared by otel-run's own spans and (via the sink)
/// the child's, so both land in the same file in the same format.
pub struct SpanFile {
    /// The descriptor every later write goes through, the in-place rewrite included: reopening
    /// the path would follow whatever was planted there since (a rename and a symlink).
    file: File,
    path: PathBuf,
    writer: Box<dyn SpanWriter>,
    /// A write failed: what was asked for is not all in the file (so `-v` must not say it is).
    failed: bool,
}

/// A batch is written in chunks of whole lines of about this many bytes, so the memory a write
/// takes does not grow with the amplification of a format (python repeats the resource per line).
const CHUNK: usize = 1 << 20;

impl SpanFile {
    /// Creates (mode 0600) or appends to `path`, never through a symlink (O_NOFOLLOW: another
    /// user may plant one in a shared directory). `fresh`: the name was just made up (a random
    /// `*` in the template), so the file must not exist yet (O_EXCL).
    pub fn open(path: &Path, format: LineFormat, fresh: bool) -> anyhow::Result<Self> {
        let mut options = OpenOptions::new();
        options
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        if fresh {
            options.create_new(true);
        } else {
            options.create(true);
        }
        let file = options.open(path).map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::ELOOP) => {
                    "it is a symlink (span files are never written through one)".to_string()
                }
                Some(libc::EEXIST) => {
                    "it already exists although its name was just made up".to_string()
                }
                _ => e.to_string(),
            };
            anyhow::anyhow!("cannot open span file {}: {why}", path.display())
        })?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot open span file {}", path.display()))?;
        if !meta.is_file() {
            anyhow::bail!(
                "cannot open span file {}: not a regular file",
                path.display()
            );
        }
        Ok(SpanFile {
            file,
            path: path.to_path_buf(),
            writer: Format::from(format).writer(),
            failed: false,
        })
    }

    /// Whether any write to this file failed.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Appends the spans as whole lines in one write, so concurrent writers (the child's own
    /// `jsonlines` exporter appends to the same file) never interleave inside a line.
    ///
    /// A large batch goes in chunks of whole lines (one `write(2)` each). When a write fails (a
    /// full disk), everything this call wrote is cut off again, so the file never keeps a torn
    /// fragment that the next line would be glued to, and an error means none of the batch is in
    /// the file (the sender may retry without duplicates).
    pub fn append(&mut self, resource_spans: &[ResourceSpans]) -> anyhow::Result<()> {
        let mut written = 0u64;
        let result = self.append_chunks(resource_spans, &mut written);
        if result.is_err() {
            self.failed = true;
            self.cut_back(written);
        }
        result
    }

    fn append_chunks(
        &mut self,
        resource_spans: &[ResourceSpans],
        written: &mut u64,
    ) -> anyhow::Result<()> {
        let mut buf = Vec::with_capacity(4096);
        if rendered_estimate(resource_spans) <= CHUNK {
            self.writer.write(&mut buf, resource_spans);
            return self.write_counted(&buf, written);
        }
        for rs in resource_spans {
            for ss in &rs.scope_spans {
                let line = 4
                    * (rs.resource.as_ref().map_or(0, |r| r.encoded_len())
                        + ss.scope.as_ref().map_or(0, |s| s.encoded_len()))
                    + 512;
                let mut start = 0;
                while start < ss.spans.len() {
                    let mut end = start;
                    let mut size = line;
                    while end < ss.spans.len() && (end == start || size < CHUNK) {
                        size += line + 4 * ss.spans[end].encoded_len();
                        end += 1;
                    }
                    let piece = ResourceSpans {
                        resource: rs.resource.clone(),
                        schema_url: rs.schema_url.clone(),
                        scope_spans: vec![ScopeSpans {
                            scope: ss.scope.clone(),
                            schema_url: ss.schema_url.clone(),
                            spans: ss.spans[start..end].to_vec(),
                        }],
                    };
                    buf.clear();
                    self.writer.write(&mut buf, std::slice::from_ref(&piece));
                    drop(piece);
                    self.write_counted(&buf, written)?;
                    start = end;
                }
            }
        }
        Ok(())
    }

    /// One `write(2)` per call when it succeeds; counts what reached the file even when it fails.
    fn write_counted(&mut self, buf: &[u8], written: &mut u64) -> anyhow::Result<()> {
        let mut rest = buf;
        while !rest.is_empty() {
            match self.file.write(rest) {
                Ok(0) => anyhow::bail!("cannot write span file {}: no room", self.path.display()),
                Ok(n) => {
                    *written += n as u64;
                    rest = &rest[n..];
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot write span file {}", self.path.display()))
                }
            }
        }
        Ok(())
    }

    /// Removes the last `written` bytes this descriptor appended, if nobody appended after them.
    fn cut_back(&mut self, written: u64) {
        if written == 0 {
            return;
        }
        let end = self.file.stream_position();
        let len = self.file.metadata().map(|m| m.len());
        match (end, len) {
            (Ok(end), Ok(len)) if end == len && end >= written => {
                if let Err(e) = self.file.set_len(end - written) {
                    tracing::warn!(
                        "cannot cut a partial write off span file {}: {e}",
                        self.path.display()
                    );
                }
            }
            _ => tracing::warn!(
                "span file {}: a partial write is followed by another writer's lines",
                self.path.display()
            ),
        }
    }

    fn append_rendered(&mut self, buf: &[u8]) -> anyhow::Result<()> {
        let mut written = 0;
        let result = self.write_counted(buf, &mut written);
        if result.is_err() {
            self.failed = true;
            self.cut_back(written);
        }
        result
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
        // pwrite on an O_APPEND descriptor appends on Linux: O_APPEND is switched off on the kept
        // descriptor for the rewrite (never a reopen by name), and back on after it.
        let result = self.with_append_off(|file| {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&buf, reservation.offset)
        });
        if result.is_err() {
            self.failed = true;
        }
        result.with_context(|| format!("cannot rewrite span file {}", self.path.display()))?;
        self.file
            .sync_data()
            .with_context(|| format!("cannot fsync span file {}", self.path.display()))?;
        Ok(true)
    }

    fn with_append_off(
        &mut self,
        f: impl FnOnce(&File) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this struct owns; no memory is passed.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_APPEND) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let result = f(&self.file);
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        result
    }
}

/// A generous guess of the rendered size of a batch (JSON of hex ids and escaped strings is at
/// most a few times the protobuf size), plus a python line's resource repeated per span.
fn rendered_estimate(batch: &[ResourceSpans]) -> usize {
    let mut size = 0usize;
    for rs in batch {
        let resource = rs.resource.as_ref().map_or(0, |r| r.encoded_len());
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().map_or(0, |s| s.encoded_len());
            size = size.saturating_add(
                ss.spans
                    .len()
                    .saturating_mul(4 * (resource + scope) + 512)
                    .saturating_add(4 * ss.encoded_len()),
            );
        }
    }
    size
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
