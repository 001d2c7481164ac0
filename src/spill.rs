//! Store and forward: the program's spans (received by the sink) and otel-run's own spans go to
//! the collector through one [`Forwarder`]; every batch the collector does not acknowledge is
//! kept — appended to the rank's spill file, or counted when the span file already holds it —
//! so `otel-run replay` can deliver it later, exactly once.
//!
//! Invariant: a span is spilled only when no acknowledgement for it arrived, and a span that was
//! acknowledged is never spilled. (A request cut off at the deadline may have reached the
//! collector unanswered: it is spilled, since nothing confirmed it.)
//!
//! Time budget after the program exits: the configured OTLP timeout when the collector
//! acknowledged the last request, otherwise `min(1.5 s, timeout)` (refused, no answer, an error,
//! or nothing sent yet) — leaving half a second to write the spill file, so otel-run exits
//! within 2 s of the program. At the deadline, the batch in flight and everything still queued
//! is spilled; otel-run's own spans share the same deadline.

use crate::format::{span_count, LineFormat, SpanFile};
use crate::otlp::OtlpClient;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The longest otel-run waits for a collector that is not answering, after the program's exit:
/// with the spill written after it, otel-run exits within 2 s of the program.
pub const UNREACHABLE_BUDGET: Duration = Duration::from_millis(1500);
/// Batches waiting for the collector; when full, a batch is spilled at once (the program never
/// waits on the collector).
pub const QUEUE: usize = 256;
/// Requests to the collector in flight at once.
const IN_FLIGHT: usize = 4;

/// Where spans the collector did not acknowledge are kept.
pub enum Keep {
    /// The rank's spill file (created on the first spilled batch), in this line format.
    SpillFile(PathBuf, LineFormat),
    /// The span file (jsonlines is an exporter too) already holds everything: only count.
    SpanFile,
}

/// Exact counts of what happened to the spans given to the forwarder.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Acknowledged by the collector.
    pub forwarded: u64,
    /// Appended to the spill file.
    pub spilled: u64,
    /// Not acknowledged, and only in the span file (jsonlines among the exporters).
    pub kept: u64,
    /// Rejected by the collector in a partial success, which gives a count but not which spans.
    pub rejected: u64,
    /// Lost: the spill file could not be written.
    pub dropped: u64,
}

impl Counts {
    pub fn minus(self, o: Counts) -> Counts {
        Counts {
            forwarded: self.forwarded - o.forwarded,
            spilled: self.spilled - o.spilled,
            kept: self.kept - o.kept,
            rejected: self.rejected - o.rejected,
            dropped: self.dropped - o.dropped,
        }
    }
}

enum Store {
    Spill {
        path: PathBuf,
        format: LineFormat,
        file: Option<SpanFile>,
        /// A write failed: the file may end in a torn line, so nothing more is appended.
        broken: bool,
    },
    SpanFile,
}

struct Shared {
    store: Mutex<Store>,
    counts: Mutex<Counts>,
    /// The collector acknowledged the last request sent to it.
    answering: AtomicBool,
}

impl Shared {
    /// Keeps a batch the collector did not acknowledge.
    fn keep(&self, batch: &[ResourceSpans], why: &str) {
        let n = span_count(batch) as u64;
        if n == 0 {
            return;
        }
        let mut store = self.store.lock().unwrap();
        let mut counts = self.counts.lock().unwrap();
        match &mut *store {
            Store::SpanFile => counts.kept += n,
            Store::Spill {
                path,
                format,
                file,
                broken,
            } => {
                if *broken {
                    counts.dropped += n;
                    return;
                }
                if file.is_none() {
                    // Not O_EXCL: the file may be opened again for otel-run's own spans.
                    match SpanFile::open(path, *format, false) {
                        Ok(f) => *file = Some(f),
                        Err(e) => {
                            tracing::error!("cannot create the spill file: {e:#}; {n} spans lost");
                            *broken = true;
                            counts.dropped += n;
                            return;
                        }
                    }
                }
                // A failed write (disk full) may leave part of the batch, even whole lines of
                // it: cut the file back, so it holds exactly the spans counted as spilled.
                let before = std::fs::metadata(&*path).map(|m| m.len()).ok();
                match file.as_mut().expect("opened above").append(batch) {
                    Ok(()) => {
                        tracing::debug!("spilled {n} spans ({why})");
                        counts.spilled += n;
                    }
                    Err(e) => {
                        let cut = before.is_some_and(|len| {
                            std::fs::OpenOptions::new()
                                .write(true)
                                .open(&*path)
                                .and_then(|f| f.set_len(len))
                                .is_ok()
                        });
                        tracing::error!(
                            "{e:#}; {n} spans lost{}",
                            if cut {
                                ""
                            } else {
                                " (the spill file may end in a torn line)"
                            }
                        );
                        *broken = true;
                        counts.dropped += n;
                    }
                }
            }
        }
    }

    fn sync(&self) {
        let mut store = self.store.lock().unwrap();
        if let Store::Spill {
            file: Some(f),
            broken,
            ..
        } = &mut *store
        {
            if !*broken {
                if let Err(e) = f.sync() {
                    tracing::error!("{e:#}");
                }
            }
        }
    }
}

/// The sink's handle: hands received batches to the forwarder without waiting.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<Vec<ResourceSpans>>,
    shared: Arc<Shared>,
}

impl Queue {
    pub fn submit(&self, batch: Vec<ResourceSpans>) {
        match self.tx.try_send(batch) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(b)) => self.shared.keep(&b, "queue full"),
            Err(mpsc::error::TrySendError::Closed(b)) => self.shared.keep(&b, "forwarding ended"),
        }
    }
}

pub struct Forwarder {
    client: Arc<OtlpClient>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Vec<ResourceSpans>>,
    deadline: watch::Sender<Option<Instant>>,
    task: Option<tokio::task::JoinHandle<()>>,
    spill_path: Option<PathBuf>,
}

impl Forwarder {
    /// Starts forwarding on the current runtime.
    pub fn start(client: Arc<OtlpClient>, keep: Keep) -> Forwarder {
        let (store, spill_path) = match keep {
            Keep::SpillFile(path, format) => (
                Store::Spill {
                    path: path.clone(),
                    format,
                    file: None,
                    broken: false,
                },
                Some(path),
            ),
            Keep::SpanFile => (Store::SpanFile, None),
        };
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            counts: Mutex::default(),
            answering: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let (deadline, deadline_rx) = watch::channel(None);
        let task = tokio::spawn(run(client.clone(), shared.clone(), rx, deadline_rx));
        Forwarder {
            client,
            shared,
            tx,
            deadline,
            task: Some(task),
            spill_path,
        }
    }

    pub fn queue(&self) -> Queue {
        Queue {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }

    pub fn counts(&self) -> Counts {
        *self.shared.counts.lock().unwrap()
    }

    pub fn spill_path(&self) -> Option<&PathBuf> {
        self.spill_path.as_ref()
    }

    pub fn client(&self) -> &OtlpClient {
        &self.client
    }

    /// The time left for forwarding once the program has exited (see the module comment), and
    /// why, for the `-v` log.
    pub fn budget(&self, signalled: bool) -> (Duration, &'static str) {
        let timeout = self.client.config().timeout;
        let (budget, why) = if self.shared.answering.load(Ordering::Relaxed) {
            (
                timeout,
                "the collector acknowledged the last request: its timeout",
            )
        } else {
            (
                timeout.min(UNREACHABLE_BUDGET),
                "the collector has not acknowledged the last request (unreachable, silent, failing, or not tried yet)",
            )
        };
        if signalled && budget > UNREACHABLE_BUDGET {
            // A batch system's SIGKILL may follow the SIGTERM within seconds.
            (UNREACHABLE_BUDGET, "a terminating signal arrived")
        } else {
            (budget, why)
        }
    }

    /// Forwards what is queued until `deadline`, spills the rest, and stops taking batches:
    /// later ones (a sink connection still open) are spilled at once.
    pub async fn drain(&mut self, deadline: Instant) {
        self.deadline.send_replace(Some(deadline));
        // The task honours the deadline itself (it spills what is in flight); only spilling can
        // take longer, and that is bounded by the disk.
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::error!("forwarding task failed: {e}");
            }
        }
    }

    /// Sends otel-run's own spans by `deadline`, keeping them if not acknowledged.
    pub async fn send_own(&self, batch: Vec<ResourceSpans>, deadline: Instant) {
        self.deadline.send_replace(Some(deadline));
        let mut rx = self.deadline.subscribe();
        deliver(&self.client, &self.shared, batch, &mut rx).await;
        self.shared.sync();
    }
}

/// Waits until the deadline is set and has passed.
async fn deadline_passed(rx: &mut watch::Receiver<Option<Instant>>) {
    loop {
        let current = *rx.borrow_and_update();
        match current {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(d.into()) => return,
                    // The deadline moved.
                    changed = rx.changed() => if changed.is_err() { tokio::time::sleep_until(d.into()).await; return },
                }
            }
            None => {
                if rx.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// Sends one batch; keeps it unless acknowledged. False when the deadline cut it off.
async fn deliver(
    client: &OtlpClient,
    shared: &Shared,
    batch: Vec<ResourceSpans>,
    deadline: &mut watch::Receiver<Option<Instant>>,
) -> bool {
    let n = span_count(&batch) as u64;
    if n == 0 {
        return true;
    }
    // Encoded once for the wire; the batch itself stays here until acknowledged.
    let encoded = Bytes::from(
        ExportTraceServiceRequest {
            resource_spans: batch,
        }
        .encode_to_vec(),
    );
    let result = tokio::select! {
        r = client.export_encoded(encoded.clone()) => Some(r),
        _ = deadline_passed(deadline) => None,
    };
    let endpoint = &client.config().endpoint;
    let batch = || {
        ExportTraceServiceRequest::decode(encoded.clone())
            .expect("decoding what was just encoded")
            .resource_spans
    };
    match result {
        Some(Ok(outcome)) => {
            shared.answering.store(true, Ordering::Relaxed);
            let rejected = (outcome.rejected_spans.max(0) as u64).min(n);
            let mut counts = shared.counts.lock().unwrap();
            counts.forwarded += n - rejected;
            counts.rejected += rejected;
            if rejected > 0 {
                tracing::warn!(
                    "collector {endpoint} rejected {rejected} of {n} spans ({}); OTLP gives only a count, not which spans, so they are counted, not spilled",
                    outcome.message
                );
            }
            true
        }
        Some(Err(e)) => {
            shared.answering.store(false, Ordering::Relaxed);
            tracing::debug!("forwarding {n} spans to {endpoint} failed: {e}");
            shared.keep(&batch(), "not acknowledged");
            true
        }
        None => {
            shared.answering.store(false, Ordering::Relaxed);
            shared.keep(&batch(), "deadline");
            false
        }
    }
}

async fn run(
    client: Arc<OtlpClient>,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Vec<ResourceSpans>>,
    mut deadline: watch::Receiver<Option<Instant>>,
) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    loop {
        let batch = if deadline.borrow().is_some() {
            // Draining: only what is already queued.
            match rx.try_recv() {
                Ok(b) => b,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                b = rx.recv() => match b { Some(b) => b, None => break },
                changed = deadline.changed() => { if changed.is_err() { break } continue }
            }
        };
        // Several requests in flight, like an SDK's exporter: one at a time would make the
        // collector's round trip the forwarding rate.
        let mut wait = deadline.clone();
        let permit = tokio::select! {
            p = in_flight.clone().acquire_owned() => p.expect("never closed"),
            _ = deadline_passed(&mut wait) => {
                shared.keep(&batch, "deadline");
                break;
            }
        };
        let (client, shared) = (client.clone(), shared.clone());
        tokio::spawn(async move {
            deliver(&client, &shared, batch, &mut wait).await;
            drop(permit);
        });
    }
    // Past the deadline (or drained): nothing more waits for the collector.
    rx.close();
    while let Some(b) = rx.recv().await {
        shared.keep(&b, "deadline");
    }
    // Requests in flight end by the deadline, acknowledged or spilled.
    let _ = in_flight.acquire_many(IN_FLIGHT as u32).await;
    shared.sync();
}

/// `otel-run replay` delivering `path` to the same collector, as a shell command.
pub fn replay_command(client: &OtlpClient, path: &std::path::Path) -> String {
    let cfg = client.config();
    let mut cmd = format!(
        "otel-run replay --keep-timestamps --exporter-otlp-traces-protocol {} --exporter-otlp-traces-endpoint {} {}",
        cfg.protocol.as_str(),
        shell_quote(&cfg.endpoint),
        shell_quote(&path.display().to_string())
    );
    if !cfg.headers.is_empty() {
        cmd.push_str(" (with the same OTEL_EXPORTER_OTLP_HEADERS)");
    }
    cmd
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:+=,@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/tmp/a_b.jsonl"), "/tmp/a_b.jsonl");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
