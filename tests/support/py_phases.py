"""An MPI-like rank program with phases and one slow rank, for `otel-run report` (its test and
the README's picture). It never calls MPI and is configured only through its environment, like
tests/support/py_child.py: the OpenTelemetry SDK's OTLP/HTTP exporter reads the endpoint and
headers otel-run's sink gives it, and the sink adopts the spans under the rank's process span.

Usage: <venv>/bin/python tests/support/py_phases.py ITERATIONS

Rank and size come from the launcher (SLURM_PROCID/SLURM_NTASKS, PMI_RANK/PMI_SIZE or
OMPI_COMM_WORLD_RANK/_SIZE). Spans per rank: "simulate" > "setup", ITERATIONS x "iteration" >
("compute", "halo exchange", "checkpoint"). The last rank computes 3x longer; the others wait for
it in "halo exchange", as a real bulk-synchronous code would. Rank 1's last checkpoint ends with
an ERROR status ("disk quota exceeded (simulated)").
"""

import os
import sys
import time

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

COMPUTE_S = 0.03
HALO_S = 0.004
CHECKPOINT_S = 0.006


def env_int(*names, default):
    for n in names:
        if os.environ.get(n, "").isdigit():
            return int(os.environ[n])
    return default


def main() -> int:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    rank = env_int("OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID", default=0)
    size = env_int("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS", default=1)
    slow = size - 1
    provider = TracerProvider()  # resource from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("py_phases", "0.1.0")
    with tracer.start_as_current_span("simulate", attributes={"ranks": size}):
        with tracer.start_as_current_span("setup", attributes={"cells": 1000 * (rank + 1)}):
            time.sleep(0.01 + 0.002 * rank)
        for it in range(iterations):
            with tracer.start_as_current_span("iteration", attributes={"iteration": it}):
                mine = COMPUTE_S * (3 if rank == slow else 1)
                with tracer.start_as_current_span("compute", attributes={"iteration": it}):
                    time.sleep(mine)
                # Everyone waits for the slowest rank at the exchange.
                with tracer.start_as_current_span("halo exchange", attributes={"neighbours": 2}):
                    time.sleep(HALO_S + COMPUTE_S * 3 - mine)
                with tracer.start_as_current_span("checkpoint") as cp:
                    time.sleep(CHECKPOINT_S)
                    if rank == 1 % size and it == iterations - 1:
                        cp.set_status(Status(StatusCode.ERROR, "disk quota exceeded (simulated)"))
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
