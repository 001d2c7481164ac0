//! The launcher: `otel-run [OPTIONS] [--] COMMAND...`. Resolves the settings, detects the job,
//! starts the program with the environment contract, waits for it, and records the rank's spans.

pub mod child;
pub mod signals;
pub mod spans;

use crate::cli::{Exporters, RunArgs, SinkMode};
use crate::contract::SinkEndpoint;
use crate::contract::{self, Contract};
use crate::export::Outputs;
use crate::format::time::now_nanos;
use crate::format::{path, SpanFile};
use crate::ids::{self, TraceParent};
use crate::job::{self, Job};
use crate::otlp::OtlpClient;
use crate::sink::{Sink, SinkConfig, SinkStats};
use crate::{attr, semconv};
use anyhow::{anyhow, bail};
use child::Termination;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::Event, ResourceSpans};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Status};
use spans::{Identity, Outcome, ProcessInfo};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Set in the child's environment so a nested otel-run (e.g. `srun otel-run` inside a script
/// run by `otel-run`) expands the same template for its own rank instead of appending to the
/// outer run's resolved file.
const TEMPLATE_VAR: &str = "OTEL_RUN_JSONLINES_TEMPLATE";

/// Everything decided before the program starts.
pub struct Plan {
    pub argv: Vec<String>,
    pub argv_os: Vec<std::ffi::OsString>,
    pub exporters: Exporters,
    pub job: Job,
    pub identity: Identity,
    pub resource: Resource,
    pub contract: Contract,
    pub span_path: Option<PathBuf>,
    pub format: crate::format::LineFormat,
    pub otlp: Option<crate::otlp::OtlpConfig>,
    /// The span path template, passed on to nested runs.
    pub template: String,
    /// Run the loopback sink for the program's SDK.
    pub sink: bool,
    pub sink_protocol: crate::otlp::Protocol,
    pub adopt: bool,
    pub sink_body_limit: usize,
    pub forward_policy: signals::ForwardPolicy,
    pub grace: Duration,
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

impl Plan {
    /// Usage errors (unknown exporter, malformed --resource-attributes, …) are returned; problems
    /// with inherited environment (a malformed TRACEPARENT) are warnings, because the job must run.
    pub fn resolve(args: &RunArgs) -> anyhow::Result<Plan> {
        if args.command.is_empty() {
            bail!(
                "no program to run (usage: otel-run [OPTIONS] [--] COMMAND [ARGS...]; see --help)"
            );
        }
        let argv: Vec<String> = args
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let exe_name = argv[0].rsplit('/').next().unwrap_or(&argv[0]).to_string();

        let exporters = match &args.traces_exporter {
            Some(list) => Exporters::parse(list)
                .map_err(|e| anyhow!("--traces-exporter / OTEL_TRACES_EXPORTER: {e}"))?,
            None if args.otlp.endpoint_configured() => Exporters {
                otlp: true,
                ..Default::default()
            },
            None => Exporters {
                jsonlines: true,
                ..Default::default()
            },
        };
        let otlp = if exporters.otlp {
            Some(args.otlp.resolve()?)
        } else {
            None
        };

        let flag_attrs = match &args.resource_attributes {
            Some(s) => contract::parse_resource_attributes(s)
                .map_err(|e| anyhow!("--resource-attributes: {e}"))?,
            None => Vec::new(),
        };
        let env_attrs = match env_var("OTEL_RESOURCE_ATTRIBUTES") {
            Some(s) => contract::parse_resource_attributes(&s).unwrap_or_else(|e| {
                tracing::warn!("ignoring OTEL_RESOURCE_ATTRIBUTES: {e}");
                Vec::new()
            }),
            None => Vec::new(),
        };

        let job = job::detect_from_env();
        crate::logging::set_rank(job.rank, job.size);
        let host = hostname();

        // Trace identity (DESIGN.md §5): incoming TRACEPARENT, else the job key, else random.
        let incoming = env_var("TRACEPARENT").and_then(|v| match TraceParent::parse(&v) {
            Ok(tp) => Some(tp),
            Err(e) => {
                tracing::warn!("ignoring malformed TRACEPARENT {v:?}: {e}");
                None
            }
        });
        let trace_id = match (&incoming, &job.key) {
            (Some(tp), _) => tp.trace_id,
            (None, Some(key)) => ids::derive_trace_id(key),
            (None, None) => ids::random_trace_id(),
        };
        if job.key_is_node_local && incoming.is_none() && job.rank == 0 {
            tracing::warn!(
                "{} exports no job id: ranks on other nodes will form separate traces; run the launcher under otel-run (or set TRACEPARENT) to join them",
                job.launcher
            );
        }
        let tracestate = incoming.as_ref().and_then(|_| env_var("TRACESTATE"));
        let identity = Identity {
            trace_id,
            process_span_id: ids::random_span_id(),
            step_span_id: job
                .key
                .as_deref()
                .map(|k| ids::derive_step_span_id(&trace_id, k)),
            outer_parent: incoming.as_ref().map(|tp| tp.span_id),
            trace_state: tracestate.clone().unwrap_or_default(),
        };
        let traceparent = TraceParent {
            trace_id,
            span_id: identity.process_span_id,
            flags: incoming.as_ref().map_or(1, |tp| tp.flags),
        };

        // Resource: inherited < detected < --resource-attributes; service.name from the flag or
        // OTEL_SERVICE_NAME, else the attributes, else the program's name.
        let detected = job.resource_attributes();
        let detected_str: Vec<(String, String)> =
            std::iter::once((semconv::HOST_NAME.to_string(), host.clone()))
                .chain(
                    detected
                        .iter()
                        .map(|kv| (kv.key.clone(), any_to_string(kv))),
                )
                .collect();
        let merged = contract::merge_attributes(&[&env_attrs, &detected_str, &flag_attrs]);
        let service_name = args
            .service_name
            .clone()
            .or_else(|| {
                merged
                    .iter()
                    .find(|(k, _)| k == semconv::SERVICE_NAME)
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| exe_name.clone());
        let mut contract_attrs = contract::merge_attributes(&[
            &merged,
            &[(semconv::SERVICE_NAME.to_string(), service_name.clone())],
        ]);
        // Typed values for our own spans: detected numbers stay numbers unless the user overrode them.
        let mut resource_attrs = Vec::new();
        for (k, v) in &contract_attrs {
            let typed = detected
                .iter()
                .find(|kv| &kv.key == k && any_to_string(kv) == *v);
            resource_attrs.push(typed.cloned().unwrap_or_else(|| attr::string(k, v.clone())));
        }
        contract_attrs.retain(|(k, _)| k != semconv::SERVICE_NAME);
        let resource = Resource {
            attributes: resource_attrs,
            ..Default::default()
        };

        let template = args
            .jsonlines_path
            .clone()
            .or_else(|| env_var(TEMPLATE_VAR))
            .or_else(|| env_var("OTEL_EXPORTER_JSONLINES_PATH"))
            .unwrap_or_else(|| path::DEFAULT_TEMPLATE.to_string());
        let span_path = if exporters.jsonlines {
            let job_name = job.job_id.clone().unwrap_or_else(|| "local".into());
            let step = job.step_id.clone().unwrap_or_else(|| "0".into());
            let expanded = path::expand(
                &template,
                &path::Placeholders {
                    rank: job.rank,
                    size: job.size,
                    job: &job_name,
                    step: &step,
                    host: &host,
                    pid: std::process::id(),
                },
            )
            .map_err(|e| anyhow!("--jsonlines-path / OTEL_EXPORTER_JSONLINES_PATH: {e}"))?;
            // Absolute, so a child that changes directory still appends to the same file.
            let path = PathBuf::from(expanded);
            Some(
                std::env::current_dir()
                    .map(|cwd| cwd.join(&path))
                    .unwrap_or(path),
            )
        } else {
            None
        };

        let sink = match args.sink {
            SinkMode::On => true,
            SinkMode::Off => false,
            SinkMode::Auto => exporters.jsonlines,
        };
        if !(args.grace_period.is_finite() && args.grace_period >= 0.0) {
            bail!(
                "--grace-period / OTEL_RUN_GRACE_PERIOD: {} is not a number of seconds",
                args.grace_period
            );
        }
        let contract = Contract {
            traceparent,
            tracestate,
            service_name,
            resource_attributes: contract_attrs,
            // Pass-through only: with the sink, the program's spans arrive over OTLP instead.
            jsonlines_path: if sink { None } else { span_path.clone() },
            sink: None,
        };
        Ok(Plan {
            argv_os: args.command.clone(),
            argv,
            exporters,
            job,
            identity,
            resource,
            contract,
            span_path,
            format: args.jsonlines_format,
            otlp,
            template,
            sink,
            sink_protocol: args.sink_protocol,
            adopt: !args.no_adopt,
            sink_body_limit: args.sink_body_limit as usize * 1024 * 1024,
            forward_policy: args.forward_signals,
            grace: Duration::from_secs_f64(args.grace_period),
        })
    }
}

fn any_to_string(kv: &opentelemetry_proto::tonic::common::v1::KeyValue) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// Runs the launcher; returns the process exit status.
pub fn main(args: RunArgs) -> i32 {
    let plan = match Plan::resolve(&args) {
        Ok(plan) => plan,
        Err(e) => {
            tracing::error!("{e:#}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the event loop: {e}");
            return 2;
        }
    };
    runtime.block_on(launch(plan))
}

/// How long the sink waits for the program's connections to finish after the program exited.
const SINK_DRAIN: Duration = Duration::from_secs(2);
/// Batches of the program's spans waiting for the collector; beyond that they are only in the file.
const FORWARD_QUEUE: usize = 256;
/// Collector bound at shutdown after a signal: Slurm's SIGKILL may be seconds away.
const SIGNALLED_EXPORT_BOUND: Duration = Duration::from_secs(2);

async fn launch(mut plan: Plan) -> i32 {
    // Installed before anything else, so no signal between here and the spawn is lost.
    let mut signals = match signals::Signals::install() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return 2;
        }
    };
    let mut outputs = Outputs {
        console: plan.exporters.console,
        path: plan.span_path.clone(),
        ..Default::default()
    };
    if let Some(path) = &plan.span_path {
        match SpanFile::open(path, plan.format) {
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

    let mut forwarder = None;
    let mut sink = None;
    if plan.sink {
        let forward = outputs.otlp.clone().map(|client| {
            let (tx, rx) = mpsc::channel(FORWARD_QUEUE);
            forwarder = Some(tokio::spawn(forward_batches(client, rx)));
            tx
        });
        let token = crate::sink::new_token();
        let config = SinkConfig {
            token: token.clone(),
            trace_id: plan.identity.trace_id,
            process_span_id: plan.identity.process_span_id,
            adopt: plan.adopt,
            body_limit: plan.sink_body_limit,
            file: outputs.file.clone(),
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
    };

    let (exit_code, signalled) = match child::spawn(&plan.argv_os, &set, &remove) {
        Err(failure) => {
            eprintln!("otel-run: {}", failure.message);
            launch.write(launch.own_spans(
                &Outcome::NotStarted(&failure),
                None,
                now_nanos(),
                Vec::new(),
                false,
            ));
            (failure.exit_code, false)
        }
        Ok(pid) => {
            let s = match supervise(&launch, pid, &mut signals).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("lost track of the program (pid {pid}): {e}");
                    return 2;
                }
            };
            let end = now_nanos();
            let (termination, usage) = s.ended;
            // The program's last export is answered before otel-run's own spans are final.
            if let Some(sink) = sink.take() {
                report_sink(sink.shutdown(SINK_DRAIN).await, plan.span_path.is_some());
            }
            let final_spans = launch.own_spans(
                &Outcome::Ended(termination, usage),
                Some(pid),
                end,
                s.events,
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
        report_sink(sink.shutdown(SINK_DRAIN).await, plan.span_path.is_some());
    }
    let bound = if signalled {
        SIGNALLED_EXPORT_BOUND
    } else {
        Duration::MAX
    };
    if let Some(forwarder) = forwarder {
        match tokio::time::timeout(bound.min(Duration::from_secs(60)), forwarder).await {
            Ok(Ok(unsent)) if unsent > 0 => {
                tracing::warn!(
                    "{unsent} of the program's spans were not forwarded to the collector{}",
                    outputs.replay_hint()
                )
            }
            Ok(_) => {}
            Err(_) => tracing::warn!(
                "forwarding the program's spans did not finish in time{}",
                outputs.replay_hint()
            ),
        }
    }
    if outputs.otlp.is_some() {
        let own = std::mem::take(&mut *launch.written.lock().unwrap());
        outputs.send_otlp(own, bound).await;
    }
    if let Some(path) = &outputs.path {
        tracing::info!("spans written to {}", path.display());
    }
    exit_code
}

/// Reports what the sink received, and anything it could not do.
fn report_sink(stats: SinkStats, to_file: bool) {
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
    if stats.forward_dropped > 0 {
        tracing::warn!(
            "sink: {} of the program's spans were not queued for the collector (queue full)",
            stats.forward_dropped
        );
    }
}

/// Forwards the program's spans to the collector; returns how many could not be sent.
async fn forward_batches(
    client: Arc<OtlpClient>,
    mut rx: mpsc::Receiver<Vec<ResourceSpans>>,
) -> u64 {
    let mut unsent = 0;
    while let Some(batch) = rx.recv().await {
        let count = crate::format::span_count(&batch) as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: batch,
        };
        match client.export(&request).await {
            Ok(outcome) => unsent += outcome.rejected_spans.max(0) as u64,
            Err(e) => {
                tracing::debug!("forwarding {count} spans failed: {e}");
                unsent += count;
            }
        }
    }
    unsent
}

/// What the launch needs to build and record its own spans.
struct Launch<'a> {
    plan: &'a Plan,
    outputs: &'a Outputs,
    start: u64,
    exe: &'a str,
    /// Everything written to the file, sent to the collector at the end.
    written: Mutex<Vec<ResourceSpans>>,
}

impl Launch<'_> {
    /// The process span, and on rank 0 the step root, as one batch.
    fn own_spans(
        &self,
        outcome: &Outcome,
        pid: Option<u32>,
        end: u64,
        events: Vec<Event>,
        killed_after_grace: bool,
    ) -> Vec<ResourceSpans> {
        let plan = self.plan;
        let info = ProcessInfo {
            argv: &plan.argv,
            executable_path: None,
            child_pid: pid,
            start: self.start,
            end,
        };
        let mut process = spans::process_span(&plan.identity, &info, outcome, Vec::new(), events);
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

/// Spare bytes after provisional spans: room for the exit code, CPU time, RSS and a few more
/// signal events in the final version.
const PROVISIONAL_ROOM: usize = 4096;

/// What happened while the program ran.
struct Supervised {
    ended: (Termination, child::Usage),
    events: Vec<Event>,
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
        events: Vec::new(),
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
                    // SAFETY: kill(2) on our own, not yet reaped child.
                    unsafe { libc::kill(pid as libc::pid_t, rec.signal) };
                }
                let name = child::signal_name(rec.signal);
                tracing::info!("received {name} from pid {} ({}): {}", rec.sender_pid, sender.as_deref().unwrap_or("?"), if forward { "forwarded" } else { why });
                s.events.push(signal_event(&rec, &name, sender.as_deref(), forward));
                if signals::is_terminating(rec.signal) {
                    match s.first_stop {
                        None => {
                            s.first_stop = Some((rec.signal, Instant::now()));
                            let end = now_nanos();
                            let provisional = launch.own_spans(&Outcome::Terminating { signal: rec.signal }, Some(pid), end, s.events.clone(), false);
                            s.provisional = launch.write_provisional(&provisional).map(|r| (r, end));
                            let took = s.first_stop.map(|(_, t)| t.elapsed()).unwrap_or_default();
                            tracing::info!("{name}: otel-run's spans durable (written and fsynced) {} us after the signal", took.as_micros());
                        }
                        Some((libc::SIGINT, _)) if rec.signal == libc::SIGINT && !kill_sent => {
                            tracing::info!("second SIGINT: killing the program");
                            // SAFETY: as above.
                            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                            kill_sent = true;
                        }
                        Some(_) => {}
                    }
                }
            }
            _ = sleep_until(grace), if grace.is_some() => {
                tracing::warn!("program did not exit within the {:?} grace period: killing it", plan.grace);
                // SAFETY: as above.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
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
