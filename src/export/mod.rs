//! Writing spans out. Every output format is one [`SpanWriter`], one file each: `python` and
//! `otlp` (the span file's line formats), `chrome` (merge's trace-event JSON) and `console`
//! (text for a person). The span file, the sink, merge and the console exporter all write through
//! them, straight from the OTLP proto types.
//!
//! [`Outputs`]: where otel-run's own spans go (`--traces-exporter`): the rank's span file, the
//! console, an OTLP collector, any combination. The file comes first: it is what survives a
//! missing collector.

pub mod chrome;
pub mod console;
pub mod fragment;
mod json;
mod nonfinite;
pub mod otlp;
pub mod python;

use crate::cli::MergeFormat;
use crate::format::{LineFormat, SpanFile};
use crate::otlp::OtlpClient;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// One output format. A writer appends to a byte buffer; where the bytes go (a span file in one
/// `write(2)`, merge's output, stderr) is the caller's business.
pub trait SpanWriter: Send {
    /// What comes before the first span (a document's opening); nothing for line formats.
    fn begin(&mut self, _out: &mut Vec<u8>) {}
    /// Appends `batch`: whole lines for the line formats.
    fn write(&mut self, out: &mut Vec<u8>, batch: &[ResourceSpans]);
    /// What comes after the last span.
    fn end(&mut self, _out: &mut Vec<u8>) {}
}

/// Renders a span's [`fragment`] ahead of its place in the output.
pub type Render = fn(&mut Vec<u8>, fragment::Parts);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Python,
    Otlp,
    Chrome,
    Console,
}

impl Format {
    pub fn writer(self) -> Box<dyn SpanWriter> {
        match self {
            Format::Python => Box::new(python::Python),
            Format::Otlp => Box::new(otlp::Otlp),
            Format::Chrome => Box::<chrome::Chrome>::default(),
            Format::Console => Box::new(console::Console),
        }
    }

    /// How this format renders fragments: for the formats that place them (chrome, otlp as merge
    /// writes it).
    pub fn fragments(self) -> Option<Render> {
        match self {
            Format::Chrome => Some(chrome::fragment),
            Format::Otlp => Some(otlp::fragment),
            Format::Python | Format::Console => None,
        }
    }
}

impl From<LineFormat> for Format {
    fn from(f: LineFormat) -> Self {
        match f {
            LineFormat::Python => Format::Python,
            LineFormat::Otlp => Format::Otlp,
        }
    }
}

impl From<MergeFormat> for Format {
    fn from(f: MergeFormat) -> Self {
        match f {
            MergeFormat::Python => Format::Python,
            MergeFormat::Otlp => Format::Otlp,
            MergeFormat::Chrome => Format::Chrome,
        }
    }
}

/// Appends `batch` in `format` as a whole document: for one-off writes.
pub fn render(out: &mut Vec<u8>, format: impl Into<Format>, batch: &[ResourceSpans]) {
    let mut writer = format.into().writer();
    writer.begin(out);
    writer.write(out, batch);
    writer.end(out);
}

/// The rank's span file, shared by otel-run's own spans and the sink (the program's spans).
pub type SharedFile = Arc<Mutex<Option<SpanFile>>>;

#[derive(Default)]
pub struct Outputs {
    pub file: SharedFile,
    /// Where the file is, even if it could not be opened (for messages).
    pub path: Option<PathBuf>,
    pub console: bool,
    pub otlp: Option<Arc<OtlpClient>>,
}

impl Outputs {
    /// Appends to the span file and fsyncs it, and prints to the console. A file that cannot be
    /// written costs a warning, never the job.
    pub fn write_local(&self, batch: &[ResourceSpans]) {
        if let Some(file) = self.file.lock().unwrap().as_mut() {
            if let Err(e) = file.append(batch).and_then(|_| file.sync()) {
                tracing::warn!("{e:#}");
            }
        }
        if self.console {
            let mut text = Vec::new();
            console::Console.write(&mut text, batch);
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), &text);
        }
    }
}
