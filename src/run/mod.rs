//! The launcher: `otel-run [OPTIONS] [--] COMMAND...`. Resolves the settings, detects the job,
//! starts the program with the environment contract, waits for it, and records the rank's spans.

pub mod child;
pub mod spans;

use crate::cli::{Exporters, RunArgs};
use crate::contract::{self, Contract};
use crate::export::Outputs;
use crate::format::{path, SpanFile};
use crate::ids::{self, TraceParent};
use crate::job::{self, Job};
use crate::otlp::OtlpClient;
use crate::{attr, semconv};
use anyhow::{anyhow, bail};
use child::{SpawnFailure, Termination};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Status};
use spans::{Identity, Outcome, ProcessInfo};
use std::path::PathBuf;
use tokio::signal::unix::{signal, SignalKind};

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

        let contract = Contract {
            traceparent,
            tracestate,
            service_name,
            resource_attributes: contract_attrs,
            jsonlines_path: span_path.clone(),
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

async fn launch(plan: Plan) -> i32 {
    let mut outputs = Outputs {
        console: plan.exporters.console,
        ..Default::default()
    };
    if let Some(path) = &plan.span_path {
        match SpanFile::open(path, plan.format) {
            Ok(f) => outputs.file = Some(f),
            Err(e) => tracing::warn!(
                "{e:#}; this rank's spans will not be written (the program runs anyway)"
            ),
        }
    }
    if let Some(cfg) = &plan.otlp {
        match OtlpClient::new(cfg.clone()) {
            Ok(c) => outputs.otlp = Some(c),
            Err(e) => tracing::warn!("OTLP exporter disabled: {e:#}"),
        }
    }

    let (mut set, remove) = plan.contract.child_env();
    set.push((TEMPLATE_VAR.into(), plan.template.clone()));

    // Registered before the spawn so the child's exit cannot slip by unnoticed.
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch for the program's exit: {e}");
            return 2;
        }
    };
    let start = crate::format::time::now_nanos();
    let spawned = child::spawn(&plan.argv_os, &set, &remove);
    let (outcome_owned, pid): (
        Result<(Termination, child::Usage), SpawnFailure>,
        Option<u32>,
    ) = match spawned {
        Ok(pid) => match child::wait(pid, &mut sigchld).await {
            Ok(done) => (Ok(done), Some(pid)),
            Err(e) => {
                tracing::error!("lost track of the program (pid {pid}): {e}");
                return 2;
            }
        },
        Err(failure) => {
            eprintln!("otel-run: {}", failure.message);
            (Err(failure), None)
        }
    };
    let end = crate::format::time::now_nanos();

    let outcome = match &outcome_owned {
        Ok((t, u)) => Outcome::Ended(*t, *u),
        Err(f) => Outcome::NotStarted(f),
    };
    let exit_code = match &outcome_owned {
        Ok((t, _)) => t.exit_code(),
        Err(f) => f.exit_code,
    };
    let info = ProcessInfo {
        argv: &plan.argv,
        executable_path: None,
        child_pid: pid,
        start,
        end,
    };
    let process = spans::process_span(&plan.identity, &info, &outcome, Vec::new(), Vec::new());
    let mut own = vec![process];
    if let (Some(step_id), Some(key), 0) = (
        plan.identity.step_span_id,
        plan.job.key.as_deref(),
        plan.job.rank,
    ) {
        let exe = plan.argv[0].rsplit('/').next().unwrap_or(&plan.argv[0]);
        let status = (exit_code != 0).then(|| Status {
            code: StatusCode::Error as i32,
            message: format!("rank 0 exited with status {exit_code}"),
        });
        own.push(spans::step_span(
            &plan.identity,
            step_id,
            key,
            exe,
            plan.job.size,
            (start, end),
            status,
        ));
    }
    let batch = vec![spans::batch(&plan.resource, own)];
    outputs.write_local(&batch);
    if let Some(file) = &outputs.file {
        tracing::info!("spans written to {}", file.path().display());
    }
    outputs.send_otlp(batch).await;
    exit_code
}
