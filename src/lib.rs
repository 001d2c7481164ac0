//! otel-run: OpenTelemetry traces for HPC jobs. README.md says what it does; ARCHITECTURE.md how the modules fit and why.

pub(crate) mod adopt;
pub mod attr;
pub mod cli;
pub mod contract;
pub mod error;
pub mod export;
pub mod format;
pub mod ids;
pub(crate) mod input;
pub(crate) mod job;
pub mod logging;
pub mod merge;
pub mod otlp;
pub mod replay;
pub mod report;
pub mod run;
pub(crate) mod semconv;
pub(crate) mod sink;
pub(crate) mod spill;
pub mod summary;

/// The sink's OTLP/HTTP and OTLP/gRPC body decoding, public only for the fuzz targets and the
/// corpus replay test (`fuzz/checks.rs`): the sink itself stays crate-private.
#[doc(hidden)]
pub use sink::{decode_grpc_request, decode_http_request};
