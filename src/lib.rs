//! otel-run: OpenTelemetry traces for HPC jobs. README.md says what it does; ARCHITECTURE.md how the modules fit and why.

pub mod attr;
pub mod cli;
pub mod contract;
pub mod error;
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
pub mod spill;
pub mod summary;
