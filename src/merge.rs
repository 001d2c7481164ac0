//! `otel-run merge` (issue 6): not built yet.

use crate::cli::MergeArgs;

pub fn main(_args: MergeArgs) -> i32 {
    tracing::error!("`otel-run merge` is not available in this build yet");
    2
}
