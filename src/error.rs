//! The one classification of otel-run's own failures and the exit-code table
//! (ARCHITECTURE.md §9). Subcommands return `anyhow::Result`; `main.rs` alone turns an error into
//! a message and an exit status, so every subcommand answers the same mistake the same way.

/// Everything asked was done (the launcher: the program exited 0).
pub const SUCCESS: i32 = 0;
/// A subcommand ran and failed: invalid input content (`file:line: reason`), an I/O error, a
/// collector that refused, could not be reached, or rejected spans.
pub const FAILURE: i32 = 1;
/// The command line cannot be carried out as written: a flag or variable value otel-run cannot
/// use, conflicting flags, no program, an input that does not exist or a glob matching nothing.
/// Nothing was done.
pub const USAGE: i32 = 2;

/// Marks an error as a usage error (exit status [`USAGE`]) wherever it sits in the error chain,
/// so context added on the way up keeps the classification.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A usage error with this message.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Usage(message.into()).into()
}

/// The exit status for `e`: [`USAGE`] when a [`Usage`] is anywhere in its chain, else [`FAILURE`].
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if e.chain().any(|c| c.is::<Usage>()) {
        USAGE
    } else {
        FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_survives_context() {
        assert_eq!(exit_code(&anyhow::anyhow!("in.jsonl:3: bad id")), FAILURE);
        let wrapped = usage("--batch-size 0: must be at least 1").context("replay");
        assert_eq!(exit_code(&wrapped), USAGE);
    }
}
