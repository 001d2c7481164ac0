//! The man page and shell completions are generated from src/cli.rs and committed; this test
//! regenerates them and fails when the committed copies are stale.
//! Refresh them with: OTEL_RUN_BLESS=1 cargo test --test generated_files

use clap_complete::Shell;
use std::path::Path;

fn check(path: &str, fresh: &[u8], stale: &mut Vec<String>) {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("OTEL_RUN_BLESS").is_some() {
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, fresh).unwrap();
        return;
    }
    if std::fs::read(&full).ok().as_deref() != Some(fresh) {
        stale.push(path.to_string());
    }
}

#[test]
fn man_page_and_completions_are_up_to_date() {
    let mut stale = Vec::new();
    let mut man = Vec::new();
    clap_mangen::Man::new(otel_run::cli::command())
        .render(&mut man)
        .unwrap();
    check("man/otel-run.1", &man, &mut stale);
    for (shell, file) in [
        (Shell::Bash, "completions/otel-run.bash"),
        (Shell::Zsh, "completions/_otel-run"),
        (Shell::Fish, "completions/otel-run.fish"),
        (Shell::Elvish, "completions/otel-run.elv"),
        (Shell::PowerShell, "completions/_otel-run.ps1"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut otel_run::cli::command(), "otel-run", &mut out);
        check(file, &out, &mut stale);
    }
    assert!(stale.is_empty(), "stale generated files {stale:?}: run OTEL_RUN_BLESS=1 cargo test --test generated_files and commit them");
}

#[test]
fn completions_subcommand_prints_the_committed_script() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_otel-run"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let committed =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("completions/otel-run.bash"))
            .unwrap();
    assert_eq!(out.stdout, committed);
}
