//! Collective spans over an MPI communicator (feature `mpi`).
//!
//! `trace(name)` with no active parent opens a span shared by every rank of the communicator:
//! all ranks' child spans hang under one span id, and only communicator rank 0 writes that span.
//! A nested `trace` is an ordinary child span. Unlike a broadcast design (bsb-otel), `trace`
//! never communicates, so ranks taking different code paths cannot deadlock in it: every rank
//! derives the shared span id on its own as
//!
//! `SHA-256("otel-run/collective\0" ‖ trace id ‖ world ranks of the communicator's group ‖ name ‖
//! k)[0..8]`, where `k` counts this rank's earlier top-level `trace(name)` calls with the same
//! name on a tracer of the same communicator group.
//!
//! The rule: the k-th top-level `trace("b")` of every rank is the same shared span, whatever
//! else each rank traced in between. So ranks 0 and 2 running `trace("a")` then `trace("b")` while
//! ranks 1 and 3 run only `trace("b")` still agree on "b". Limits, stated honestly: (1) ranks that
//! call `trace(name)` a different number of times with the same name pair up by count, not by
//! intent; (2) the shared span is written by communicator rank 0, so if rank 0 never runs a
//! collective section the other ranks' children point at a span that is never written (otel-run
//! merge reports them as orphans); (3) its start and end are rank 0's, not the slowest rank's;
//! (4) `new` is collective (one broadcast of rank 0's trace context, like creating a
//! communicator): call it on every rank of the communicator.

use opentelemetry::trace::{
    SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, ContextGuard, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use mpi::topology::{Communicator, Group, SimpleCommunicator};
use mpi::traits::*;

/// Shares top-level spans across the ranks of a communicator.
pub struct CollectiveTracer {
    tracer: SdkTracer,
    trace_id: TraceId,
    /// Communicator rank 0's TRACEPARENT span (its process span under otel-run).
    parent: Option<SpanId>,
    sampled: bool,
    /// The communicator's group as world ranks: the part of the id that names the communicator.
    world_ranks: Vec<i32>,
    rank: i32,
    size: i32,
    seq: RefCell<HashMap<String, u64>>,
    local: Cell<u32>,
}

impl CollectiveTracer {
    /// Collective over `comm`, like creating a communicator: every rank must call it. It
    /// broadcasts rank 0's trace context once so all ranks agree on the trace even without
    /// otel-run's TRACEPARENT. Call [`crate::init`] first.
    pub fn new<C: Communicator>(comm: &C) -> CollectiveTracer {
        let mut buf = [0u8; 25];
        if comm.rank() == 0 {
            let parent = crate::state().and_then(|s| s.parent.clone());
            match parent {
                Some(p) => {
                    buf[..16].copy_from_slice(&p.trace_id);
                    buf[16..24].copy_from_slice(&p.span_id);
                    buf[24] = u8::from(p.sampled);
                }
                None => {
                    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
                    buf[..16]
                        .copy_from_slice(&RandomIdGenerator::default().new_trace_id().to_bytes());
                    buf[24] = 1;
                }
            }
        }
        comm.process_at_rank(0).broadcast_into(&mut buf[..]);
        let parent = SpanId::from_bytes(buf[16..24].try_into().expect("8 bytes"));
        Self::on(
            comm,
            crate::tracer(),
            TraceId::from_bytes(buf[..16].try_into().expect("16 bytes")),
            (parent != SpanId::INVALID).then_some(parent),
            buf[24] == 1,
        )
    }

    /// A tracer over `comm` in a trace already agreed on, with fresh sequence counters.
    fn on<C: Communicator>(
        comm: &C,
        tracer: SdkTracer,
        trace_id: TraceId,
        parent: Option<SpanId>,
        sampled: bool,
    ) -> CollectiveTracer {
        let world = SimpleCommunicator::world().group();
        let ranks: Vec<i32> = (0..comm.size()).collect();
        let world_ranks = comm
            .group()
            .translate_ranks(&ranks, &world)
            .into_iter()
            .map(|r| r.unwrap_or(-1))
            .collect();
        CollectiveTracer {
            tracer,
            trace_id,
            parent,
            sampled,
            world_ranks,
            rank: comm.rank(),
            size: comm.size(),
            seq: RefCell::new(HashMap::new()),
            local: Cell::new(0),
        }
    }

    /// A tracer sharing spans across `comm` (e.g. a sub-communicator) in the same trace. Local:
    /// no communication. Its sequence counters are its own, keyed by `comm`'s group of ranks.
    pub fn use_communicator<C: Communicator>(&self, comm: &C) -> CollectiveTracer {
        Self::on(
            comm,
            self.tracer.clone(),
            self.trace_id,
            self.parent,
            self.sampled,
        )
    }

    /// While the returned guard lives, `trace` opens ordinary per-rank spans.
    pub fn local_tracing(&self) -> LocalTracing<'_> {
        self.local.set(self.local.get() + 1);
        LocalTracing { tracer: self }
    }

    pub fn rank(&self) -> i32 {
        self.rank
    }

    /// Opens a span and makes it the active context until the guard drops. Shared across the
    /// communicator when no span is active and local tracing is off; an ordinary child otherwise.
    pub fn trace(&self, name: impl Into<Cow<'static, str>>) -> SpanGuard {
        let name = name.into();
        let current = Context::current();
        let attrs = vec![
            KeyValue::new("mpi.rank", i64::from(self.rank)),
            KeyValue::new("mpi.size", i64::from(self.size)),
        ];
        if self.local.get() > 0 || current.span().span_context().is_valid() {
            let span = self
                .tracer
                .span_builder(name)
                .with_attributes(attrs)
                .start_with_context(&self.tracer, &current);
            let cx = current.with_span(span);
            return SpanGuard {
                attach: Some(cx.clone().attach()),
                cx,
                owns_span: true,
            };
        }
        let seq = {
            let mut seqs = self.seq.borrow_mut();
            let n = seqs.entry(name.to_string()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let span_id = shared_span_id(self.trace_id, &self.world_ranks, &name, seq);
        let flags = if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        if self.rank == 0 {
            let parent_cx = match self.parent {
                Some(p) => Context::new().with_remote_span_context(SpanContext::new(
                    self.trace_id,
                    p,
                    flags,
                    true,
                    TraceState::default(),
                )),
                None => Context::new(),
            };
            let mut attrs = attrs;
            attrs.push(KeyValue::new("otel_run.collective.sequence", seq as i64));
            attrs.push(KeyValue::new(
                "otel_run.collective.world_ranks",
                opentelemetry::Value::Array(
                    self.world_ranks
                        .iter()
                        .map(|&r| i64::from(r))
                        .collect::<Vec<_>>()
                        .into(),
                ),
            ));
            crate::ids::set_next_ids(self.trace_id, span_id);
            let span = self
                .tracer
                .span_builder(name)
                .with_attributes(attrs)
                .start_with_context(&self.tracer, &parent_cx);
            crate::ids::clear_next_ids();
            let cx = current.with_span(span);
            SpanGuard {
                attach: Some(cx.clone().attach()),
                cx,
                owns_span: true,
            }
        } else {
            // The span rank 0 writes, as a parent for this rank's children.
            let cx = current.with_remote_span_context(SpanContext::new(
                self.trace_id,
                span_id,
                flags,
                true,
                TraceState::default(),
            ));
            SpanGuard {
                attach: Some(cx.clone().attach()),
                cx,
                owns_span: false,
            }
        }
    }
}

/// The id every rank derives for the `seq`-th top-level span `name` of a communicator group.
pub fn shared_span_id(trace: TraceId, world_ranks: &[i32], name: &str, seq: u64) -> SpanId {
    let mut h = Sha256::new();
    h.update(b"otel-run/collective\0");
    h.update(trace.to_bytes());
    h.update((world_ranks.len() as u64).to_le_bytes());
    for r in world_ranks {
        h.update(r.to_le_bytes());
    }
    h.update(name.as_bytes());
    h.update([0]);
    h.update(seq.to_le_bytes());
    let digest = h.finalize();
    let mut id: [u8; 8] = digest[..8].try_into().expect("8 bytes");
    if id == [0; 8] {
        id[7] = 1; // the all-zero id is invalid
    }
    SpanId::from_bytes(id)
}

/// An open span of a [`CollectiveTracer`]; ends it (on the rank that owns it) when dropped.
pub struct SpanGuard {
    cx: Context,
    attach: Option<ContextGuard>,
    owns_span: bool,
}

impl SpanGuard {
    pub fn set_attribute(&self, kv: KeyValue) {
        self.cx.span().set_attribute(kv);
    }

    pub fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        self.cx.span().add_event(name, attributes);
    }

    pub fn set_status(&self, status: Status) {
        self.cx.span().set_status(status);
    }

    /// The span's context (the shared id on every rank for a collective span).
    pub fn span_context(&self) -> SpanContext {
        self.cx.span().span_context().clone()
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if self.owns_span {
            self.cx.span().end();
        }
        self.attach.take();
    }
}

/// See [`CollectiveTracer::local_tracing`].
pub struct LocalTracing<'a> {
    tracer: &'a CollectiveTracer,
}

impl Drop for LocalTracing<'_> {
    fn drop(&mut self) {
        self.tracer.local.set(self.tracer.local.get() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_ids_depend_on_every_input() {
        let t = TraceId::from_bytes([7; 16]);
        let base = shared_span_id(t, &[0, 1, 2, 3], "timestep", 0);
        assert_eq!(base, shared_span_id(t, &[0, 1, 2, 3], "timestep", 0));
        for other in [
            shared_span_id(TraceId::from_bytes([8; 16]), &[0, 1, 2, 3], "timestep", 0),
            shared_span_id(t, &[0, 2], "timestep", 0),
            shared_span_id(t, &[0, 1, 2, 3], "halo", 0),
            shared_span_id(t, &[0, 1, 2, 3], "timestep", 1),
        ] {
            assert_ne!(base, other);
        }
    }
}
