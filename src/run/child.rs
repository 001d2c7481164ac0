//! Starting the program and collecting how it ended, with its resource usage from `wait4`.
//!
//! The child inherits otel-run's stdin/stdout/stderr, process group and every inherited file
//! descriptor (MPICH passes PMI_FD); otel-run's own files are close-on-exec.

use nix::sys::signal::Signal;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    Exited(i32),
    Signaled { signal: i32, core_dumped: bool },
}

impl Termination {
    /// The status a shell would report: the code, or 128+N for signal N.
    pub fn exit_code(self) -> i32 {
        match self {
            Termination::Exited(code) => code,
            Termination::Signaled { signal, .. } => 128 + signal,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub user_seconds: f64,
    pub system_seconds: f64,
    pub max_rss_bytes: i64,
}

/// The program could not be started: exit status and message follow the shell's conventions.
#[derive(Debug)]
pub struct SpawnFailure {
    /// 127 not found, 126 found but not executable.
    pub exit_code: i32,
    pub message: String,
    /// Short, low-cardinality reason for `error.type`.
    pub error_type: &'static str,
}

pub fn spawn(
    argv: &[OsString],
    set: &[(String, String)],
    remove: &[&str],
) -> Result<u32, SpawnFailure> {
    let program = &argv[0];
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..]);
    for key in remove {
        cmd.env_remove(key);
    }
    for (k, v) in set {
        cmd.env(k, v);
    }
    // argv[0] exactly as given, as a shell does.
    cmd.arg0(program);
    let parent = nix::unistd::Pid::this();
    let direct = resolve(program)
        .filter(|path| looks_binary(path))
        .and_then(|path| DirectExec::new(&path, argv, set, remove));
    // SAFETY: prctl, getppid and execve are async-signal-safe; nothing else runs between fork
    // and exec, and `direct` was fully built (no allocation here) before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Never an orphan: if otel-run is SIGKILLed (e.g. by Slurm after KillWait), the
            // program goes with it instead of running on unsupervised.
            if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err()
                || nix::unistd::getppid() != parent
            {
                return Err(io::Error::other(
                    "otel-run exited while starting the program",
                ));
            }
            if let Some(d) = &direct {
                libc::execve(d.path.as_ptr(), d.argv.as_ptr(), d.envp.as_ptr());
                // Only reached when execve failed: its errno goes back to the parent.
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match cmd.spawn() {
        // We reap the child ourselves with wait4 (for its rusage); std's handle is not needed.
        Ok(child) => Ok(child.id()),
        Err(e) => Err(spawn_failure(&program.to_string_lossy(), &e)),
    }
}

/// The file `execvp` would run for `program`: as given when it has a slash, else the first
/// executable regular file of that name along PATH (glibc's default PATH when unset).
fn resolve(program: &OsString) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let executable = |p: &std::path::Path| {
        p.is_file() && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
    };
    if program.as_bytes().contains(&b'/') {
        let p = std::path::PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&path)
        .map(|dir| {
            let dir = if dir.as_os_str().is_empty() {
                ".".into()
            } else {
                dir
            };
            dir.join(program)
        })
        .find(|p| executable(p))
}

/// bash's rule for "cannot execute binary file": ELF magic, or a NUL byte before the first
/// newline in the first 80 bytes. Such a file must be run by the kernel or not at all:
/// glibc's execvp would hand it to /bin/sh when the kernel refuses it (a truncated or foreign
/// binary), which prints nonsense and exits 127 instead of the shell's 126.
fn looks_binary(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 80];
    let n = match std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        Err(_) => return false,
    };
    head[..n].starts_with(b"\x7fELF")
        || head[..n]
            .iter()
            .take_while(|&&b| b != b'\n')
            .any(|&b| b == 0)
}

/// An `execve` of a binary program prepared before the fork (the child must not allocate):
/// the path, argv and the child's whole environment as C strings with their pointer arrays.
/// std sets the child's environment only after `pre_exec` closures run, so it is built here.
struct DirectExec {
    path: std::ffi::CString,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    _strings: Vec<std::ffi::CString>,
}

// SAFETY: the pointers point into `_strings` (heap data that never moves while it is owned here)
// and are only read, by execve in the child.
unsafe impl Send for DirectExec {}
unsafe impl Sync for DirectExec {}

impl DirectExec {
    fn new(
        path: &std::path::Path,
        argv: &[OsString],
        set: &[(String, String)],
        remove: &[&str],
    ) -> Option<DirectExec> {
        use std::ffi::CString;
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let overridden = |k: &std::ffi::OsStr| {
            remove.iter().any(|r| k == std::ffi::OsStr::new(r))
                || set.iter().any(|(s, _)| k == std::ffi::OsStr::new(s))
        };
        let mut env: Vec<CString> = Vec::new();
        for (k, v) in std::env::vars_os().filter(|(k, _)| !overridden(k)) {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            env.push(CString::new(kv).ok()?);
        }
        for (k, v) in set {
            env.push(CString::new(format!("{k}={v}")).ok()?);
        }
        let args: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()).ok())
            .collect::<Option<_>>()?;
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        let mut strings = args;
        strings.extend(env);
        Some(DirectExec {
            path: CString::new(path.as_os_str().as_bytes()).ok()?,
            argv,
            envp,
            _strings: strings,
        })
    }
}

fn spawn_failure(program: &str, e: &io::Error) -> SpawnFailure {
    let has_slash = program.contains('/');
    match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::NotFound, _) if !has_slash => SpawnFailure {
            exit_code: 127,
            message: format!("{program}: command not found"),
            error_type: "command_not_found",
        },
        (io::ErrorKind::NotFound, _) => SpawnFailure {
            exit_code: 127,
            message: format!("{program}: No such file or directory"),
            error_type: "command_not_found",
        },
        (_, Some(libc::EACCES)) | (_, Some(libc::EISDIR)) => SpawnFailure {
            exit_code: 126,
            message: format!("{program}: Permission denied"),
            error_type: "command_not_executable",
        },
        (_, Some(libc::ENOEXEC)) => SpawnFailure {
            exit_code: 126,
            message: format!("{program}: cannot execute binary file: Exec format error"),
            error_type: "command_not_executable",
        },
        _ => SpawnFailure {
            exit_code: 126,
            message: format!("{program}: {e}"),
            error_type: "spawn_failed",
        },
    }
}

/// Reaps `pid` without blocking; `None` while it still runs.
pub fn try_reap(pid: u32) -> io::Result<Option<(Termination, Usage)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; wait4 fills it for the reaped child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; WNOHANG never blocks.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, libc::WNOHANG, &mut ru) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        let termination = if libc::WIFSIGNALED(status) {
            Termination::Signaled {
                signal: libc::WTERMSIG(status),
                core_dumped: libc::WCOREDUMP(status),
            }
        } else {
            Termination::Exited(libc::WEXITSTATUS(status))
        };
        let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        let usage = Usage {
            user_seconds: secs(ru.ru_utime),
            system_seconds: secs(ru.ru_stime),
            // Linux reports ru_maxrss in KiB.
            max_rss_bytes: ru.ru_maxrss * 1024,
        };
        return Ok(Some((termination, usage)));
    }
}

/// `SIGTERM`, `SIGSEGV`, … for a signal number.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("SIG{signal}"))
}

/// Sends signal number `signal` to the (not yet reaped) child. A number that is no signal, or a
/// child that is already gone, is not worth more than a debug line: the event loop reaps it next.
pub fn signal(pid: u32, signal: i32) {
    let result = Signal::try_from(signal)
        .and_then(|sig| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig));
    if let Err(e) = result {
        tracing::debug!("kill({pid}, {signal}): {e}");
    }
}
