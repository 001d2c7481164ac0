//! The launcher: `otel-run [OPTIONS] [--] COMMAND...`. Resolves the settings, detects the job,
//! starts the program with the environment contract, waits for it, and records the rank's spans.

pub mod child;
pub mod plan;
pub mod signals;
pub mod spans;

pub use plan::Plan;
use plan::TEMPLATE_VAR;

use crate::cli::RunArgs;
use crate::contract::SinkEndpoint;
use crate::export::Outputs;
use crate::format::time::now_nanos;
use crate::format::SpanFile;
use crate::otlp::OtlpClient;
use crate::sink::{Sink, SinkConfig, SinkStats};
use crate::spill::{self, Forwarder};
use crate::{attr, semconv};
use anyhow::Context;
use child::Termination;
use opentelemetry_proto::tonic::trace::v1::{span::Event, ResourceSpans};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Status};
use spans::{Outcome, ProcessInfo};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs the launcher; returns the program's exit status, or otel-run's own failure to supervise
/// it (a usage error when the settings cannot be used; nothing has run then).
pub fn main(args: RunArgs) -> anyhow::Result<i32> {
    let plan = Plan::resolve(&args).map_err(|e| crate::error::usage(format!("{e:#}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    runtime.block_on(launch(plan))
}

/// How long the sink waits for the program's connections to finish after the program exited.
const SINK_DRAIN: Duration = Duration::from_secs(2);

async fn launch(mut plan: Plan) -> anyhow::Result<i32> {
    // Installed before anything else, so no signal between here and the spawn is lost.
    let mut signals = signals::Signals::install().context("cannot install signal handlers")?;
    let mut outputs = Outputs {
        console: plan.exporters.console,
        path: plan.span_path.clone(),
        ..Default::default()
    };
    if let Some(path) = &plan.span_path {
        match SpanFile::open(path, plan.format, plan.span_path_fresh) {
            Ok(f) => *outputs.file.lock().unwrap() = Some(f),
            Err(e) => tracing::warn!(
                "{e:#}; this rank's spans will not be written (the program runs anyway)"
            ),
        }
    }
    if let Some(cfg) = &plan.otlp {
        match OtlpClient::new(cfg.clone()) {
            Ok(c) => outputs.otlp = Some(Arc::new(c)),
            Err(e) => tracing::warn!("OTLP exporter disabled: {e:#}"),
        }
    }

    // Store and forward: everything for the collector goes through one forwarder, which spills
    // what the collector does not acknowledge.
    let mut forwarder = outputs.otlp.clone().map(|client| {
        let keep = match &plan.spill_path {
            Some(path) => spill::Keep::SpillFile(path.clone(), plan.format),
            None => spill::Keep::SpanFile,
        };
        Forwarder::start(client, keep)
    });
    let mut sink = None;
    let mut received = 0;
    if plan.sink {
        let forward = forwarder.as_ref().map(Forwarder::queue);
        let token = crate::sink::new_token();
        let config = SinkConfig {
            token: token.clone(),
            trace_id: plan.identity.trace_id,
            process_span_id: plan.identity.process_span_id,
            adopt: plan.adopt,
            body_limit: plan.sink_body_limit,
            file: outputs.file.clone(),
            console: outputs.console,
            forward,
        };
        match Sink::start(config).await {
            Ok(s) => {
                plan.contract.sink = Some(SinkEndpoint { endpoint: s.endpoint().to_string(), protocol: plan.sink_protocol.as_str(), token });
                sink = Some(s);
            }
            Err(e) => tracing::warn!("cannot start the loopback sink ({e}); the program's own spans will not be collected"),
        }
    }

    let (mut set, remove) = plan.contract.child_env();
    set.push((TEMPLATE_VAR.into(), plan.template.clone()));
    let exe = plan.argv[0]
        .rsplit('/')
        .next()
        .unwrap_or(&plan.argv[0])
        .to_string();
    let start = now_nanos();
    let launch = Launch {
        plan: &plan,
        outputs: &outputs,
        start,
        exe: &exe,
        written: Default::default(),
        exe_path: Default::default(),
        counts: Default::default(),
    };

    // After the program's exit, one deadline for forwarding its spans and otel-run's.
    let mut forward_deadline = None;
    let (exit_code, signalled) = match child::spawn(&plan.argv_os, &set, &remove) {
        Err(failure) => {
            eprintln!("otel-run: {}", failure.message);
            launch.write(launch.own_spans(
                &Outcome::NotStarted(&failure),
                None,
                now_nanos(),
                &SignalLog::default(),
                false,
            ));
            (failure.exit_code, false)
        }
        Ok(pid) => {
            // std returns once exec succeeded, so this is the program (gone if it already exited).
            if let Ok(path) = std::fs::read_link(format!("/proc/{pid}/exe")) {
                let _ = launch.exe_path.set(path.display().to_string());
            }
            let s = supervise(&launch, pid, &mut signals)
                .await
                .with_context(|| format!("lost track of the program (pid {pid})"))?;
            let end = now_nanos();
            let ended_at = Instant::now();
            let (termination, usage) = s.ended;
            let deadline = forwarder.as_ref().map(|f| {
                let (budget, why) = f.budget(s.first_stop.is_some());
                tracing::info!("program exited: forwarding budget {budget:?} ({why}); what is not acknowledged by then is spilled");
                ended_at + budget
            });
            // The program's last export is answered before otel-run's own spans are final.
            if let Some(sink) = sink.take() {
                let bound = deadline.map_or(SINK_DRAIN, |d| {
                    SINK_DRAIN.min(d.saturating_duration_since(Instant::now()))
                });
                let stats = sink.shutdown(bound).await;
                received = stats.spans_received - stats.spans_rejected;
                report_sink(
                    stats,
                    plan.span_path.is_some(),
                    outputs.otlp.is_some(),
                    outputs.console,
                );
            }
            // The counts go on the process span, so forwarding of the program's spans ends first.
            forward_deadline = deadline;
            if let (Some(f), Some(d)) = (forwarder.as_mut(), deadline) {
                f.drain(d).await;
                *launch.counts.lock().unwrap() = Some((received, f.counts()));
            }
            let final_spans = launch.own_spans(
                &Outcome::Ended(termination, usage),
                Some(pid),
                end,
                &s.signals,
                s.killed_after_grace,
            );
            match s.provisional {
                None => launch.write(final_spans),
                Some((reservation, provisional_end)) => {
                    if !launch.finalize(&reservation, final_spans) {
                        // The final version did not fit the reserved room: keep the provisional
                        // spans and record the real end in an exit span.
                        let exit = spans::exit_span(
                            &plan.identity,
                            &exe,
                            termination,
                            usage,
                            s.killed_after_grace,
                            (provisional_end, end),
                        );
                        launch.write(vec![spans::batch(&plan.resource, vec![exit])]);
                    }
                }
            }
            (termination.exit_code(), s.first_stop.is_some())
        }
    };
    if let Some(sink) = sink.take() {
        report_sink(
            sink.shutdown(SINK_DRAIN).await,
            plan.span_path.is_some(),
            outputs.otlp.is_some(),
            outputs.console,
        );
    }
    if let Some(mut f) = forwarder {
        let deadline = forward_deadline.unwrap_or_else(|| Instant::now() + f.budget(signalled).0);
        let done = *launch.counts.lock().unwrap();
        let program = match done {
            Some((_, counts)) => counts,
            None => {
                // The program did not start: only otel-run's own spans.
                f.drain(deadline).await;
                f.counts()
            }
        };
        let own = std::mem::take(&mut *launch.written.lock().unwrap());
        f.send_own(own, deadline).await;
        report_forwarding(&f, received, program, plan.span_path.as_deref());
    }
    if let Some(path) = &outputs.path {
        match outputs.file.lock().unwrap().as_ref().map(|f| f.failed()) {
            Some(false) => tracing::info!("spans written to {}", path.display()),
            Some(true) => tracing::warn!("not all spans could be written to {}", path.display()),
            None => {}
        }
    }
    Ok(exit_code)
}

/// Reports what the sink received, and anything it could not do.
/// `printed`: the console exporter showed the spans, so they were not discarded.
fn report_sink(stats: SinkStats, to_file: bool, forwarding: bool, printed: bool) {
    tracing::info!(
        "sink: {} requests, {} spans received, {} written, {} adopted into the job trace, {} refused requests",
        stats.requests,
        stats.spans_received,
        stats.spans_written,
        stats.spans_adopted,
        stats.requests_refused
    );
    if stats.spans_rejected > 0 {
        tracing::warn!(
            "sink: rejected {} of the program's spans with invalid ids",
            stats.spans_rejected
        );
    }
    if to_file && stats.spans_written + stats.spans_rejected < stats.spans_received {
        tracing::warn!(
            "sink: {} of the program's spans could not be written to the span file",
            stats.spans_received - stats.spans_written - stats.spans_rejected
        );
    }
    if !to_file && !forwarding && !printed && stats.spans_received > 0 {
        tracing::warn!(
            "sink: {} of the program's spans were received and discarded: no jsonlines, otlp or console exporter",
            stats.spans_received
        );
    }
}

/// The `-v` summary of store and forward, and the warnings a user must act on: where the spilled
/// spans are and the command that delivers them, or how many were lost.
fn report_forwarding(
    f: &Forwarder,
    received: u64,
    program: spill::Counts,
    span_path: Option<&std::path::Path>,
) {
    let total = f.counts();
    let own = total.minus(program);
    let endpoint = &f.client().config().endpoint;
    tracing::info!(
        "forwarding to {endpoint}: the program's spans: {received} received, {} forwarded, {} spilled, {} dropped; otel-run's own spans: {} forwarded, {} spilled, {} dropped",
        program.forwarded,
        program.spilled,
        program.dropped,
        own.forwarded,
        own.spilled,
        own.dropped
    );
    if let (true, Some(path)) = (total.spilled > 0, f.spill_path()) {
        tracing::warn!(
            "{} spans were not acknowledged by the collector {endpoint}; they are in the spill file {}; send them later with: {}",
            total.spilled,
            path.display(),
            spill::replay_command(f.client(), path)
        );
    }
    if total.kept > 0 {
        let place = span_path.map_or("the span file".to_string(), |p| p.display().to_string());
        tracing::warn!(
            "{} spans were not acknowledged by the collector {endpoint}; the span file has them with everything else (otel-run replay {place} resends the acknowledged ones too)",
            total.kept
        );
    }
    if total.dropped > 0 {
        tracing::error!(
            "{} spans lost: not acknowledged by the collector {endpoint}, and the spill file {} could not be written",
            total.dropped,
            f.spill_path().map_or(String::new(), |p| p.display().to_string())
        );
    }
}

/// What the launch needs to build and record its own spans.
struct Launch<'a> {
    plan: &'a Plan,
    outputs: &'a Outputs,
    start: u64,
    exe: &'a str,
    /// Everything written to the file, sent to the collector at the end.
    written: Mutex<Vec<ResourceSpans>>,
    /// The program's resolved executable (PATH lookup, symlinks), read once it runs.
    exe_path: std::cell::OnceCell<String>,
    /// Store and forward of the program's spans, once final: received, and what became of them.
    counts: Mutex<Option<(u64, spill::Counts)>>,
}

impl Launch<'_> {
    /// The process span, and on rank 0 the step root, as one batch.
    fn own_spans(
        &self,
        outcome: &Outcome,
        pid: Option<u32>,
        end: u64,
        signals: &SignalLog,
        killed_after_grace: bool,
    ) -> Vec<ResourceSpans> {
        let plan = self.plan;
        let info = ProcessInfo {
            argv: &plan.argv,
            executable_path: self.exe_path.get().cloned(),
            child_pid: pid,
            start: self.start,
            end,
        };
        let mut process =
            spans::process_span(&plan.identity, &info, outcome, signals.events.clone());
        if signals.dropped > 0 {
            process.attributes.push(attr::int(
                semconv::SIGNAL_EVENTS_DROPPED,
                signals.dropped as i64,
            ));
        }
        if let Some((received, counts)) = *self.counts.lock().unwrap() {
            for (key, value) in [
                (semconv::SPANS_RECEIVED, received),
                (semconv::SPANS_FORWARDED, counts.forwarded),
                (semconv::SPANS_SPILLED, counts.spilled),
                (semconv::SPANS_DROPPED, counts.dropped),
            ] {
                process.attributes.push(attr::int(key, value as i64));
            }
        }
        if killed_after_grace {
            process
                .attributes
                .push(attr::boolean(semconv::KILLED_AFTER_GRACE, true));
            if let Some(status) = process.status.as_mut() {
                status.message =
                    format!("killed by otel-run after the {:?} grace period", plan.grace);
            }
        }
        let failed = process
            .status
            .as_ref()
            .is_some_and(|s| s.code == StatusCode::Error as i32);
        let mut own = vec![process];
        if let (Some(step_id), Some(key), 0) = (
            plan.identity.step_span_id,
            plan.job.key.as_deref(),
            plan.job.rank,
        ) {
            let status = failed.then(|| Status {
                code: StatusCode::Error as i32,
                message: format!("rank 0: {}", own[0].status.as_ref().unwrap().message),
            });
            own.push(spans::step_span(
                &plan.identity,
                step_id,
                key,
                self.exe,
                plan.job.size,
                (self.start, end),
                status,
            ));
        }
        vec![spans::batch(&plan.resource, own)]
    }

    /// Appends to the file (one write, then fsync) and keeps a copy for the collector.
    fn write(&self, batch: Vec<ResourceSpans>) {
        self.outputs.write_local(&batch);
        self.written.lock().unwrap().extend(batch);
    }

    /// Makes spans durable before their final version is known (a terminating signal arrived:
    /// Slurm's or mpirun's SIGKILL may follow at any moment), leaving room to finalise in place.
    fn write_provisional(&self, batch: &[ResourceSpans]) -> Option<crate::format::Reservation> {
        let mut guard = self.outputs.file.lock().unwrap();
        let file = guard.as_mut()?;
        match file
            .append_reserved(batch, PROVISIONAL_ROOM)
            .and_then(|r| file.sync().map(|_| r))
        {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("{e:#}");
                None
            }
        }
    }

    /// Replaces the provisional spans with their final version; false if it does not fit.
    fn finalize(
        &self,
        reservation: &crate::format::Reservation,
        batch: Vec<ResourceSpans>,
    ) -> bool {
        let rewritten = match self.outputs.file.lock().unwrap().as_mut() {
            Some(file) => match file.rewrite(reservation, &batch) {
                Ok(fits) => fits,
                Err(e) => {
                    tracing::warn!("{e:#}");
                    return false;
                }
            },
            None => true,
        };
        if rewritten {
            if self.outputs.console {
                eprint!("{}", crate::export::console::render(&batch));
            }
            self.written.lock().unwrap().extend(batch);
        }
        rewritten
    }
}

/// Spare bytes after provisional spans: room for the exit code, CPU time, RSS and the signal
/// events that can still come (at most [`MAX_SIGNAL_EVENTS`], ~250 bytes each), so the final
/// version always fits and the process span's end stays exact.
const PROVISIONAL_ROOM: usize = 8192;

/// Signal events kept on the process span; any sender can signal otel-run, so the count is
/// bounded and the rest only counted (`otel_run.signal.events_dropped`).
const MAX_SIGNAL_EVENTS: usize = 16;

/// The signals received, as process-span events, bounded.
#[derive(Default)]
struct SignalLog {
    events: Vec<Event>,
    dropped: u64,
}

impl SignalLog {
    fn record(&mut self, event: Event) {
        if self.events.len() < MAX_SIGNAL_EVENTS {
            self.events.push(event);
        } else {
            self.dropped += 1;
        }
    }
}

/// What happened while the program ran.
struct Supervised {
    ended: (Termination, child::Usage),
    signals: SignalLog,
    /// The first terminating signal and when it came.
    first_stop: Option<(i32, Instant)>,
    /// Set when otel-run's spans were made durable before the program exited: where, and when.
    provisional: Option<(crate::format::Reservation, u64)>,
    killed_after_grace: bool,
}

/// Waits for the program, handling signals: records each as an event, forwards it per policy,
/// makes otel-run's spans durable at once on the first terminating signal (finalised in place
/// when the program exits), SIGKILLs the program after the grace period. Never escalates on a repeated SIGTERM (Slurm's time limit sends two); a second
/// SIGINT (Ctrl-C twice) ends the program at once.
async fn supervise(
    launch: &Launch<'_>,
    pid: u32,
    signals: &mut signals::Signals,
) -> std::io::Result<Supervised> {
    let plan = launch.plan;
    let mut s = Supervised {
        ended: (Termination::Exited(0), child::Usage::default()),
        signals: SignalLog::default(),
        first_stop: None,
        provisional: None,
        killed_after_grace: false,
    };
    let mut kill_sent = false;
    loop {
        let grace = s
            .first_stop
            .filter(|_| !kill_sent)
            .map(|(_, t)| t + plan.grace);
        tokio::select! {
            rec = signals.next() => {
                let rec = rec?;
                if rec.signal == libc::SIGCHLD {
                    if let Some(ended) = child::try_reap(pid)? {
                        s.ended = ended;
                        return Ok(s);
                    }
                    continue;
                }
                let sender = signals::sender_name(rec.sender_pid);
                let (forward, why) = signals::should_forward(plan.forward_policy, &rec, sender.as_deref(), pid);
                if forward {
                    child::signal(pid, rec.signal);
                }
                let name = child::signal_name(rec.signal);
                tracing::info!("received {name} from pid {} ({}): {}", rec.sender_pid, sender.as_deref().unwrap_or("?"), if forward { "forwarded" } else { why });
                s.signals.record(signal_event(&rec, &name, sender.as_deref(), forward));
                if signals::is_terminating(rec.signal) {
                    match s.first_stop {
                        None => {
                            s.first_stop = Some((rec.signal, Instant::now()));
                            let end = now_nanos();
                            let provisional = launch.own_spans(&Outcome::Terminating { signal: rec.signal }, Some(pid), end, &s.signals, false);
                            s.provisional = launch.write_provisional(&provisional).map(|r| (r, end));
                            let took = s.first_stop.map(|(_, t)| t.elapsed()).unwrap_or_default();
                            tracing::info!("{name}: otel-run's spans durable (written and fsynced) {} us after the signal", took.as_micros());
                        }
                        Some((libc::SIGINT, _)) if rec.signal == libc::SIGINT && !kill_sent => {
                            tracing::info!("second SIGINT: killing the program");
                            child::signal(pid, libc::SIGKILL);
                            kill_sent = true;
                        }
                        Some(_) => {}
                    }
                }
            }
            _ = sleep_until(grace), if grace.is_some() => {
                tracing::warn!("program did not exit within the {:?} grace period: killing it", plan.grace);
                child::signal(pid, libc::SIGKILL);
                kill_sent = true;
                s.killed_after_grace = true;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn signal_event(
    rec: &signals::Received,
    name: &str,
    sender: Option<&str>,
    forwarded: bool,
) -> Event {
    let mut attributes = vec![
        attr::int(semconv::SIGNAL_NUMBER, rec.signal as i64),
        attr::string(semconv::SIGNAL_NAME, name),
        attr::int(semconv::SIGNAL_SENDER_PID, rec.sender_pid as i64),
        attr::boolean(semconv::SIGNAL_FORWARDED, forwarded),
    ];
    if let Some(sender) = sender {
        attributes.push(attr::string(semconv::SIGNAL_SENDER, sender));
    }
    Event {
        time_unix_nano: now_nanos(),
        name: name.to_string(),
        attributes,
        dropped_attributes_count: 0,
    }
}
