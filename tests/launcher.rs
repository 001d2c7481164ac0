//! The launcher outside any batch system: exit statuses, stdio, the environment contract, the
//! process span, and bad input.

mod common;
use common::*;
use std::io::Write;
use std::process::Stdio;

#[test]
fn exit_status_is_the_programs() {
    // (command, expected exit status, error.type on the process span)
    let cases: &[(&[&str], i32, Option<&str>)] = &[
        (&["true"], 0, None),
        (&["sh", "-c", "exit 3"], 3, Some("3")),
        (
            &["definitely-not-a-program-xyz"],
            127,
            Some("command_not_found"),
        ),
        (&["./no-such-file"], 127, Some("command_not_found")),
        (&["./not-executable"], 126, Some("command_not_executable")),
        // A broken binary is refused like a shell does, not handed to /bin/sh (glibc's execvp).
        (&["./junk-elf"], 126, Some("command_not_executable")),
        // An executable text file without #! runs under /bin/sh, as in a shell.
        (&["./no-shebang"], 7, Some("7")),
        (&["sh", "-c", "kill -TERM $$"], 143, Some("SIGTERM")),
        (&["sh", "-c", "kill -KILL $$"], 137, Some("SIGKILL")),
    ];
    for (argv, code, error_type) in cases {
        let dir = tempdir();
        std::fs::write(dir.path().join("not-executable"), "echo hi\n").unwrap();
        for (name, content) in [
            ("junk-elf", &b"\x7fELF\x02\x01\x01garbage\n"[..]),
            ("no-shebang", &b"exit 7\n"[..]),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let out = run(otel_run(dir.path()).arg("--").args(*argv));
        assert_eq!(
            out.status.code(),
            Some(*code),
            "{argv:?}: {}",
            text(&out.stderr)
        );
        let spans = read_dir_spans(dir.path());
        assert_eq!(spans.len(), 1, "{argv:?}");
        let s = &spans[0].span;
        assert_eq!(
            attr_int(&s.attributes, "process.exit.code"),
            Some(*code as i64),
            "{argv:?}"
        );
        assert_eq!(
            attr_str(&s.attributes, "error.type"),
            *error_type,
            "{argv:?}"
        );
        let status = s.status.as_ref().unwrap();
        assert_eq!(
            status.code,
            if *code == 0 { 0 } else { 2 },
            "{argv:?} status"
        );
        if *code == 127 {
            assert!(
                text(&out.stderr).contains("otel-run: ") && text(&out.stderr).contains(argv[0]),
                "{}",
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn signal_death_is_recorded() {
    let dir = tempdir();
    let out = run(otel_run(dir.path()).args(["--", "sh", "-c", "kill -SEGV $$"]));
    assert_eq!(out.status.code(), Some(139));
    let s = &read_dir_spans(dir.path())[0].span;
    assert_eq!(attr_int(&s.attributes, "process.exit.signal"), Some(11));
    assert!(s
        .status
        .as_ref()
        .unwrap()
        .message
        .starts_with("terminated by SIGSEGV"));
}

#[test]
fn stdio_belongs_to_the_program() {
    let dir = tempdir();
    let mut child = otel_run(dir.path())
        .args(["--", "sh", "-c", "cat; echo to-stderr >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hi\nthere\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "hi\nthere\n");
    assert_eq!(
        text(&out.stderr),
        "to-stderr\n",
        "otel-run adds nothing to stderr by default"
    );
}

#[test]
fn program_arguments_are_passed_untouched() {
    let dir = tempdir();
    let out =
        run(otel_run(dir.path()).args(["printf", "%s|", "--service-name", "-v", "--", "replay"]));
    assert_eq!(text(&out.stdout), "--service-name|-v|--|replay|");
    // With `--`, a reserved subcommand name is a program.
    let out = run(otel_run(dir.path()).args(["--", "completions", "bash"]));
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
}

#[test]
fn child_sees_traceparent_of_its_process_span() {
    let print_env = "printf '%s\\n' \"$TRACEPARENT\" \"$OTEL_SERVICE_NAME\" \"$OTEL_RESOURCE_ATTRIBUTES\" \"$OTEL_EXPORTER_JSONLINES_PATH\" \"$OTEL_TRACES_EXPORTER\" \"$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT\"";
    // (sink mode, expect OTEL_EXPORTER_JSONLINES_PATH, expect the sink's OTLP settings)
    for (sink, jsonlines_path, otlp) in [("on", false, true), ("off", true, false)] {
        let dir = tempdir();
        let out = run(otel_run(dir.path())
            .args(["--sink", sink, "--service-name", "svc"])
            .args([
                "--resource-attributes",
                "team=a b,deployment.environment=ci",
                "--",
                "sh",
                "-c",
                print_env,
            ]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        let spans = read_dir_spans(dir.path());
        let p = &spans[0];
        assert_eq!(
            lines[0],
            format!("00-{}-{}-01", hex(&p.span.trace_id), hex(&p.span.span_id))
        );
        assert_eq!(lines[1], "svc");
        assert!(
            lines[2].contains("team=a%20b")
                && lines[2].contains("deployment.environment=ci")
                && lines[2].contains("mpi.rank=0"),
            "{}",
            lines[2]
        );
        let path = std::path::Path::new(lines[3]);
        assert!(path.is_absolute(), "{sink}: {path:?}");
        let rank_file = p.file.canonicalize().unwrap();
        if jsonlines_path {
            assert_eq!(
                path.canonicalize().unwrap(),
                rank_file,
                "the rank file, for a native jsonlines exporter"
            );
        } else {
            // The sink writes the rank file: a program's own jsonlines exporter gets a file of
            // its own beside it (one writer per file), which the rank files' glob also finds.
            let name = rank_file.file_name().unwrap().to_str().unwrap();
            let program = name.replace(".jsonlines", ".program.jsonlines");
            assert_eq!(path, rank_file.with_file_name(program), "{sink}");
            assert!(!path.exists(), "created only by a program that writes it");
        }
        assert_eq!(lines[4] == "otlp", otlp, "{sink}: {}", lines[4]);
        assert_eq!(
            lines[5].starts_with("http://127.0.0.1:"),
            otlp,
            "{sink}: {}",
            lines[5]
        );
        assert_eq!(attr_str(&p.resource, "service.name"), Some("svc"));
        assert_eq!(attr_str(&p.resource, "team"), Some("a b"));
        assert_eq!(attr_int(&p.resource, "mpi.rank"), Some(0));
        assert!(
            p.span.parent_span_id.is_empty(),
            "no job key, no TRACEPARENT: the process span is a root"
        );
    }
}

#[test]
fn nested_runs_get_the_users_environment_back() {
    // The inner otel-run must not take the outer sink for the user's collector.
    let dir = tempdir();
    let inner = format!("{} -- sh -c 'echo \"$OTEL_TRACES_EXPORTER|$OTEL_EXPORTER_OTLP_TRACES_HEADERS\"' > inner.txt", bin());
    let out = run(otel_run(dir.path())
        .env("OTEL_TRACES_EXPORTER", "jsonlines")
        .env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "user=1")
        .args(["--", "sh", "-c", &inner]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let seen = std::fs::read_to_string(dir.path().join("inner.txt")).unwrap();
    let (exporter, headers) = seen.trim().split_once('|').unwrap();
    assert_eq!(
        exporter, "otlp",
        "the inner program talks to the inner sink"
    );
    assert!(headers.starts_with("x-otel-run-token="), "{headers}");
    // The inner otel-run saw the user's OTEL_TRACES_EXPORTER=jsonlines again, not the outer
    // sink's `otlp`, so it wrote its own file.
    assert_eq!(
        span_files(dir.path()).len(),
        2,
        "inner and outer each wrote their own file"
    );
}

#[test]
fn incoming_traceparent_becomes_the_parent() {
    let dir = tempdir();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let out = run(otel_run(dir.path())
        .env("TRACEPARENT", tp)
        .env("TRACESTATE", "v=1")
        .args(["--", "sh", "-c", "echo $TRACESTATE"]));
    assert_eq!(text(&out.stdout), "v=1\n");
    let s = &read_dir_spans(dir.path())[0].span;
    assert_eq!(hex(&s.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&s.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(s.trace_state, "v=1");
}

#[test]
fn nested_runs_form_one_trace() {
    // otel-run -- sh -c 'otel-run -- true': inner process span under the outer one.
    let dir = tempdir();
    let inner = format!("{} -- true", bin());
    let out = run(otel_run(dir.path()).args([
        "--jsonlines-path",
        "n_{pid}_*.jsonl",
        "--",
        "sh",
        "-c",
        &inner,
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let spans = read_dir_spans(dir.path());
    assert_eq!(
        span_files(dir.path()).len(),
        2,
        "the template, not the outer file, reaches the inner run"
    );
    let outer = spans
        .iter()
        .find(|f| attr_str(&f.span.attributes, "process.executable.name") == Some("sh"))
        .unwrap();
    let inner = spans
        .iter()
        .find(|f| attr_str(&f.span.attributes, "process.executable.name") == Some("true"))
        .unwrap();
    assert_eq!(inner.span.trace_id, outer.span.trace_id);
    assert_eq!(inner.span.parent_span_id, outer.span.span_id);
}

#[test]
fn path_template_and_formats() {
    let dir = tempdir();
    let out = run(otel_run(dir.path()).args([
        "--jsonlines-path",
        "x_{rank}of{size}_{job}.jsonl",
        "--jsonlines-format",
        "otlp",
        "--",
        "true",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let path = dir.path().join("x_0of1_local.jsonl");
    let content = std::fs::read_to_string(&path).unwrap();
    assert!(content.starts_with("{\"resourceSpans\""), "{content}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(read_spans(&path).len(), 1);
}

#[test]
fn bad_input_is_reported_clearly() {
    // (args, env, exit status, stderr must contain, program must have run)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a str, bool);
    let cases: &[Case] = &[
        (
            &["--traces-exporter", "jsonl", "--", "true"],
            &[],
            2,
            "unknown exporter \"jsonl\"",
            false,
        ),
        (
            &["--", "true"],
            &[("OTEL_TRACES_EXPORTER", "zipkin")],
            2,
            "unknown exporter \"zipkin\"",
            false,
        ),
        (
            &["--resource-attributes", "novalue", "--", "true"],
            &[],
            2,
            "--resource-attributes: \"novalue\" is not key=value",
            false,
        ),
        (
            &["--jsonlines-path", "{nope}.jsonl", "--", "true"],
            &[],
            2,
            "unknown placeholder {nope}",
            false,
        ),
        (
            &[
                "--exporter-otlp-compression",
                "zstd",
                "--traces-exporter",
                "otlp",
                "--",
                "true",
            ],
            &[],
            2,
            "not gzip or none",
            false,
        ),
        (&[], &[], 2, "no program to run", false),
        (
            &["--grace-period", "1e20", "--", "true"],
            &[],
            2,
            "over the maximum of 604800 s",
            false,
        ),
        (
            &["--", "true"],
            &[("OTEL_RUN_GRACE_PERIOD", "1e19")],
            2,
            "over the maximum of 604800 s",
            false,
        ),
        (
            &["--grace-period", "-1", "--", "true"],
            &[],
            2,
            "is not a number of seconds",
            false,
        ),
        // The job must still run: warnings only.
        (
            &["--", "touch", "ran"],
            &[("TRACEPARENT", "00-xyz-00f067aa0ba902b7-01")],
            0,
            "ignoring malformed TRACEPARENT",
            true,
        ),
        (
            &["--", "touch", "ran"],
            &[("OTEL_RESOURCE_ATTRIBUTES", "oops")],
            0,
            "ignoring OTEL_RESOURCE_ATTRIBUTES",
            true,
        ),
        (
            &[
                "--jsonlines-path",
                "/nonexistent-dir/x.jsonl",
                "--",
                "touch",
                "ran",
            ],
            &[],
            0,
            "cannot open span file /nonexistent-dir/x.jsonl",
            true,
        ),
    ];
    for (args, env, code, msg, ran) in cases {
        let dir = tempdir();
        let mut cmd = otel_run(dir.path());
        cmd.args(*args);
        for (k, v) in *env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(msg), "{args:?}: want {msg:?} in {stderr:?}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
        assert_eq!(dir.path().join("ran").exists(), *ran, "{args:?}");
    }
}

#[test]
fn environment_that_is_not_utf8_is_a_warning_not_a_refusal() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    // Variables clap reads (flags' fallbacks) and variables otel-run reads itself.
    for var in [
        "OTEL_SERVICE_NAME",
        "OTEL_RUN_GRACE_PERIOD",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "TRACEPARENT",
        "SLURM_JOB_ID",
    ] {
        let dir = tempdir();
        let out =
            run(otel_run(dir.path())
                .env(var, bad)
                .args(["--", "sh", "-c", "touch ran; exit 5"]));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{var}: {stderr}");
        assert!(dir.path().join("ran").exists(), "{var}: the program ran");
        assert_eq!(
            stderr.trim(),
            format!("otel-run: warning: {var} is not valid UTF-8; otel-run ignores it"),
            "{var}"
        );
    }
}

#[test]
fn unwritable_directory_warns_and_runs() {
    // Root ignores permission bits, so use a path under a regular file.
    let dir = tempdir();
    std::fs::write(dir.path().join("file"), "").unwrap();
    let out = run(otel_run(dir.path()).args([
        "--jsonlines-path",
        "file/x.jsonl",
        "--",
        "sh",
        "-c",
        "exit 5",
    ]));
    assert_eq!(out.status.code(), Some(5));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot open span file") && stderr.contains("/file/x.jsonl"),
        "{stderr}"
    );
}

#[test]
fn none_and_console_exporters() {
    let dir = tempdir();
    let out = run(otel_run(dir.path()).args(["--traces-exporter", "none", "--", "true"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(span_files(dir.path()).is_empty());
    let out = run(otel_run(dir.path()).args(["--traces_exporter", "console", "--", "true"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(span_files(dir.path()).is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("span \"process true\"") && stderr.contains("process.exit.code=0"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn help_and_version() {
    let out = run(std::process::Command::new(bin()).arg("--help"));
    let help = text(&out.stdout);
    for needle in [
        "--traces-exporter",
        "OTEL_TRACES_EXPORTER",
        "--jsonlines-path",
        "Examples:",
        "srun -n 4 otel-run",
    ] {
        assert!(help.contains(needle), "{needle} missing from --help");
    }
    let out = run(std::process::Command::new(bin()).arg("--version"));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("otel-run {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn process_span_names_the_resolved_executable() {
    let dir = tempdir();
    let out = run(otel_run(dir.path()).args(["--", "sleep", "0.2"]));
    assert_eq!(out.status.code(), Some(0));
    let s = &read_dir_spans(dir.path())[0].span;
    let path = attr_str(&s.attributes, "process.executable.path").expect("resolved path");
    assert!(path.starts_with('/') && path.ends_with("/sleep"), "{path}");
    assert_eq!(
        attr_str(&s.attributes, "process.executable.name"),
        Some("sleep")
    );
}
