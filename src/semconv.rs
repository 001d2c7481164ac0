//! Every attribute name otel-run writes, in one place, so they can follow the OpenTelemetry
//! semantic conventions when conventions for batch jobs land (ARCHITECTURE.md §3).

// Resource
pub const SERVICE_NAME: &str = "service.name";
pub const HOST_NAME: &str = "host.name";
/// bsb-otel's names, kept so its tools read our files.
pub const MPI_RANK: &str = "mpi.rank";
pub const MPI_SIZE: &str = "mpi.size";
pub const MPI_LOCAL_RANK: &str = "mpi.local_rank";
pub const SLURM_JOB_ID: &str = "slurm.job.id";
pub const SLURM_STEP_ID: &str = "slurm.step.id";
pub const SLURM_CLUSTER_NAME: &str = "slurm.cluster.name";
/// Which launcher job detection recognised (`slurm`, `openmpi`, `pmix`, `mpich-hydra`, …).
pub const LAUNCHER: &str = "otel_run.launcher";

// Process span (semantic conventions for processes where they exist)
pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
pub const PROCESS_EXECUTABLE_PATH: &str = "process.executable.path";
pub const PROCESS_COMMAND_ARGS: &str = "process.command_args";
pub const PROCESS_PID: &str = "process.pid";
pub const PROCESS_PARENT_PID: &str = "process.parent_pid";
pub const PROCESS_EXIT_CODE: &str = "process.exit.code";
/// Signal number that terminated the child (no convention exists yet).
pub const PROCESS_EXIT_SIGNAL: &str = "process.exit.signal";
pub const PROCESS_EXIT_SIGNAL_NAME: &str = "process.exit.signal_name";
pub const PROCESS_CPU_USER: &str = "process.cpu.time.user";
pub const PROCESS_CPU_SYSTEM: &str = "process.cpu.time.system";
/// Peak resident set size of the child in bytes (wait4's ru_maxrss, converted from KiB).
pub const PROCESS_MAX_RSS: &str = "process.memory.max_rss";
pub const ERROR_TYPE: &str = "error.type";

// otel-run's own bookkeeping
/// `process` or `step`: lets merge/summary find otel-run's spans among the child's.
pub const SPAN_ROLE: &str = "otel_run.span";
pub const ROLE_PROCESS: &str = "process";
pub const ROLE_STEP: &str = "step";
/// The program's real exit, recorded after a provisional process span (see run/spans.rs).
pub const ROLE_EXIT: &str = "exit";
/// True when otel-run SIGKILLed the program at the end of the grace period.
pub const KILLED_AFTER_GRACE: &str = "otel_run.killed_after_grace";
/// Signal events on the process span.
pub const SIGNAL_NUMBER: &str = "signal.number";
pub const SIGNAL_NAME: &str = "signal.name";
pub const SIGNAL_SENDER_PID: &str = "signal.sender.pid";
pub const SIGNAL_SENDER: &str = "signal.sender";
pub const SIGNAL_FORWARDED: &str = "otel_run.signal.forwarded";
/// Signals received beyond the events kept on the process span.
pub const SIGNAL_EVENTS_DROPPED: &str = "otel_run.signal.events_dropped";
pub const JOB_KEY: &str = "otel_run.job.key";
/// Set on child spans the sink re-homed into the job's trace: the trace id they arrived with.
pub const ORIGINAL_TRACE_ID: &str = "otel_run.original_trace_id";

/// Instrumentation scope of otel-run's own spans.
pub const SCOPE_NAME: &str = "otel-run";
/// Store and forward, on the process span: the program's spans received by the sink, and of
/// them acknowledged by the collector, spilled to the spill file, and lost (the disk failed).
pub const SPANS_RECEIVED: &str = "otel_run.spans.received";
pub const SPANS_FORWARDED: &str = "otel_run.spans.forwarded";
pub const SPANS_SPILLED: &str = "otel_run.spans.spilled";
pub const SPANS_DROPPED: &str = "otel_run.spans.dropped";
