//! `otel-run replay` (issue 5): not built yet.

use crate::cli::ReplayArgs;

pub fn main(_args: ReplayArgs) -> i32 {
    tracing::error!("`otel-run replay` is not available in this build yet");
    2
}
