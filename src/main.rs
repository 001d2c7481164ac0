use otel_run::cli::{self, Command};
use otel_run::error;

fn main() {
    // Before the command line is parsed: flags fall back to these variables.
    otel_run::contract::restore_outer_environment();
    let cli = cli::parse();
    otel_run::logging::init(cli.run.verbosity.verbose, cli.run.verbosity.quiet);
    let (name, result) = match cli.subcommand {
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                shell,
                &mut cli::command(),
                "otel-run",
                &mut std::io::stdout(),
            );
            ("completions", Ok(()))
        }
        Some(Command::Replay(args)) => ("replay", otel_run::replay::main(args)),
        Some(Command::Merge(args)) => ("merge", otel_run::merge::main(args)),
        Some(Command::Summary(args)) => ("summary", otel_run::summary::main(args)),
        Some(Command::Report(args)) => ("report", otel_run::report::main(args)),
        // The launcher's status is the program's (ARCHITECTURE.md §9); only its own failures
        // before the program starts come back as errors.
        None => match otel_run::run::main(cli.run) {
            Ok(status) => std::process::exit(status),
            Err(e) => {
                tracing::error!("{e:#}");
                std::process::exit(error::exit_code(&e));
            }
        },
    };
    let code = match result {
        Ok(()) => error::SUCCESS,
        Err(e) => {
            // Shown even with -q: an error is the one thing a quiet run still reports.
            eprintln!("otel-run {name}: error: {e:#}");
            error::exit_code(&e)
        }
    };
    std::process::exit(code);
}
