use otel_run::cli::{self, Command};

fn main() {
    // Before the command line is parsed: flags fall back to these variables.
    otel_run::contract::restore_outer_environment();
    let cli = cli::parse();
    otel_run::logging::init(cli.run.verbosity.verbose, cli.run.verbosity.quiet);
    let code = match cli.subcommand {
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                shell,
                &mut cli::command(),
                "otel-run",
                &mut std::io::stdout(),
            );
            0
        }
        Some(Command::Replay(args)) => otel_run::replay::main(args),
        Some(Command::Merge(args)) => otel_run::merge::main(args),
        Some(Command::Summary(args)) => otel_run::summary::main(args),
        Some(Command::Report(args)) => otel_run::report::main(args),
        None => otel_run::run::main(cli.run),
    };
    std::process::exit(code);
}
