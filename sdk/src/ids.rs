//! Trace identity from the contract. The Rust SDK has no environment carrier, so TRACEPARENT is
//! applied here: root spans get TRACEPARENT's trace id (the id generator), its sampled flag and
//! TRACESTATE (the sampler), and its span id as their parent (set in the pipeline before export,
//! the one field the SDK fixes at start and offers no hook for). Every thread's root spans join
//! the job's trace, without attaching a context on each thread.
//!
//! The collective tracer also chooses span and trace ids itself (ids every rank derives
//! alike); it hands them to the generator through a thread-local for the one span it starts.

use crate::config::Parent;
use opentelemetry::trace::SpanId;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SamplingDecision, SamplingResult, ShouldSample,
};
use std::cell::Cell;

thread_local! {
    static NEXT_SPAN_ID: Cell<Option<SpanId>> = const { Cell::new(None) };
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// Makes the next span started on this thread use these ids (the trace id only applies if the
/// span has no parent). Cleared by [`clear_next_ids`] after the start.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn set_next_ids(trace: TraceId, span: SpanId) {
    NEXT_TRACE_ID.with(|c| c.set(Some(trace)));
    NEXT_SPAN_ID.with(|c| c.set(Some(span)));
}

#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn clear_next_ids() {
    NEXT_TRACE_ID.with(|c| c.set(None));
    NEXT_SPAN_ID.with(|c| c.set(None));
}

#[derive(Debug)]
pub(crate) struct ContractIds {
    pub trace: Option<TraceId>,
    random: RandomIdGenerator,
}

impl ContractIds {
    pub fn new(parent: Option<&Parent>) -> ContractIds {
        ContractIds {
            trace: parent.map(|p| TraceId::from_bytes(p.trace_id)),
            random: RandomIdGenerator::default(),
        }
    }
}

impl IdGenerator for ContractIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID
            .with(Cell::take)
            .or(self.trace)
            .unwrap_or_else(|| self.random.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_SPAN_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.random.new_span_id())
    }
}

/// Parent-based sampling where a root span's "parent" is TRACEPARENT.
#[derive(Debug, Clone)]
pub(crate) struct ContractSampler {
    root_sampled: bool,
    root_state: TraceState,
}

impl ContractSampler {
    /// A TRACESTATE the opentelemetry crate rejects yields `Err` with the reason (the caller warns).
    pub fn new(parent: Option<&Parent>) -> (ContractSampler, Option<String>) {
        let mut warning = None;
        let root_state = match parent {
            Some(p) if !p.trace_state.is_empty() => match p.trace_state.parse::<TraceState>() {
                Ok(ts) => ts,
                Err(e) => {
                    warning = Some(format!("ignoring TRACESTATE={:?}: {e}", p.trace_state));
                    TraceState::default()
                }
            },
            _ => TraceState::default(),
        };
        (
            ContractSampler {
                root_sampled: parent.is_none_or(|p| p.sampled),
                root_state,
            },
            warning,
        )
    }
}

impl ShouldSample for ContractSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        _trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let parent = parent_context
            .filter(|cx| cx.has_active_span())
            .map(|cx| cx.span().span_context().clone())
            .filter(|sc| sc.is_valid());
        let (sampled, trace_state) = match parent {
            Some(sc) => (sc.is_sampled(), sc.trace_state().clone()),
            None => (self.root_sampled, self.root_state.clone()),
        };
        SamplingResult {
            decision: if sampled {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state,
        }
    }
}
