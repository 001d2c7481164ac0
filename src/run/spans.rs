//! otel-run's own spans: the process span of each rank and, on rank 0, the step root.

use super::child::{signal_name, SpawnFailure, Termination, Usage};
use crate::ids::{SpanId, TraceId};
use crate::{attr, semconv};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};

/// How the rank's program ended, as far as the process span is concerned.
pub enum Outcome<'a> {
    Ended(Termination, Usage),
    NotStarted(&'a SpawnFailure),
    /// A terminating signal arrived and the program has not exited yet: the span is made durable
    /// now (Slurm's SIGKILL may follow at any moment); an exit span records the real end later.
    Terminating {
        signal: i32,
    },
}

pub struct Identity {
    pub trace_id: TraceId,
    pub process_span_id: SpanId,
    /// The step root's id (when the job has a key) — parent of every rank's process span.
    pub step_span_id: Option<SpanId>,
    /// The span id from an incoming TRACEPARENT: parent of the step root (or process span).
    pub outer_parent: Option<SpanId>,
    pub trace_state: String,
}

impl Identity {
    pub fn process_parent(&self) -> Option<SpanId> {
        self.step_span_id.or(self.outer_parent)
    }
}

pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: semconv::SCOPE_NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

pub struct ProcessInfo<'a> {
    pub argv: &'a [String],
    pub executable_path: Option<String>,
    pub child_pid: Option<u32>,
    pub start: u64,
    pub end: u64,
}

pub fn process_span(
    id: &Identity,
    info: &ProcessInfo,
    outcome: &Outcome,
    events: Vec<opentelemetry_proto::tonic::trace::v1::span::Event>,
) -> Span {
    let exe_name = info
        .argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    let mut attributes = vec![
        attr::string(semconv::SPAN_ROLE, semconv::ROLE_PROCESS),
        attr::string(semconv::PROCESS_EXECUTABLE_NAME, exe_name.clone()),
        attr::strings(semconv::PROCESS_COMMAND_ARGS, info.argv.iter().cloned()),
        attr::int(semconv::PROCESS_PARENT_PID, std::process::id() as i64),
    ];
    if let Some(path) = &info.executable_path {
        attributes.push(attr::string(semconv::PROCESS_EXECUTABLE_PATH, path.clone()));
    }
    if let Some(pid) = info.child_pid {
        attributes.push(attr::int(semconv::PROCESS_PID, pid as i64));
    }
    let status = match outcome {
        Outcome::Ended(termination, usage) => {
            attributes.push(attr::double(semconv::PROCESS_CPU_USER, usage.user_seconds));
            attributes.push(attr::double(
                semconv::PROCESS_CPU_SYSTEM,
                usage.system_seconds,
            ));
            attributes.push(attr::int(semconv::PROCESS_MAX_RSS, usage.max_rss_bytes));
            attributes.push(attr::int(
                semconv::PROCESS_EXIT_CODE,
                termination.exit_code() as i64,
            ));
            match *termination {
                Termination::Exited(0) => Status {
                    code: StatusCode::Unset as i32,
                    message: String::new(),
                },
                Termination::Exited(code) => {
                    attributes.push(attr::string(semconv::ERROR_TYPE, code.to_string()));
                    Status {
                        code: StatusCode::Error as i32,
                        message: format!("exited with code {code}"),
                    }
                }
                Termination::Signaled {
                    signal,
                    core_dumped,
                } => {
                    let name = signal_name(signal);
                    attributes.push(attr::int(semconv::PROCESS_EXIT_SIGNAL, signal as i64));
                    attributes.push(attr::string(
                        semconv::PROCESS_EXIT_SIGNAL_NAME,
                        name.clone(),
                    ));
                    attributes.push(attr::string(semconv::ERROR_TYPE, name.clone()));
                    let core = if core_dumped { " (core dumped)" } else { "" };
                    Status {
                        code: StatusCode::Error as i32,
                        message: format!("terminated by {name}{core}"),
                    }
                }
            }
        }
        Outcome::Terminating { signal } => {
            let name = signal_name(*signal);
            attributes.push(attr::string(semconv::ERROR_TYPE, name.clone()));
            Status {
                code: StatusCode::Error as i32,
                message: format!("terminated by {name}"),
            }
        }
        Outcome::NotStarted(failure) => {
            attributes.push(attr::int(
                semconv::PROCESS_EXIT_CODE,
                failure.exit_code as i64,
            ));
            attributes.push(attr::string(semconv::ERROR_TYPE, failure.error_type));
            Status {
                code: StatusCode::Error as i32,
                message: failure.message.clone(),
            }
        }
    };
    Span {
        trace_id: id.trace_id.to_vec(),
        span_id: id.process_span_id.to_vec(),
        parent_span_id: id.process_parent().map(|p| p.to_vec()).unwrap_or_default(),
        trace_state: id.trace_state.clone(),
        name: format!("process {exe_name}"),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: info.start,
        end_time_unix_nano: info.end,
        attributes,
        events,
        status: Some(status),
        ..Default::default()
    }
}

/// How the program really ended after a provisional process span was written: a short span under
/// the process span from the provisional end to the exit (span ids stay unique in the file).
pub fn exit_span(
    id: &Identity,
    exe_name: &str,
    termination: Termination,
    usage: Usage,
    killed_after_grace: bool,
    (start, end): (u64, u64),
) -> Span {
    let mut attributes = vec![
        attr::string(semconv::SPAN_ROLE, semconv::ROLE_EXIT),
        attr::int(semconv::PROCESS_EXIT_CODE, termination.exit_code() as i64),
        attr::double(semconv::PROCESS_CPU_USER, usage.user_seconds),
        attr::double(semconv::PROCESS_CPU_SYSTEM, usage.system_seconds),
        attr::int(semconv::PROCESS_MAX_RSS, usage.max_rss_bytes),
    ];
    let message = match termination {
        Termination::Exited(0) => String::new(),
        Termination::Exited(code) => format!("exited with code {code}"),
        Termination::Signaled { signal, .. } => {
            attributes.push(attr::int(semconv::PROCESS_EXIT_SIGNAL, signal as i64));
            attributes.push(attr::string(
                semconv::PROCESS_EXIT_SIGNAL_NAME,
                signal_name(signal),
            ));
            if killed_after_grace {
                "killed by otel-run after the grace period".to_string()
            } else {
                format!("terminated by {}", signal_name(signal))
            }
        }
    };
    if killed_after_grace {
        attributes.push(attr::boolean(semconv::KILLED_AFTER_GRACE, true));
    }
    Span {
        trace_id: id.trace_id.to_vec(),
        span_id: crate::ids::random_span_id().to_vec(),
        parent_span_id: id.process_span_id.to_vec(),
        trace_state: id.trace_state.clone(),
        name: format!("exit {exe_name}"),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        status: Some(Status {
            code: if message.is_empty() {
                0
            } else {
                StatusCode::Error as i32
            },
            message,
        }),
        ..Default::default()
    }
}

/// The step root, written by rank 0 only. It covers rank 0's lifetime; `merge --repair` stretches
/// it over all ranks.
pub fn step_span(
    id: &Identity,
    step_id: SpanId,
    job_key: &str,
    exe_name: &str,
    size: u32,
    (start, end): (u64, u64),
    status: Option<Status>,
) -> Span {
    Span {
        trace_id: id.trace_id.to_vec(),
        span_id: step_id.to_vec(),
        parent_span_id: id.outer_parent.map(|p| p.to_vec()).unwrap_or_default(),
        trace_state: id.trace_state.clone(),
        name: format!("step {exe_name}"),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: vec![
            attr::string(semconv::SPAN_ROLE, semconv::ROLE_STEP),
            attr::string(semconv::JOB_KEY, job_key),
            attr::int(semconv::MPI_SIZE, size as i64),
        ],
        status,
        ..Default::default()
    }
}

pub fn batch(resource: &Resource, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(resource.clone()),
        scope_spans: vec![ScopeSpans {
            scope: Some(scope()),
            spans,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}
