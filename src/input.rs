//! Span file inputs for `replay`, `merge` and `summary`: paths, glob patterns expanded by otel-run
//! (4096 rank files must not hit the shell's argument limit), `-` for stdin, gzip by content.
//! Lines of both formats are read in a stream; what goes wrong is counted and reported exactly.

use crate::error::usage;
use crate::format::{LineError, Lines, Reader};
use anyhow::{anyhow, Context};
use opentelemetry_proto::tonic::trace::v1::TracesData;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".into(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// Expands the command line's FILE|GLOB|- arguments, in order, each glob sorted. A pattern that
/// matches nothing and a path that does not exist are errors naming them.
pub fn expand(patterns: &[String]) -> anyhow::Result<Vec<Input>> {
    expand_with_mode(patterns).map(|(inputs, _)| inputs)
}

/// [`expand`], and the permission bits every input file allows (their intersection; `None`
/// without files): what merge's output may allow, taken from the one `stat` each file gets here
/// (stating 4,096 rank files again cost merge 5 ms before its first span).
pub fn expand_with_mode(patterns: &[String]) -> anyhow::Result<(Vec<Input>, Option<u32>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut mode = None;
    let mut allow = |m: &std::fs::Metadata| {
        mode = Some(mode.unwrap_or(0o777) & m.permissions().mode() & 0o777);
    };
    if patterns.is_empty() {
        return Err(usage(
            "no input files (give paths, glob patterns such as 'traces_*.jsonlines', or - for stdin)",
        ));
    }
    let mut out = Vec::new();
    for pattern in patterns {
        if pattern == "-" {
            out.push(Input::Stdin);
        } else if pattern.contains(['*', '?', '[']) {
            let before = out.len();
            for entry in glob::glob(pattern)
                .map_err(|e| usage(format!("bad glob pattern {pattern:?}: {e}")))?
            {
                let path = entry.map_err(|e| anyhow!("{pattern}: {e}"))?;
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => {
                        allow(&m);
                        out.push(Input::File(path));
                    }
                    _ => {}
                }
            }
            if out.len() == before {
                return Err(usage(format!("{pattern}: pattern matches no file")));
            }
        } else {
            let path = PathBuf::from(pattern);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => {
                    allow(&m);
                    out.push(Input::File(path));
                }
                Ok(m) if m.is_dir() => {
                    return Err(usage(format!("{pattern}: is a directory (give a glob such as '{pattern}/*.jsonlines')")))
                }
                // Inputs may be read twice (replay validates before sending) and are reopened
                // by name: only regular files and stdin can be.
                Ok(_) => {
                    return Err(usage(format!(
                        "{pattern}: not a regular file (a pipe or device); feed it through - (stdin) instead"
                    )))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(usage(format!("{pattern}: no such file")))
                }
                Err(e) => return Err(usage(format!("{pattern}: {e}"))),
            }
        }
    }
    Ok((out, mode))
}

/// Opens an input for parsed reading, decompressing gzip (detected by its magic bytes, so a
/// renamed file still works).
pub fn open(input: &Input) -> anyhow::Result<Reader<Box<dyn BufRead>>> {
    open_lines(input, 256 * 1024).map(Reader::from)
}

/// Opens an input for raw line reading with read buffers of `capacity` bytes: a merge that holds a
/// thousand files open at once wants small ones.
pub fn open_lines(input: &Input, capacity: usize) -> anyhow::Result<Lines<Box<dyn BufRead>>> {
    open_lines_with(input, |raw| BufReader::with_capacity(capacity, raw))
}

/// Like [`open_lines`] with the read buffers `buffer` makes (merge's buffers that always end in a
/// whole line).
pub(crate) fn open_lines_with<B: BufRead + 'static>(
    input: &Input,
    buffer: impl Fn(Box<dyn Read>) -> B,
) -> anyhow::Result<Lines<Box<dyn BufRead>>> {
    let raw: Box<dyn Read> = match input {
        Input::Stdin => Box::new(std::io::stdin().lock()),
        Input::File(p) => {
            Box::new(File::open(p).with_context(|| format!("cannot open {}", p.display()))?)
        }
    };
    Ok(stream_lines(input.name(), raw, buffer))
}

/// Like [`open`] for any byte stream (replay reads stdin through a copy to a spool file, so it can
/// read it twice); `name` is what line errors say.
pub fn open_stream(name: String, raw: Box<dyn Read>) -> Reader<Box<dyn BufRead>> {
    stream_lines(name, raw, |raw| BufReader::with_capacity(256 * 1024, raw)).into()
}

/// `raw`'s lines through a buffer `buffer` makes, gzip detected by its magic bytes and
/// decompressed through a second such buffer.
fn stream_lines<B: BufRead + 'static>(
    name: String,
    raw: Box<dyn Read>,
    buffer: impl Fn(Box<dyn Read>) -> B,
) -> Lines<Box<dyn BufRead>> {
    let mut buffered = buffer(raw);
    let is_gzip = buffered
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    let reader: Box<dyn BufRead> = if is_gzip {
        Box::new(buffer(Box::new(flate2::bufread::MultiGzDecoder::new(
            buffered,
        ))))
    } else {
        Box::new(buffered)
    };
    Lines::new(name, reader)
}

/// Exact counts over everything read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub files: u64,
    pub lines: u64,
    pub spans: u64,
    /// Bad lines skipped because of --skip-invalid.
    pub invalid: u64,
    /// Torn last lines (a crash in the middle of a write), always skipped with a warning.
    pub torn: u64,
    /// Spans of other traces re-homed into their rank's job trace (replay).
    pub adopted: u64,
}

impl Counts {
    /// `--skip-invalid` that skipped every line leaves nothing to `what` (send, merge, summarise):
    /// an error, since exit 0 with nothing done would read as success. (`invalid` counts only
    /// lines skipped by --skip-invalid; without it the first bad line is already an error.)
    pub fn require_spans(&self, what: &str) -> anyhow::Result<()> {
        if self.spans == 0 && self.invalid > 0 {
            anyhow::bail!(
                "--skip-invalid skipped all {} bad lines and left no span to {what}",
                self.invalid
            );
        }
        Ok(())
    }
}

/// Reads every input in order, calling `each` for every line's data. A torn last line is skipped
/// with a warning; any other bad line ends the read with `file:line: reason` unless
/// `skip_invalid`, in which case it is reported on stderr and counted.
pub fn read_all(
    inputs: &[Input],
    skip_invalid: bool,
    counts: &mut Counts,
    mut each: impl FnMut(&str, u64, TracesData) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for input in inputs {
        let mut reader = open(input)?;
        counts.files += 1;
        read_one(&mut reader, skip_invalid, counts, &mut |r, line, data| {
            each(r.name(), line, data)
        })?;
    }
    Ok(())
}

/// Reads one opened input (see [`read_all`]); `each` also gets the reader, for what it knows
/// beside the line's data (its name, the line's shared resource).
pub fn read_one<R: BufRead>(
    reader: &mut Reader<R>,
    skip_invalid: bool,
    counts: &mut Counts,
    each: &mut impl FnMut(&Reader<R>, u64, TracesData) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    loop {
        match reader.next_data() {
            Ok(None) => return Ok(()),
            Ok(Some((line, data))) => {
                counts.lines += 1;
                counts.spans += crate::format::span_count(&data.resource_spans) as u64;
                each(reader, line, data)?;
            }
            Err(e) => handle_bad_line(e, skip_invalid, counts)?,
        }
    }
}

/// Counts a bad line; `Err` (stop) unless it is a torn last line or `skip_invalid`.
pub fn handle_bad_line(
    e: LineError,
    skip_invalid: bool,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    counts.lines += 1;
    if e.torn {
        counts.torn += 1;
        tracing::warn!("{e} (skipped: a crash mid-write leaves this)");
        Ok(())
    } else if skip_invalid {
        counts.invalid += 1;
        tracing::warn!("{e} (skipped)");
        Ok(())
    } else {
        Err(anyhow!(
            "{e}\n(use --skip-invalid to skip and count bad lines)"
        ))
    }
}
