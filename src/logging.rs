//! otel-run's own diagnostics on stderr — never on stdout, which belongs to the child. Quiet by
//! default (warnings and errors only), `-v`/`-vv` for more, `OTEL_RUN_LOG` for an EnvFilter.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::{format::Writer, FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

static RANK: AtomicU32 = AtomicU32::new(u32::MAX);

/// Tags later messages with the rank, so 128 ranks' warnings in one srun output can be told apart.
pub fn set_rank(rank: u32, size: u32) {
    if size > 1 {
        RANK.store(rank, Ordering::Relaxed);
    }
}

pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = std::env::var("OTEL_RUN_LOG")
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("otel_run={default},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Plain)
        .try_init();
}

/// `otel-run[3]: warning: message` — the shape of a classic Unix tool's diagnostics.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        match RANK.load(Ordering::Relaxed) {
            u32::MAX => write!(w, "otel-run: {level}: ")?,
            rank => write!(w, "otel-run[{rank}]: {level}: ")?,
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}
