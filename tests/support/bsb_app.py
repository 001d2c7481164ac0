"""A rank program as bsb-otel users write them, for tests/bsb_otel.rs.

Usage: <venv>/bin/python tests/support/bsb_app.py direct|api

  direct  builds its own TracerProvider with a BatchSpanProcessor around bsb-otel's
          JSONLinesSpanExporter (which writes to OTEL_EXPORTER_JSONLINES_PATH);
  api     uses the OpenTelemetry API only: run it as
          `opentelemetry-instrument --traces_exporter jsonlines python bsb_app.py api`
          (bsb-otel's documented workflow), which sets up the exporter.

Like every OpenTelemetry Python program it ignores TRACEPARENT, so its root spans start traces
of their own; like bsb-otel it puts `mpi.rank` on its spans (the rank from SLURM_PROCID). Each
rank writes 5 spans in 2 traces, with every attribute type (a NaN and an infinity among them),
events, a link, kinds and statuses:

  simulate (root)  ── step 0 (ERROR "diverged", link to simulate)
                   ├─ step 1
                   └─ io (CLIENT, OK)
  finalize (root, second trace)
"""

import os
import sys

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


def spans(tracer, rank):
    with tracer.start_as_current_span(
        "simulate",
        attributes={
            "mpi.rank": rank,
            "cells": 128,
            "loss": float("nan"),
            "residual": float("inf"),
            "dt": 0.25,
            "converged": False,
            "tags": ["a", "b"],
            "label": "ränk \"quoted\"",
        },
    ) as root:
        root.add_event("checkpoint", {"step": 3, "ok": True, "norm": float("-inf")})
        for i in range(2):
            links = [Link(root.get_span_context(), {"why": "root"})] if i == 0 else []
            with tracer.start_as_current_span(
                "step", attributes={"mpi.rank": rank, "i": i}, links=links
            ) as step:
                if i == 0:
                    step.set_status(Status(StatusCode.ERROR, "diverged"))
                    step.add_event("retry", {"attempt": 1})
        with tracer.start_as_current_span(
            "io", kind=SpanKind.CLIENT, attributes={"mpi.rank": rank, "bytes": [1, 2, 3]}
        ) as io:
            io.set_status(Status(StatusCode.OK))
    with tracer.start_as_current_span("finalize", attributes={"mpi.rank": rank}):
        pass


def main():
    mode = sys.argv[1]
    rank = int(os.environ.get("SLURM_PROCID", "0"))
    if mode == "direct":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from bsb_otel.exporters import JSONLinesSpanExporter

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(JSONLinesSpanExporter()))
        spans(provider.get_tracer("bsb_app", "1.0"), rank)
        provider.shutdown()
    elif mode == "api":
        provider = trace.get_tracer_provider()
        spans(trace.get_tracer("bsb_app", "1.0"), rank)
        # opentelemetry-instrument's provider; flush before the interpreter exits.
        if hasattr(provider, "force_flush"):
            provider.force_flush()
    else:
        sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
