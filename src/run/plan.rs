//! What the launcher decides before the program starts: exporters, job, trace identity,
//! resource, span file and the environment contract, from flags and the environment.

use super::signals;
use super::spans::Identity;
use crate::cli::{Exporters, RunArgs, SinkMode};
use crate::contract::{self, Contract};
use crate::format::path;
use crate::ids::{self, TraceParent};
use crate::job::{self, Job};
use crate::{attr, semconv};
use anyhow::{anyhow, bail};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::path::PathBuf;
use std::time::Duration;

/// Set in the child's environment so a nested otel-run (e.g. `srun otel-run` inside a script
/// run by `otel-run`) expands the same template for its own rank instead of appending to the
/// outer run's resolved file.
pub const TEMPLATE_VAR: &str = "OTEL_RUN_JSONLINES_TEMPLATE";

/// Longest accepted `--grace-period`: far beyond any batch system's kill delay, and small enough
/// that "now + grace" can never overflow a clock.
pub const MAX_GRACE_PERIOD_SECS: f64 = 7.0 * 24.0 * 3600.0;

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
    /// The span file's name was made up from a random `*`: it must not exist yet.
    pub span_path_fresh: bool,
    /// Where unacknowledged spans go (otlp without jsonlines).
    pub spill_path: Option<PathBuf>,
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

fn env_var(key: &str) -> Option<String> {
    job::env_value(key)
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
        let host = job::hostname();

        // Trace identity (ARCHITECTURE.md §5): incoming TRACEPARENT, else the job key, else random.
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
        let job_name = job.job_id.clone().unwrap_or_else(|| "local".into());
        let step = job.step_id.clone().unwrap_or_else(|| "0".into());
        let placeholders = path::Placeholders {
            rank: job.rank,
            size: job.size,
            job: &job_name,
            step: &step,
            host: &host,
            pid: std::process::id(),
        };
        let resolve = |template: &str, what: &str| -> anyhow::Result<PathBuf> {
            let expanded =
                path::expand(template, &placeholders).map_err(|e| anyhow!("{what}: {e}"))?;
            // Absolute, so a child that changes directory still appends to the same file.
            let path = PathBuf::from(expanded);
            Ok(std::env::current_dir()
                .map(|cwd| cwd.join(&path))
                .unwrap_or(path))
        };
        let span_path = if exporters.jsonlines {
            Some(resolve(
                &template,
                "--jsonlines-path / OTEL_EXPORTER_JSONLINES_PATH",
            )?)
        } else {
            None
        };
        // With jsonlines the span file already holds every span: no spill file then.
        let spill_path = if exporters.otlp && !exporters.jsonlines {
            let spill_template = args
                .spill_path
                .clone()
                .unwrap_or_else(|| default_spill_template(&template));
            Some(resolve(
                &spill_template,
                "--spill-path / OTEL_RUN_SPILL_PATH",
            )?)
        } else {
            None
        };

        // The sink is the program's one way out: it never waits on a remote collector, and
        // what the collector does not acknowledge is spilled. With only `console`, the program's
        // SDK would otherwise export to its default (localhost:4318), retry for seconds and
        // lose its spans; the sink prints them instead. `--sink off` stays the user's call.
        let sink = match args.sink {
            SinkMode::On => true,
            SinkMode::Off => false,
            SinkMode::Auto => exporters.jsonlines || exporters.otlp || exporters.console,
        };
        if !(args.grace_period.is_finite() && args.grace_period >= 0.0) {
            bail!(
                "--grace-period / OTEL_RUN_GRACE_PERIOD: {} is not a number of seconds",
                args.grace_period
            );
        }
        if args.grace_period > MAX_GRACE_PERIOD_SECS {
            bail!(
                "--grace-period / OTEL_RUN_GRACE_PERIOD: {} s is over the maximum of {MAX_GRACE_PERIOD_SECS} s (7 days)",
                args.grace_period
            );
        }
        let contract = Contract {
            traceparent,
            tracestate,
            service_name,
            resource_attributes: contract_attrs,
            // A program with a jsonlines exporter of its own (bsb-otel) appends to the rank's
            // file without the sink (otel-run appends there only whole lines, as it does); with
            // the sink, which writes the rank's file all along, to a file of its own beside it.
            jsonlines_path: match (&span_path, sink) {
                (Some(p), true) => Some(path::program_file(p)),
                (p, false) => p.clone(),
                (None, true) => None,
            },
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
            span_path_fresh: path::makes_new_name(&template),
            span_path,
            spill_path,
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

/// The spill file beside the span files: `spill_` before the file name of the span template, so
/// a glob for the span files does not pick up spill files.
fn default_spill_template(span_template: &str) -> String {
    match span_template.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/spill_{name}"),
        None => format!("spill_{span_template}"),
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

#[cfg(test)]
mod tests {
    #[test]
    fn spill_files_sit_beside_span_files() {
        use super::default_spill_template as t;
        assert_eq!(t("traces_*.jsonlines"), "spill_traces_*.jsonlines");
        assert_eq!(
            t("/scratch/run/{rank}.jsonl"),
            "/scratch/run/spill_{rank}.jsonl"
        );
    }
}
