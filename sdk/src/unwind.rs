//! The in-process unwinder: on SIGTERM, SIGINT or SIGHUP every span still open ends with status
//! ERROR "terminated by SIG…" and an event naming the signal, everything is exported within a
//! bound, then the process dies of the same signal (exit status 128+N, as Slurm and the launcher
//! expect).
//!
//! The signal handler itself is signal-hook's self-pipe write (async-signal-safe); the work runs
//! on a watcher thread. Open spans are the pipeline's snapshots taken at span start (SDK spans,
//! and `tracing` spans, which tracing-opentelemetry starts as SDK spans when first entered), so
//! the copy written here has the span's start-time attributes, not ones added later. Spans that
//! the program ends while the unwinder runs are not exported twice.

use opentelemetry::trace::{Event, Status};
use opentelemetry::KeyValue;
use std::sync::atomic::Ordering;
use std::sync::Once;
use std::time::{Duration, SystemTime};

static ARMED: Once = Once::new();

/// Arms the unwinder for SIGTERM, SIGINT and SIGHUP with a 1 s flush bound. Call it right after
/// [`crate::init`] (spans started earlier are not tracked) and, with MPI, after `MPI_Init` if your
/// MPI installs handlers for these signals. Idempotent.
pub fn ensure_spans_on_exit() {
    ensure_spans_on_exit_within(crate::DEFAULT_EXIT_FLUSH);
}

/// [`ensure_spans_on_exit`] with another flush bound (keep it well inside Slurm's KillWait).
pub fn ensure_spans_on_exit_within(bound: Duration) {
    ARMED.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
            Ok(s) => s,
            Err(e) => {
                crate::warn(&format!(
                    "cannot install signal handlers ({e}); open spans are lost on SIGTERM"
                ));
                return;
            }
        };
        if let Some(shared) = crate::state().and_then(|s| s.shared.as_ref()) {
            shared.track.store(true, Ordering::SeqCst);
        }
        let spawned = std::thread::Builder::new()
            .name("otel-run-sdk-unwind".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    end_open_spans(sig, bound);
                    die_of(sig);
                }
            });
        if let Err(e) = spawned {
            crate::warn(&format!(
                "cannot start the unwinder thread ({e}); open spans are lost on SIGTERM"
            ));
        }
    });
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

fn end_open_spans(sig: i32, bound: Duration) {
    let Some(shared) = crate::state().and_then(|s| s.shared.as_ref()) else {
        return;
    };
    let name = signal_name(sig);
    shared.terminating.store(true, Ordering::SeqCst);
    let open: Vec<_> = {
        let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
        open.drain().map(|(_, span)| span).collect()
    };
    let now = SystemTime::now();
    for mut span in open {
        span.end_time = now;
        span.status = Status::error(format!("terminated by {name}"));
        span.events.events.push(Event::new(
            name.clone(),
            now,
            vec![
                KeyValue::new("signal.number", i64::from(sig)),
                KeyValue::new("signal.name", name.clone()),
            ],
            0,
        ));
        shared.send(span);
    }
    shared.flush(bound);
}

/// Restores the default disposition and re-raises, so the exit status says which signal it was.
fn die_of(sig: i32) -> ! {
    use nix::sys::signal::{raise, signal, SigHandler, Signal};
    if let Ok(s) = Signal::try_from(sig) {
        // SAFETY: installing SIG_DFL runs no Rust code in signal context.
        unsafe {
            let _ = signal(s, SigHandler::SigDfl);
        }
        let _ = nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
            Some(&nix::sys::signal::SigSet::from(s)),
            None,
        );
        let _ = raise(s);
    }
    // Only reached if the signal could not kill us (blocked in a way we cannot undo).
    std::process::exit(128 + sig);
}
