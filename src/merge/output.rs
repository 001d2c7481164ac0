//! Where merged spans go: python or otlp lines or Chrome trace-event JSON (through the format's
//! `export::SpanWriter`), to stdout or to a file that appears only when the merge succeeded (written beside it
//! under a temporary name, then renamed), so an interrupted merge never leaves half a file.
//!
//! The temporary file is created by `tempfile` in the target directory (a random name, O_EXCL:
//! a symlink planted there by another user is never followed), gets the mode of the most
//! restrictive input (spans carry command lines: 0600 rank files must not become a 0644 merge,
//! nor replace a 0600 output), is fsynced before the rename, and is removed on every error and
//! on SIGTERM/SIGINT/SIGHUP.

use super::record::Record;
use crate::cli::MergeFormat;
use crate::export::chrome::Chrome;
use crate::export::fragment::Parts;
use crate::export::{otlp, Format, SpanWriter};
use anyhow::Context;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};
use tempfile::TempPath;

/// otlp lines group consecutive spans of one resource and scope, up to this many per line.
const OTLP_SPANS_PER_LINE: usize = 512;
const FLUSH_AT: usize = 1 << 20;

/// How spans get into the output: python lines through the format's writer; chrome and otlp as
/// fragments placed in order (a span decoded here is rendered to one first).
enum Place {
    Lines(Box<dyn SpanWriter>),
    Chrome(Chrome),
    Otlp(otlp::Lines),
}

pub struct Output {
    sink: BufWriter<Box<dyn Write + Send>>,
    /// (temporary file, final path) for -o.
    rename: Option<(TempPath, PathBuf)>,
    /// The temporary file, to fsync before the rename.
    temp_file: Option<File>,
    /// Bytes handed to `sink`, and how many of them the disk was told to start writing.
    flushed: u64,
    started: u64,
    name: String,
    format: MergeFormat,
    buf: Vec<u8>,
    place: Place,
    /// A fragment rendered here, reused.
    scratch: Vec<u8>,
    pub written: u64,
}

impl Output {
    pub fn create(
        path: Option<&Path>,
        format: MergeFormat,
        inputs_mode: Option<u32>,
    ) -> anyhow::Result<Output> {
        let mut temp_file = None;
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
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                let named = tempfile::Builder::new()
                    .prefix(&format!(".{}.", file_name.to_string_lossy()))
                    .suffix(".otel-run.tmp")
                    .tempfile_in(dir)
                    .with_context(|| {
                        format!(
                            "-o {}: cannot create a temporary file in {}",
                            path.display(),
                            dir.display()
                        )
                    })?;
                let (file, temp) = named.into_parts();
                let mode = restrictive_mode(path, inputs_mode);
                file.set_permissions(std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("-o {}: cannot set mode {mode:o}", path.display()))?;
                remove_on_signal(&temp);
                temp_file = Some(file.try_clone().with_context(|| {
                    format!("-o {}: cannot create {}", path.display(), temp.display())
                })?);
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
            temp_file,
            name,
            format,
            buf: Vec::with_capacity(FLUSH_AT + 64 * 1024),
            place: match format {
                MergeFormat::Python => Place::Lines(Format::Python.writer()),
                MergeFormat::Chrome => Place::Chrome(Chrome::default()),
                MergeFormat::Otlp => Place::Otlp(otlp::Lines::new(OTLP_SPANS_PER_LINE)),
            },
            scratch: Vec::new(),
            flushed: 0,
            started: 0,
            written: 0,
        };
        if let Place::Chrome(chrome) = &mut out.place {
            chrome.begin(&mut out.buf);
        }
        Ok(out)
    }

    /// How spans are rendered ahead for this output ([`Output::place`]); none for python.
    pub fn fragments(&self) -> Option<crate::export::Render> {
        Format::from(self.format).fragments()
    }

    /// Writes `count` python lines (each ending in a newline) as they are.
    pub fn write_lines(&mut self, lines: &[u8], count: u64) -> anyhow::Result<()> {
        self.written += count;
        if self.buf.is_empty() {
            return self.write_out(lines);
        }
        self.buf.extend_from_slice(lines);
        if self.buf.len() >= FLUSH_AT {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Writes one record's span, decoded. (What is written as it is — a python line for a
    /// python output, a span rendered ahead — never comes here: the emitter copies those into
    /// chunks of bytes.)
    pub fn write_record(&mut self, r: &Record) -> anyhow::Result<()> {
        self.write(&r.decode()?)
    }

    /// Writes one span (a `ResourceSpans` holding it alone).
    pub fn write(&mut self, rs: &ResourceSpans) -> anyhow::Result<()> {
        let Some(render) = self.fragments() else {
            self.written += 1;
            if let Place::Lines(writer) = &mut self.place {
                writer.write(&mut self.buf, std::slice::from_ref(rs));
            }
            return self.flush_if_full();
        };
        let mut fragment = std::mem::take(&mut self.scratch);
        fragment.clear();
        render(&mut fragment, Parts::of(rs));
        let placed = self.place(&fragment);
        self.scratch = fragment;
        placed
    }

    /// Places one span's fragment (`export::fragment`), rendered by this output's format.
    pub fn place(&mut self, fragment: &[u8]) -> anyhow::Result<()> {
        self.written += 1;
        let placed = match &mut self.place {
            Place::Chrome(chrome) => chrome.place(&mut self.buf, fragment),
            Place::Otlp(lines) => lines.place(&mut self.buf, fragment),
            Place::Lines(_) => Err("a rendered span for a python output".to_string()),
        };
        placed.map_err(|e| anyhow::anyhow!("corrupt temporary record: {e}"))?;
        self.flush_if_full()
    }

    fn flush_if_full(&mut self) -> anyhow::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> anyhow::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let written = self.write_out(&buf);
        self.buf = buf;
        self.buf.clear();
        written
    }

    /// Every byte of the output goes through here.
    fn write_out(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.sink
            .write_all(bytes)
            .with_context(|| format!("cannot write {}", self.name))?;
        self.flushed += bytes.len() as u64;
        if let Some(file) = &self.temp_file {
            if self.flushed - self.started >= WRITE_BACK_EVERY {
                start_write_back(file, self.started);
                self.started = self.flushed;
            }
        }
        Ok(())
    }

    /// Completes the output (and renames it into place for -o).
    pub fn finish(mut self) -> anyhow::Result<()> {
        match &mut self.place {
            Place::Chrome(chrome) => chrome.end(&mut self.buf),
            Place::Otlp(lines) => lines.flush(&mut self.buf),
            Place::Lines(writer) => writer.end(&mut self.buf),
        }
        self.flush_buf()?;
        self.sink
            .flush()
            .with_context(|| format!("cannot write {}", self.name))?;
        if let Some(file) = &self.temp_file {
            file.sync_all()
                .with_context(|| format!("cannot fsync {}", self.name))?;
        }
        if let Some((temp, path)) = self.rename.take() {
            let shown = temp.display().to_string();
            forget_on_signal();
            // On failure the TempPath inside the error is dropped, which removes the file.
            temp.persist(&path).map_err(|e| {
                anyhow::anyhow!("cannot rename {shown} to {}: {}", path.display(), e.error)
            })?;
        }
        Ok(())
    }
}

impl Drop for Output {
    /// An output dropped before `finish` (an error) leaves no file behind (TempPath removes it).
    fn drop(&mut self) {
        if self.rename.take().is_some() {
            forget_on_signal();
        }
    }
}

/// How much output is written before the disk is told to start writing it (see
/// [`start_write_back`]).
const WRITE_BACK_EVERY: u64 = 8 << 20;

/// Starts writing the file's dirty pages from `from` to its end to disk, without waiting: the
/// output is fsynced before it is renamed into place, and that fsync then finds little left to
/// write (at 130 MB it took 48 ms at the end of a 0.45 s merge; the writes now overlap the merge).
/// Best effort: an error here shows again at the fsync, which is checked.
fn start_write_back(file: &File, from: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain system call on a descriptor this file owns; it reads no memory of ours.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            from as libc::off64_t,
            0,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// The permission bits every input (`inputs_mode`, from `input::expand_with_mode`) and an
/// existing output allow (their intersection): the merge is never more readable than what it was
/// made from. Stdin alone: 0600.
fn restrictive_mode(output: &Path, inputs_mode: Option<u32>) -> u32 {
    let output_mode = std::fs::metadata(output)
        .ok()
        .map(|m| m.permissions().mode() & 0o777);
    match (inputs_mode, output_mode) {
        (None, None) => 0o600,
        (a, b) => a.unwrap_or(0o777) & b.unwrap_or(0o777),
    }
}

/// The temporary output's path as a C string for the signal handler (leaked: one per merge).
static TEMP_PATH: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn remove_temp_and_die(sig: libc::c_int) {
    let p = TEMP_PATH.swap(std::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: unlink, signal and raise are async-signal-safe; `p` is a leaked CString or null.
    unsafe {
        if !p.is_null() {
            libc::unlink(p);
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// A merge killed by SIGTERM (a job's time limit) or SIGINT leaves no temporary file behind.
fn remove_on_signal(temp: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(temp.as_os_str().as_bytes()) else {
        return;
    };
    TEMP_PATH.store(c.into_raw(), Ordering::SeqCst);
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: installs a handler that only calls async-signal-safe functions.
        unsafe {
            libc::signal(sig, remove_temp_and_die as *const () as libc::sighandler_t);
        }
    }
}

fn forget_on_signal() {
    let p = TEMP_PATH.swap(std::ptr::null_mut(), Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: `p` came from CString::into_raw in remove_on_signal and was swapped out once.
        drop(unsafe { std::ffi::CString::from_raw(p) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output past several write-back starts is complete, byte for byte, after the rename.
    #[test]
    fn an_output_written_back_early_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut out = Output::create(Some(&path), MergeFormat::Python, None).unwrap();
        let mut want = Vec::new();
        for i in 0..400u64 {
            let line = format!("{{\"n\": {i}, \"pad\": \"{}\"}}\n", "x".repeat(60_000));
            want.extend_from_slice(line.as_bytes());
            out.write_lines(line.as_bytes(), 1).unwrap();
        }
        assert!(
            out.started >= 2 * WRITE_BACK_EVERY,
            "started {}",
            out.started
        );
        out.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }
}
