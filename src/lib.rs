//! otel-run: OpenTelemetry traces for HPC jobs. See README.md and DESIGN.md for the shape.

pub mod attr;
pub mod cli;
pub mod contract;
pub mod export;
pub mod format;
pub mod ids;
pub mod input;
pub mod job;
pub mod logging;
pub mod merge;
pub mod otlp;
pub mod replay;
pub mod report;
pub mod run;
pub mod semconv;
pub mod sink;
pub mod summary;
