//! Signal handling for the launcher (ARCHITECTURE.md §7), small and exact in the manner of tini.
//!
//! A `SA_SIGINFO` handler writes (signal, sender pid, si_code) into a non-blocking self-pipe that
//! the event loop reads; nothing else happens in signal context. Knowing the sender is what lets
//! `auto` deliver each signal to the program exactly once: launchers that signal every task
//! process (or its process group) have already reached the program, a targeted `kill` has not.

use nix::fcntl::OFlag;
use std::io;
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use tokio::io::AsyncReadExt;

/// Signals otel-run catches. SIGCONT is only recorded (it always continues the process anyway);
/// SIGTSTP/SIGTTIN/SIGTTOU keep their default so job control stops otel-run with its program.
pub const CAUGHT: [libc::c_int; 8] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCONT,
    libc::SIGCHLD,
];

/// Signals that ask the program to end: they start the unwinding (spans made durable, grace).
pub fn is_terminating(signal: i32) -> bool {
    matches!(
        signal,
        libc::SIGTERM | libc::SIGINT | libc::SIGHUP | libc::SIGQUIT
    )
}

/// Processes that deliver signals to every task process (or its whole process group) themselves:
/// Slurm's step daemon (scancel, time limits, srun's forwarding), OpenMPI's mpirun and daemons,
/// MPICH's Hydra proxy, GNU timeout. `/proc/PID/comm` is at most 15 characters.
const GROUP_SIGNALLERS: &[&str] = &[
    "slurmstepd",
    "mpirun",
    "mpirun.openmpi",
    "orterun",
    "orted",
    "prterun",
    "prted",
    "mpiexec",
    "mpiexec.hydra",
    "mpiexec.mpich",
    "hydra_pmi_proxy",
    "timeout",
];

/// `si_code` of signals the kernel sends itself, e.g. the terminal's Ctrl-C / Ctrl-\ / hangup,
/// which go to the whole foreground process group.
const SI_KERNEL: i32 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ForwardPolicy {
    /// Forward unless the sender already signalled the program (see --help)
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub signal: i32,
    pub sender_pid: i32,
    pub code: i32,
}

static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Only async-signal-safe work: read siginfo, one write(2) of 12 bytes (atomic below PIPE_BUF),
    // errno preserved for the interrupted code.
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers; errno is thread-local.
    unsafe {
        let saved = *libc::__errno_location();
        let (pid, code) = if info.is_null() {
            (0, 0)
        } else {
            ((*info).si_pid(), (*info).si_code)
        };
        let mut rec = [0u8; 12];
        rec[..4].copy_from_slice(&signal.to_ne_bytes());
        rec[4..8].copy_from_slice(&pid.to_ne_bytes());
        rec[8..].copy_from_slice(&code.to_ne_bytes());
        let fd = PIPE_WRITE.load(Ordering::Relaxed);
        if fd >= 0 {
            libc::write(fd, rec.as_ptr().cast(), rec.len());
        }
        *libc::__errno_location() = saved;
    }
}

pub struct Signals {
    pipe: tokio::net::unix::pipe::Receiver,
}

impl Signals {
    /// Installs the handlers. A signal that otel-run inherited as ignored (e.g. SIGINT for a
    /// background job of a non-interactive shell) stays ignored, so the program inherits that too.
    pub fn install() -> io::Result<Signals> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        // The write end lives for the whole process: the handler may run at any time.
        PIPE_WRITE.store(write.into_raw_fd(), Ordering::Relaxed);
        for &sig in &CAUGHT {
            // Raw sigaction, because nix's can only query the old disposition by replacing it,
            // and an inherited SIG_IGN must never be replaced, not even for an instant.
            // SAFETY: querying and setting dispositions with zero-initialised sigaction structs.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old);
                if old.sa_sigaction == libc::SIG_IGN && sig != libc::SIGCHLD {
                    continue;
                }
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = on_signal as *const () as usize;
                act.sa_flags = libc::SA_SIGINFO
                    | libc::SA_RESTART
                    | if sig == libc::SIGCHLD {
                        libc::SA_NOCLDSTOP
                    } else {
                        0
                    };
                libc::sigemptyset(&mut act.sa_mask);
                if libc::sigaction(sig, &act, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(read)?;
        Ok(Signals { pipe })
    }

    pub async fn next(&mut self) -> io::Result<Received> {
        let mut rec = [0u8; 12];
        self.pipe.read_exact(&mut rec).await?;
        let int = |r: &[u8]| i32::from_ne_bytes([r[0], r[1], r[2], r[3]]);
        Ok(Received {
            signal: int(&rec[..4]),
            sender_pid: int(&rec[4..8]),
            code: int(&rec[8..]),
        })
    }
}

/// The sender's command name, if it still exists.
pub fn sender_name(pid: i32) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Whether to pass `rec` on to the program, and why (for the span event and -v).
pub fn should_forward(
    policy: ForwardPolicy,
    rec: &Received,
    sender: Option<&str>,
    child_pid: u32,
) -> (bool, &'static str) {
    if rec.signal == libc::SIGCONT || rec.signal == libc::SIGCHLD {
        return (false, "not forwarded");
    }
    match policy {
        ForwardPolicy::Always => (true, "policy always"),
        ForwardPolicy::Never => (false, "policy never"),
        ForwardPolicy::Auto if rec.code == SI_KERNEL => {
            (false, "sent by the kernel to the process group")
        }
        ForwardPolicy::Auto if rec.sender_pid == child_pid as i32 => {
            (false, "sent by the program itself")
        }
        ForwardPolicy::Auto if sender.is_some_and(|s| GROUP_SIGNALLERS.contains(&s)) => {
            (false, "sender signals every task process itself")
        }
        ForwardPolicy::Auto => (true, "targeted at otel-run"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(signal: i32, pid: i32, code: i32) -> Received {
        Received {
            signal,
            sender_pid: pid,
            code,
        }
    }

    #[test]
    fn auto_forwards_only_what_the_program_did_not_get() {
        // (received, sender comm, forwarded?)
        let cases = [
            (rec(libc::SIGTERM, 100, 0), Some("slurmstepd"), false),
            (rec(libc::SIGTERM, 100, 0), Some("mpirun.openmpi"), false),
            (rec(libc::SIGTERM, 100, 0), Some("hydra_pmi_proxy"), false),
            (rec(libc::SIGINT, 0, SI_KERNEL), None, false),
            (rec(libc::SIGTERM, 100, 0), Some("bash"), true),
            (rec(libc::SIGTERM, 100, 0), None, true),
            (rec(libc::SIGUSR1, 100, 0), Some("kill"), true),
            (rec(libc::SIGTERM, 42, 0), Some("python3"), false),
            (rec(libc::SIGCONT, 100, 0), Some("bash"), false),
        ];
        for (r, sender, want) in cases {
            assert_eq!(
                should_forward(ForwardPolicy::Auto, &r, sender, 42).0,
                want,
                "{r:?} from {sender:?}"
            );
        }
        assert!(
            should_forward(
                ForwardPolicy::Always,
                &rec(libc::SIGTERM, 1, 0),
                Some("slurmstepd"),
                42
            )
            .0
        );
        assert!(
            !should_forward(
                ForwardPolicy::Never,
                &rec(libc::SIGTERM, 1, 0),
                Some("bash"),
                42
            )
            .0
        );
    }
}
