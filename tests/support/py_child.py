"""A child program configured ONLY through its environment, like any real instrumented program.

Usage: <venv>/bin/python tests/support/py_child.py [EXTRA_SPANS]

What otel-run promises (ARCHITECTURE.md §6) is that a child whose OpenTelemetry SDK is set up
the ordinary way lands its spans in otel-run's sink. So this program deliberately does nothing
special: it never reads TRACEPARENT (Python's SDK does not either; otel-run's sink adopts such
spans) and never names an endpoint, headers or service name. The SDK reads those itself from
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / _HEADERS / _PROTOCOL (or the generic OTEL_EXPORTER_OTLP_*),
  OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*.
The only choices made here are the ones an application's setup code makes from the environment:
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL (else OTEL_EXPORTER_OTLP_PROTOCOL): "grpc" -> the gRPC
      exporter, anything else -> the HTTP/protobuf exporter (Python has no http/json exporter);
  OTEL_TRACES_EXPORTER: "console" -> print spans to stdout instead, "none" -> no exporter,
      anything else -> OTLP.
Test helpers (not OpenTelemetry configuration):
  PY_CHILD_REPORT  path: write a JSON summary of what was created (names, hex ids, parent ids,
                   export results) after the SDK has shut down;
  PY_CHILD_SLEEP   seconds to sleep inside the innermost span (for signal tests). On SIGTERM,
                   SIGINT or SIGHUP the open spans end (recording the signal), the SDK flushes,
                   the report is written, and the program exits 128+N, as a well-behaved program
                   would.
  argv[1]          number of extra spans to create under the root (default 0).

Trace created (3 levels + siblings):
  py-child.root (SERVER) -> py-child.work (INTERNAL, event "started", link to py-child.setup)
      -> py-child.io (CLIENT, ERROR "simulated failure", event "retry" with attributes)
  py-child.setup (INTERNAL, child of root), py-child.extra-N (children of root)
"""

import json
import os
import signal
import sys
import time

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

ALL_TYPES = {
    "child.str": "value",
    "child.bool": True,
    "child.int": 123,
    "child.float": 2.5,
    "child.list.str": ["a", "b"],
    "child.list.bool": [True, False],
    "child.list.int": [1, 2, 3],
    "child.list.float": [0.25, 0.5],
}


class Terminated(Exception):
    def __init__(self, signum: int):
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


class Recording(SpanExporter):
    """Passes spans to the real exporter and remembers the results, for the report."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.results = []

    def export(self, spans):
        try:
            result = self.inner.export(spans)
        except Exception as e:  # pylint: disable=broad-except
            self.results.append(f"EXCEPTION {type(e).__name__}: {e}")
            return SpanExportResult.FAILURE
        self.results.append(result.name)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def make_exporter():
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if kind == "none":
        return None, "none"
    if kind == "console":
        return ConsoleSpanExporter(), "console"
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(), f"otlp/{protocol or 'http/protobuf'}"


def hex_span(ctx) -> str:
    return trace.format_span_id(ctx.span_id)


def main() -> int:
    extra = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    sleep = float(os.environ.get("PY_CHILD_SLEEP", "0") or 0)

    def on_signal(signum, _frame):
        raise Terminated(signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    provider = TracerProvider()  # resource from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
    inner, exporter_name = make_exporter()
    recording = Recording(inner) if inner is not None else None
    if recording is not None:
        provider.add_span_processor(BatchSpanProcessor(recording))
    tracer = provider.get_tracer("py_child", "0.1.0")

    created = []  # (name, span) in creation order

    def note(name, span):
        created.append((name, span))
        return span

    code = 0
    try:
        with tracer.start_as_current_span(
            "py-child.root", kind=SpanKind.SERVER, attributes=ALL_TYPES
        ) as root:
            note("py-child.root", root)
            with tracer.start_as_current_span("py-child.setup") as setup:
                note("py-child.setup", setup)
                setup.set_attribute("setup.items", [1, 2])
            with tracer.start_as_current_span(
                "py-child.work",
                links=[Link(setup.get_span_context(), {"link.reason": "after-setup", "n": 1})],
                attributes={"work.size": 3, "work.ratio": 0.75},
            ) as work:
                note("py-child.work", work)
                work.add_event("started", {"event.int": 7, "event.list": ["x", "y"]})
                with tracer.start_as_current_span(
                    "py-child.io",
                    kind=SpanKind.CLIENT,
                    attributes={"io.bytes": 4096, "io.ok": False},
                ) as io:
                    note("py-child.io", io)
                    io.add_event("retry", {"retry.attempt": 2, "retry.delay_s": 0.5})
                    if sleep > 0:
                        time.sleep(sleep)
                    io.set_status(Status(StatusCode.ERROR, "simulated failure"))
            for i in range(extra):
                with tracer.start_as_current_span(f"py-child.extra-{i}", attributes={"i": i}) as s:
                    note(f"py-child.extra-{i}", s)
            root.set_status(Status(StatusCode.OK))
    except Terminated as t:
        # the with-blocks above have already ended every open span, recording the exception
        code = 128 + t.signum

    # Ignore further signals while flushing: Slurm sends SIGTERM twice, and a second one must not
    # cut the final export short.
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    provider.shutdown()  # flushes the batch processor, then shuts the exporter down

    report_path = os.environ.get("PY_CHILD_REPORT")
    if report_path:
        spans = []
        for name, span in created:
            ctx = span.get_span_context()
            spans.append(
                {
                    "name": name,
                    "trace_id": trace.format_trace_id(ctx.trace_id),
                    "span_id": hex_span(ctx),
                    "parent_id": hex_span(span.parent) if span.parent is not None else None,
                }
            )
        report = {
            "pid": os.getpid(),
            "exporter": exporter_name,
            "export_results": recording.results if recording is not None else [],
            "exit_code": code,
            "spans": spans,
        }
        tmp = report_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
        os.replace(tmp, report_path)  # readers never see a half-written report
    return code


if __name__ == "__main__":
    sys.exit(main())
