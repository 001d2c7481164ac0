//! `otel-run summary` (issue 6): not built yet.

use crate::cli::SummaryArgs;

pub fn main(_args: SummaryArgs) -> i32 {
    tracing::error!("`otel-run summary` is not available in this build yet");
    2
}
