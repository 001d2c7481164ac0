//! The exit-code table (README "Exit status", ARCHITECTURE.md §9), row by row, for every
//! subcommand: the same mistake gets the same status everywhere.

mod common;
use common::*;

/// A span file made by otel-run itself and, if asked, a broken line after its lines.
fn span_file(dir: &std::path::Path, broken: bool) -> String {
    let out = run(otel_run(dir).args(["--jsonlines-path", "good.jsonl", "--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    if broken {
        let mut content = std::fs::read(dir.join("good.jsonl")).unwrap();
        content.extend_from_slice(b"{\"name\": 1}\n");
        std::fs::write(dir.join("bad.jsonl"), content).unwrap();
        "bad.jsonl".into()
    } else {
        "good.jsonl".into()
    }
}

#[test]
fn every_row_of_the_table() {
    let dir = tempdir();
    let d = dir.path();
    let good = span_file(d, false);
    let bad = span_file(d, true);
    let good_lines = std::fs::read_to_string(d.join(&good))
        .unwrap()
        .lines()
        .count();
    let bad_at = format!("bad.jsonl:{}:", good_lines + 1);
    std::fs::create_dir(d.join("adir")).unwrap();
    let fifo = d.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::write(d.join("not-executable"), "echo hi\n").unwrap();
    // A port that refuses: bound (so nobody else takes it) but never listening.
    let refused = refused_port();
    let dead = format!("http://127.0.0.1:{}", refused.port);

    // (arguments, exit status, stderr must contain)
    let offline: &[(&[&str], i32, &str)] = &[
        // 0: success
        (&["summary", &good], 0, ""),
        (&["merge", &good, "-o", "out.jsonl"], 0, ""),
        (&["replay", "--dry-run", &good], 0, ""),
        (&["report", &good, "-o", "out.html"], 0, ""),
        // 1: ran and failed on the content
        (&["summary", &bad], 1, &bad_at),
        (&["merge", &bad, "-o", "out2.jsonl"], 1, &bad_at),
        (&["replay", "--dry-run", &bad], 1, &bad_at),
        (&["report", &bad, "-o", "out2.html"], 1, &bad_at),
        (&["report", &good, "-o", "adir"], 1, "cannot write adir"),
        // 1: the collector cannot be reached
        (
            &[
                "replay",
                "--exporter-otlp-endpoint",
                &dead,
                "--exporter-otlp-timeout",
                "500",
                &good,
            ],
            1,
            "export to",
        ),
        // 2: inputs that do not exist or cannot be read as files
        (
            &["summary", "missing.jsonl"],
            2,
            "missing.jsonl: no such file",
        ),
        (
            &["merge", "missing.jsonl"],
            2,
            "missing.jsonl: no such file",
        ),
        (
            &["replay", "missing.jsonl"],
            2,
            "missing.jsonl: no such file",
        ),
        (
            &["summary", "nomatch_*.jsonl"],
            2,
            "pattern matches no file",
        ),
        (&["merge", "nomatch_*.jsonl"], 2, "pattern matches no file"),
        (&["replay", "nomatch_*.jsonl"], 2, "pattern matches no file"),
        (
            &["report", "missing.jsonl"],
            2,
            "missing.jsonl: no such file",
        ),
        (&["report", "nomatch_*.jsonl"], 2, "pattern matches no file"),
        (&["report", "adir"], 2, "adir: is a directory"),
        (&["summary", "adir"], 2, "adir: is a directory"),
        (
            &["replay", "--dry-run", "fifo"],
            2,
            "fifo: not a regular file",
        ),
        // 2: flag values otel-run cannot use
        (
            &["replay", "--exporter-otlp-compression", "zstd", &good],
            2,
            "zstd",
        ),
        (&["merge", "--trace", "zz", &good], 2, "--trace"),
        (&["summary", "--no-such-flag", &good], 2, "--no-such-flag"),
        (
            &["report", "--attribute-budget", "lots", &good],
            2,
            "--attribute-budget",
        ),
        (&["replay", "-", "-"], 2, "more than once"),
    ];
    for (args, code, msg) in offline {
        let out = run(otel_run(d).args(*args).stdin(std::process::Stdio::null()));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {stderr}");
        assert!(stderr.contains(msg), "{args:?}: want {msg:?} in {stderr:?}");
    }

    // The launcher: the program's status, else otel-run's own.
    let launcher: &[(&[&str], i32)] = &[
        (&["--", "true"], 0),
        (&["--", "sh", "-c", "exit 3"], 3),
        (&["--", "sh", "-c", "kill -TERM $$"], 143),
        (&["--", "./not-executable"], 126),
        (&["--", "definitely-not-a-program-xyz"], 127),
        (&[], 2),
        (&["--traces-exporter", "nope", "--", "true"], 2),
    ];
    for (args, code) in launcher {
        let out = run(otel_run(d).args(*args));
        assert_eq!(
            out.status.code(),
            Some(*code),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}
