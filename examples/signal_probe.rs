//! Signal probe for the unwinder tests: a real Rust OpenTelemetry SDK child that counts the
//! signals it receives and exports spans to otel-run's sink (configured by environment only).
//!
//! Environment:
//!   PROBE_DIR      directory for its records (required):
//!                    signals.<pid>  one line per received signal (written in the handler)
//!                    ready.<pid>    after the first span was exported: `<pid> <SLURM_JOB_ID>`
//!                    acked.<pid>    span ids whose export returned (simple processor: on end())
//!   PROBE_IGNORE   `1`: ignore SIGTERM and SIGINT (record them, keep running) — the program
//!                  that Slurm must SIGKILL after KillWait
//! Behaviour: exports a `probe.tick` span every 100 ms; on SIGTERM/SIGINT/SIGHUP (unless
//! ignoring) ends a `probe.shutdown` span, flushes the SDK and exits 128+N.

use opentelemetry::trace::{Span, Tracer, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::Write;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

static LOG_FD: AtomicI32 = AtomicI32::new(-1);
static STOP: AtomicI32 = AtomicI32::new(0);
static IGNORE: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    let name: &[u8] = match sig {
        libc::SIGTERM => b"SIGTERM\n",
        libc::SIGINT => b"SIGINT\n",
        libc::SIGHUP => b"SIGHUP\n",
        libc::SIGUSR1 => b"SIGUSR1\n",
        libc::SIGCONT => b"SIGCONT\n",
        _ => b"OTHER\n",
    };
    // SAFETY: write(2) on an O_APPEND fd is async-signal-safe.
    unsafe {
        libc::write(
            LOG_FD.load(Ordering::Relaxed),
            name.as_ptr().cast(),
            name.len(),
        )
    };
    let ignoring =
        IGNORE.load(Ordering::Relaxed) == 1 && (sig == libc::SIGTERM || sig == libc::SIGINT);
    if !ignoring
        && sig != libc::SIGUSR1
        && sig != libc::SIGCONT
        && STOP.load(Ordering::Relaxed) == 0
    {
        STOP.store(sig, Ordering::Relaxed);
    }
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::var("PROBE_DIR").expect("PROBE_DIR"));
    let pid = std::process::id();
    IGNORE.store(
        (std::env::var("PROBE_IGNORE").as_deref() == Ok("1")) as i32,
        Ordering::Relaxed,
    );
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("signals.{pid}")))
        .unwrap();
    LOG_FD.store(std::os::fd::IntoRawFd::into_raw_fd(log), Ordering::Relaxed);
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGCONT,
    ] {
        // SAFETY: installing a handler that only does async-signal-safe work.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }

    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .expect("OTLP exporter from the environment");
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .build();
    let tracer = provider.tracer("signal-probe");
    let mut acked = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("acked.{pid}")))
        .unwrap();
    let mut tick = |name: &str| {
        let mut span = tracer.start(name.to_string());
        let id = span.span_context().span_id();
        span.end(); // the simple processor exports before end() returns
        writeln!(acked, "{id}").unwrap();
    };
    tick("probe.tick");
    let job = std::env::var("SLURM_JOB_ID").unwrap_or_default();
    std::fs::write(
        dir.join(format!("ready.{pid}.tmp")),
        format!("{pid} {job}\n"),
    )
    .unwrap();
    std::fs::rename(
        dir.join(format!("ready.{pid}.tmp")),
        dir.join(format!("ready.{pid}")),
    )
    .unwrap();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let sig = STOP.load(Ordering::Relaxed);
        if sig != 0 {
            tick("probe.shutdown");
            provider.shutdown().ok();
            std::process::exit(128 + sig);
        }
        tick("probe.tick");
    }
}
