"""Reference span file from the REAL OpenTelemetry Python SDK.

Usage: <venv>/bin/python tests/support/py_reference.py OUT.jsonlines

Writes one span per line exactly as ``ReadableSpan.to_json(indent=None)`` writes it (the "python"
span-file format of ARCHITECTURE.md §4, which bsb-otel's jsonlines exporter also writes), so the
Rust reader/writer can be checked against the real thing rather than against our idea of it.

Covers: a 3-level tree (root -> child -> grandchild), every SpanKind, status OK / ERROR with a
description / UNSET, attributes of every type (str, bool, int, float and lists of each) plus a
few encoding edge cases, events and links with attributes, a non-empty trace_state (span with a
remote parent carrying TraceState vendor=value), resource attributes incl. service.name and a
resource schema_url.

Deterministic: fixed ids (sequential IdGenerator), fixed timestamps (with sub-microsecond parts:
Python's writer goes through a float, ns / 1e9, and ROUNDS to the nearest microsecond, e.g.
...20.123456789 -> "20.123457Z", so do not expect truncation), a Resource built directly (Resource.create would
add the SDK version and read OTEL_RESOURCE_ATTRIBUTES). Running it twice gives identical files.
Prints nothing to stdout.
"""

import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

# 2023-11-14T22:13:20.123456789Z; the last three digits are below Python's microsecond precision.
# (written as 2023-11-14T22:13:20.123457Z)
T0 = 1_700_000_000_123_456_789
MS = 1_000_000

TRACE_1 = 0x0AF7651916CD43DD8448EB211C80319C
TRACE_2 = 0x4BF92F3577B34DA6A3CE929D0E0E4736  # the W3C traceparent example's trace id
REMOTE_PARENT = 0x00F067AA0BA902B7  # ... and its parent id


class SequentialIds(IdGenerator):
    """Span ids 0x1000000000000001, ...; trace ids from a fixed list (then counting)."""

    def __init__(self):
        self._span = 0x1000000000000000
        self._traces = [TRACE_1]

    def generate_span_id(self) -> int:
        self._span += 1
        return self._span

    def generate_trace_id(self) -> int:
        if self._traces:
            return self._traces.pop(0)
        self._span += 1
        return 0x0F000000000000000000000000000000 + self._span


# Every attribute type OpenTelemetry allows, and a few JSON-encoding edge cases.
ALL_TYPES = {
    "str": "hello",
    "bool.true": True,
    "bool.false": False,
    "int": 42,
    "int.negative": -7,
    "int.max": 9_223_372_036_854_775_807,
    "int.min": -9_223_372_036_854_775_808,
    "float": 3.25,
    "float.integral": 2.0,
    "float.small": 1.5e-7,
    "list.str": ["a", "b", "c"],
    "list.bool": [True, False, True],
    "list.int": [1, -2, 3],
    "list.float": [0.5, -1.25, 1e21],
    "str.empty": "",
    "str.escapes": 'quote " backslash \\ newline \n tab \t',
    "str.unicode": "Grüße, 世界 🚀",
}


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: py_reference.py OUT.jsonlines", file=sys.stderr)
        return 2

    resource = Resource(
        {
            "service.name": "py-reference",
            "service.version": "1.2.3",
            "host.name": "node001",
            "mpi.rank": 0,
            "mpi.size": 4,
            "deployment.tags": ["hpc", "test"],
        },
        schema_url="https://opentelemetry.io/schemas/1.21.0",
    )
    provider = TracerProvider(resource=resource, id_generator=SequentialIds())
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        exporter = ConsoleSpanExporter(
            out=out, formatter=lambda span: span.to_json(indent=None) + "\n"
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("py_reference", "0.1.0")
        emit(tracer)
        provider.shutdown()
    return 0


def emit(tracer) -> None:
    t = T0

    # --- trace 1: root (SERVER, OK) -> child (INTERNAL) -> grandchild (CLIENT, ERROR)
    root = tracer.start_span("root", kind=SpanKind.SERVER, start_time=t, attributes=ALL_TYPES)
    root_ctx = trace.set_span_in_context(root)
    child = tracer.start_span(
        "child", context=root_ctx, start_time=t + 1 * MS, attributes={"step": 1}
    )
    child.add_event(
        "checkpoint",
        attributes={"iteration": 3, "converged": False, "residual": 1.5e-3, "tags": ["x", "y"]},
        timestamp=t + 2 * MS + 789,
    )
    child.add_event("no-attributes", timestamp=t + 3 * MS)
    grandchild = tracer.start_span(
        "grandchild",
        context=trace.set_span_in_context(child),
        kind=SpanKind.CLIENT,
        start_time=t + 4 * MS + 1,
        attributes={"peer.service": "db", "retry": [1, 2]},
    )
    grandchild.add_event(
        "exception",
        attributes={"exception.type": "TimeoutError", "exception.message": "no answer in 5 s"},
        timestamp=t + 5 * MS,
    )
    grandchild.set_status(Status(StatusCode.ERROR, "deadline exceeded"))
    grandchild.end(end_time=t + 6 * MS + 999)
    child.end(end_time=t + 7 * MS)

    producer = tracer.start_span(
        "enqueue", context=root_ctx, kind=SpanKind.PRODUCER, start_time=t + 8 * MS
    )
    producer.end(end_time=t + 9 * MS)
    consumer = tracer.start_span(
        "dequeue",
        context=root_ctx,
        kind=SpanKind.CONSUMER,
        start_time=t + 10 * MS,
        links=[Link(producer.get_span_context(), attributes={"link.kind": "follows", "n": 1})],
    )
    consumer.end(end_time=t + 11 * MS)
    root.set_status(Status(StatusCode.OK))
    root.end(end_time=t + 12 * MS)

    # --- trace 2: a span whose parent is remote and carries a non-empty trace state; it also
    # links (with attributes) to a span of trace 1, so a link crosses traces.
    remote = SpanContext(
        trace_id=TRACE_2,
        span_id=REMOTE_PARENT,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value")]),
    )
    with_state = tracer.start_span(
        "with-trace-state",
        context=trace.set_span_in_context(NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        start_time=t + 20 * MS,
        links=[
            Link(root.get_span_context(), attributes={"link.reason": "caused-by", "ok": True}),
            Link(remote),
        ],
    )
    with_state.end(end_time=t + 21 * MS)

    # --- trace 3: a bare root span: no attributes, events or links, status UNSET, kind INTERNAL
    bare = tracer.start_span("bare", start_time=t + 30 * MS)
    bare.end(end_time=t + 30 * MS)


if __name__ == "__main__":
    sys.exit(main())
