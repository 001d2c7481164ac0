//! The whole command line, in one place: it also generates the man page and shell completions.

use crate::format::LineFormat;
use crate::otlp::{OtlpSettings, Protocol};
use crate::run::signals::ForwardPolicy;
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;

const EXAMPLES: &str = "\
Examples:
  srun -n 4 otel-run -- ./sim                     one span file per rank (traces_*.jsonlines)
  otel-run --jsonlines-path 'run_{job}_{rank}.jsonl' -- ./sim --steps 10
  mpirun -n 8 otel-run --service-name cfd -- ./solver input.nml
  otel-run --traces-exporter jsonlines,otlp --exporter-otlp-endpoint http://collector:4318 -- ./sim
  otel-run -- replay                              run a program named `replay`

The exporter defaults to `otlp` when an OTLP endpoint is configured (--exporter-otlp-endpoint or
OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT), otherwise to `jsonlines`: compute nodes rarely reach a
collector, so spans go to a file first and `otel-run replay` sends them later.

Exit status (every subcommand; see src/error.rs):
  0      success; the launcher: the program exited 0
  1      replay/merge/summary/report ran and failed: a bad input line (file:line: reason), an
         I/O error, a collector that refused, could not be reached or rejected spans; the
         launcher: otel-run itself could not supervise the program (rare)
  2      usage: unknown flag, unusable flag or variable value, no program, an input that does not
         exist, is a directory or not a regular file, a glob matching nothing; nothing was done
  126    the program cannot be executed          127   the program was not found
  128+N  the program died of signal N (137 also: killed after --grace-period or a second Ctrl-C)
  other  the program's own exit code";

#[derive(Debug, Parser)]
#[command(
    name = "otel-run",
    version,
    about = "Run a program (an MPI rank, a Slurm task, anything) and record it as OpenTelemetry spans",
    long_about = "Run a program (an MPI rank, a Slurm task, anything) and record it as OpenTelemetry spans.\n\n\
        otel-run detects the rank and job from the launcher's environment (never by calling MPI), \
        gives the program TRACEPARENT and OTEL_* variables, and writes one span file per rank; the \
        files of one job form one trace.",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub subcommand: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send span files to an OTLP collector (Jaeger, Tempo, any OpenTelemetry Collector)
    #[command(after_help = REPLAY_EXAMPLES)]
    Replay(ReplayArgs),
    /// Merge rank span files into one file (python, otlp or Chrome/Perfetto trace-event JSON)
    #[command(after_help = MERGE_EXAMPLES, long_about = MERGE_ABOUT)]
    Merge(MergeArgs),
    /// Per span name and per rank timing table: which rank was slow, where, by how much
    #[command(after_help = SUMMARY_EXAMPLES)]
    Summary(SummaryArgs),
    /// Write one self-contained HTML page of the job: per-rank timeline, where the time went, job
    /// facts (opens offline, from file://)
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const REPLAY_EXAMPLES: &str = "\
Examples:
  otel-run replay 'traces_*.jsonlines'                         into http://localhost:4318
  otel-run replay --exporter-otlp-protocol grpc --exporter-otlp-endpoint http://jaeger:4317 run/*.jsonl.gz
  otel-run replay --keep-timestamps --dry-run job.jsonl        validate and count only";

const MERGE_ABOUT: &str = "\
Merge rank span files into one file (python, otlp or Chrome/Perfetto trace-event JSON).

Spans are deduplicated by (trace id, span id); copies with the same ids but other content are \
reported as conflicts. Exact counts go to stderr at the end (files, spans read and written, \
duplicates, conflicts, orphans, synthesized, torn and invalid lines).

Memory does not grow with the input: --sort start keeps at most three quarters of --buffer-size \
MiB of spans and spills sorted runs to --temp-dir (16 KiB to 1 MiB of read buffer per run while \
merging them); --sort end merges at most 256 files at once, 1,024 for --format otlp (more in groups through sorted \
temporary runs in --temp-dir), their read buffers and reorder windows sharing 8 MiB (a few KiB to \
256 KiB each); the parent check keeps a quarter of --buffer-size (at most 4 MiB with --sort \
end|none) and spills too. --sort none keeps 24 bytes per span id to drop duplicates, and \
--repair with --sort end|none reads the input twice.";

const MERGE_EXAMPLES: &str = "\
Examples:
  otel-run merge 'traces_*.jsonlines' -o job.jsonl
  otel-run merge 'traces_*.jsonlines' --format chrome -o job.json     open in ui.perfetto.dev
  otel-run merge --repair --sort end 'run/*.jsonlines' | gzip > job.jsonl.gz";

const SUMMARY_EXAMPLES: &str = "\
Examples:
  otel-run summary 'traces_*.jsonlines'
  otel-run summary --format csv 'traces_*.jsonlines' > times.csv";

const REPORT_EXAMPLES: &str = "\
Examples:
  otel-run report 'traces_*.jsonlines' -o report.html      open report.html in any browser
  otel-run report --title 'cfd run 12' job.jsonl.gz > report.html";

/// Span file inputs shared by replay, merge, summary and report.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Span files: paths, glob patterns (quoted: otel-run expands them), `-` for stdin; `.gz`
    /// is detected by content; python and otlp lines are both read
    #[arg(value_name = "FILE|GLOB|-", required = true)]
    pub inputs: Vec<String>,
    /// Skip and count lines that are not valid spans instead of stopping at the first one
    #[arg(long)]
    pub skip_invalid: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Keep the recorded timestamps (default: shift all so the latest end time is now)
    #[arg(long)]
    pub keep_timestamps: bool,
    /// Parse, validate and count without sending
    #[arg(long)]
    pub dry_run: bool,
    /// Override service.name of every replayed resource (e.g. to group replays in Jaeger)
    #[arg(long = "service-name", value_name = "NAME")]
    pub service_name: Option<String>,
    /// Spans per export request
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch_size: u32,
    /// Send spans of other traces unchanged instead of re-homing those that belong to a rank
    /// (its `mpi.rank`, or its file's process span) under that rank's process span in the job's
    /// trace
    #[arg(long)]
    pub no_adopt: bool,
    #[command(flatten, next_help_heading = "OTLP exporter")]
    pub otlp: OtlpSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MergeFormat {
    /// OpenTelemetry Python's to_json lines (bsb-otel compatible); python input lines are copied
    /// unchanged
    Python,
    /// OTLP/JSON TracesData lines
    Otlp,
    /// Chrome/Perfetto trace-event JSON (one process per host, one thread per rank); always in
    /// start order, times relative to the first span's second
    Chrome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortOrder {
    /// By start time (external sort: memory bounded by --buffer-size)
    Start,
    /// By end time (streaming k-way merge of the rank files, which otel-run writes in end
    /// order; a file out of order beyond the reorder window is reported)
    End,
    /// Input order (keeps 24 bytes per span id to drop duplicates)
    None,
}

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output file [default: stdout]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t = MergeFormat::Python)]
    pub format: MergeFormat,
    #[arg(long, value_enum, default_value_t = SortOrder::Start)]
    pub sort: SortOrder,
    /// Give spans whose parent is missing a synthesized placeholder parent, and stretch the step
    /// root over all ranks, so a killed job opens as one tree
    #[arg(long)]
    pub repair: bool,
    /// Keep only this trace (32 hex digits)
    #[arg(long, value_name = "ID")]
    pub trace: Option<String>,
    /// Keep only these ranks (mpi.rank), e.g. `0,3-5`
    #[arg(long, value_name = "LIST")]
    pub rank: Option<String>,
    /// Memory bound: spans held before sorted runs spill to temporary files (3/4), plus the
    /// parent-check facts (1/4)
    #[arg(long, value_name = "MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1048576))]
    pub buffer_size: u64,
    /// Directory for temporary sort runs [default: $TMPDIR or /tmp]
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<std::path::PathBuf>,
    /// Write spans of other traces unchanged instead of re-homing those that belong to a rank
    /// (its job id and `mpi.rank`, or its file's process span) under that rank's process span in
    /// the job's trace
    #[arg(long)]
    pub no_adopt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SummaryFormat {
    /// Aligned columns, durations in seconds
    Table,
    /// One table, `kind` column span|rank, durations in nanoseconds
    Csv,
    /// `spans`, `ranks`, `slowest_rank`, durations in nanoseconds
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output file [default: stdout]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Page title [default: from service.name and the Slurm job id]
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// Room for span and event attributes (shown on hover) in the page; beyond it, attributes of
    /// spans other than otel-run's own and errors are left out and counted
    #[arg(long, value_name = "MIB", default_value_t = 4, value_parser = clap::value_parser!(u64).range(0..=4096))]
    pub attribute_budget: u64,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Where otel-run's spans go: comma list of jsonlines, otlp, console, none
    /// [default: otlp if an OTLP endpoint is set, else jsonlines]
    #[arg(
        long = "traces-exporter",
        alias = "traces_exporter",
        env = "OTEL_TRACES_EXPORTER",
        value_name = "LIST"
    )]
    pub traces_exporter: Option<String>,

    /// service.name of the spans [default: service.name from the resource attributes, else the
    /// program's file name]
    #[arg(
        long = "service-name",
        alias = "service_name",
        env = "OTEL_SERVICE_NAME",
        value_name = "NAME"
    )]
    pub service_name: Option<String>,

    /// Extra resource attributes, `key=value,...` (percent-encoded values); merged with
    /// OTEL_RESOURCE_ATTRIBUTES, these win
    #[arg(
        long = "resource-attributes",
        alias = "resource_attributes",
        value_name = "LIST"
    )]
    pub resource_attributes: Option<String>,

    /// Span file path template: `*` = 8 random chars, {rank} {size} {job} {step} {host} {pid}
    /// [env: OTEL_EXPORTER_JSONLINES_PATH] [default: traces_*.jsonlines]
    #[arg(
        long = "jsonlines-path",
        alias = "jsonlines_path",
        value_name = "TEMPLATE"
    )]
    pub jsonlines_path: Option<String>,

    /// Where spans the collector did not acknowledge go (otlp exporter without jsonlines), same
    /// placeholders as --jsonlines-path; created only when needed
    /// [default: spill_ + the span file name template, e.g. spill_traces_*.jsonlines]
    #[arg(
        long = "spill-path",
        env = "OTEL_RUN_SPILL_PATH",
        value_name = "TEMPLATE"
    )]
    pub spill_path: Option<String>,

    /// Line format of the span file
    #[arg(long = "jsonlines-format", alias = "jsonlines_format", env = "OTEL_RUN_JSONLINES_FORMAT", value_enum, value_name = "FORMAT", default_value_t = LineFormat::Python)]
    pub jsonlines_format: LineFormat,

    #[command(flatten, next_help_heading = "OTLP exporter")]
    pub otlp: OtlpSettings,

    /// Loopback OTLP receiver for the program's own SDK: its spans go where otel-run's own go
    /// (the rank's file, the collector with spilling, the console)
    /// [default auto: on when the jsonlines, otlp or console exporter is]
    #[arg(long, env = "OTEL_RUN_SINK", value_enum, default_value_t = SinkMode::Auto, help_heading = "Program's spans")]
    pub sink: SinkMode,

    /// OTLP protocol the program is told to use (the sink serves both on one port)
    #[arg(long, env = "OTEL_RUN_SINK_PROTOCOL", value_enum, default_value_t = Protocol::HttpProtobuf, value_name = "PROTOCOL", help_heading = "Program's spans")]
    pub sink_protocol: Protocol,

    /// Write the program's spans unchanged instead of re-homing spans of other traces into the
    /// job's trace (for programs that join other distributed traces)
    #[arg(long, env = "OTEL_RUN_NO_ADOPT", help_heading = "Program's spans")]
    pub no_adopt: bool,

    /// Largest request the sink accepts, after decompression (1 to 16 MiB: a larger request could
    /// make a span-file line longer than the 128 MiB the readers accept)
    #[arg(
        long,
        env = "OTEL_RUN_SINK_BODY_LIMIT",
        value_name = "MIB",
        default_value_t = 16,
        value_parser = sink_body_limit,
        help_heading = "Program's spans"
    )]
    pub sink_body_limit: u32,

    /// Pass TERM/INT/HUP/QUIT/USR1/USR2 on to the program: `auto` forwards a signal unless it came
    /// from the terminal or from a launcher that signals every task itself (slurmstepd, mpirun,
    /// Hydra, timeout), so the program sees each signal exactly once
    #[arg(long, env = "OTEL_RUN_FORWARD_SIGNALS", value_enum, default_value_t = ForwardPolicy::Auto, value_name = "POLICY", help_heading = "Signals")]
    pub forward_signals: ForwardPolicy,

    /// After TERM/INT/HUP/QUIT, how long the program may take to exit before otel-run kills it
    /// (keep it under Slurm's KillWait; at most 7 days); a second INT ends it at once
    #[arg(
        long,
        env = "OTEL_RUN_GRACE_PERIOD",
        value_name = "SECONDS",
        default_value_t = 10.0,
        help_heading = "Signals"
    )]
    pub grace_period: f64,

    #[command(flatten, next_help_heading = None)]
    pub verbosity: Verbosity,

    /// The program to run and its arguments (everything from here on is the program's)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, Args)]
pub struct Verbosity {
    /// More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an
    /// EnvFilter expression instead
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors from otel-run
    #[arg(short = 'q', long = "quiet", global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// The clap command, for parsing, the man page and completions. Environment values are never
/// shown in --help: OTEL_EXPORTER_OTLP_HEADERS often holds a secret, and the generated files
/// must not depend on the environment they were generated in.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
        .mut_args(|a| a.hide_env_values(true))
        .mut_subcommands(|c| c.mut_args(|a| a.hide_env_values(true)))
}

/// Parses the process arguments; errors and --help/--version exit the process as clap does.
///
/// A variable that clap would read but that is not valid UTF-8 is ignored with a warning instead
/// of failing the whole launch (environment problems never stop the job); the program still
/// inherits it unchanged.
pub fn parse() -> Cli {
    let mut cmd = command();
    let unusable = non_utf8_env(&cmd);
    for name in &unusable {
        // Logging is not set up before the flags are parsed.
        eprintln!(
            "otel-run: warning: {} is not valid UTF-8; otel-run ignores it",
            name.to_string_lossy()
        );
    }
    if !unusable.is_empty() {
        let forget = |a: clap::Arg| {
            if a.get_env().is_some_and(|e| unusable.iter().any(|u| u == e)) {
                a.env(None)
            } else {
                a
            }
        };
        cmd = cmd.mut_args(forget);
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        for name in names {
            cmd = cmd.mut_subcommand(name, |c| c.mut_args(forget));
        }
    }
    let matches = cmd.get_matches();
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The variables `cmd` (and its subcommands) read whose value is set but not valid UTF-8.
fn non_utf8_env(cmd: &clap::Command) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    let all = cmd
        .get_arguments()
        .chain(cmd.get_subcommands().flat_map(|c| c.get_arguments()));
    for name in all.filter_map(|a| a.get_env()) {
        let bad = std::env::var_os(name).is_some_and(|v| v.to_str().is_none());
        if bad && !out.iter().any(|o| o == name) {
            out.push(name.to_os_string());
        }
    }
    out
}

/// For tests: parse from a list.
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkMode {
    /// On when the jsonlines, otlp or console exporter is on
    Auto,
    On,
    /// Pass-through: the program exports on its own (e.g. bsb-otel's native jsonlines exporter,
    /// which finds the rank's file in OTEL_EXPORTER_JSONLINES_PATH)
    Off,
}

/// The exporters named by --traces-exporter / OTEL_TRACES_EXPORTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Exporters {
    pub jsonlines: bool,
    pub otlp: bool,
    pub console: bool,
}

impl Exporters {
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut e = Exporters::default();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "jsonlines" => e.jsonlines = true,
                "otlp" => e.otlp = true,
                "console" => e.console = true,
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown exporter {other:?} (known: jsonlines, otlp, console, none)"
                    ))
                }
            }
        }
        Ok(e)
    }
}

/// `--sink-body-limit`: whole MiB, at most [`crate::sink::MAX_BODY_LIMIT_MIB`].
fn sink_body_limit(s: &str) -> Result<u32, String> {
    let max = crate::sink::MAX_BODY_LIMIT_MIB;
    let mib: u32 = s
        .trim()
        .parse()
        .map_err(|e| format!("{e} (whole MiB, 1 to {max})"))?;
    if mib == 0 {
        return Err(format!(
            "0 MiB would refuse every request (whole MiB, 1 to {max})"
        ));
    }
    if mib > max {
        return Err(format!(
            "{mib} MiB is not in 1..={max}: a larger request could make a span-file line longer \
             than the {} MiB every reader accepts",
            crate::format::MAX_LINE_BYTES >> 20
        ));
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_arguments_are_untouched() {
        let cli = try_parse_from([
            "otel-run",
            "--service-name",
            "x",
            "./sim",
            "-v",
            "--service-name",
            "y",
        ])
        .unwrap();
        assert_eq!(cli.run.command, ["./sim", "-v", "--service-name", "y"]);
        assert_eq!(cli.run.service_name.as_deref(), Some("x"));
        assert_eq!(cli.run.verbosity.verbose, 0);
    }

    #[test]
    fn double_dash_makes_subcommand_names_programs() {
        let cli = try_parse_from(["otel-run", "--", "completions", "bash"]).unwrap();
        assert!(cli.subcommand.is_none());
        assert_eq!(cli.run.command, ["completions", "bash"]);
        let cli = try_parse_from(["otel-run", "completions", "bash"]).unwrap();
        assert!(matches!(cli.subcommand, Some(Command::Completions { .. })));
    }

    #[test]
    fn underscore_aliases_work() {
        let cli = try_parse_from([
            "otel-run",
            "--traces_exporter",
            "console",
            "--service_name",
            "s",
            "--exporter_otlp_endpoint",
            "http://x:1",
            "true",
        ])
        .unwrap();
        assert_eq!(cli.run.traces_exporter.as_deref(), Some("console"));
        assert_eq!(cli.run.otlp.endpoint.as_deref(), Some("http://x:1"));
    }

    #[test]
    fn exporter_lists() {
        assert_eq!(
            Exporters::parse("jsonlines, otlp").unwrap(),
            Exporters {
                jsonlines: true,
                otlp: true,
                console: false
            }
        );
        assert_eq!(Exporters::parse("none").unwrap(), Exporters::default());
        assert!(Exporters::parse("jsonl")
            .unwrap_err()
            .contains("unknown exporter \"jsonl\""));
    }

    #[test]
    fn environment_values_are_hidden_in_every_help() {
        // OTEL_EXPORTER_OTLP_HEADERS often holds a secret: `replay --help` printed it.
        let cmd = command();
        let mut hidden = 0;
        for c in std::iter::once(&cmd).chain(cmd.get_subcommands()) {
            for a in c.get_arguments().filter(|a| a.get_env().is_some()) {
                assert!(
                    a.is_hide_env_values_set(),
                    "{} --{}",
                    c.get_name(),
                    a.get_id()
                );
                hidden += 1;
            }
        }
        assert!(hidden > 20, "only {hidden} arguments read the environment");
    }

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }
}
