#!/usr/bin/env python3
"""Writes a python-format span file for benchmarks: N spans exactly as OpenTelemetry Python's
``ReadableSpan.to_json(indent=None)`` lays them out (same keys, order and separators), spread over
RANKS ranks of one job, about 700 bytes per span like bsb-otel's rank files.

Usage: gen-spans.py N RANKS OUT.jsonlines        (standard library only; deterministic)
"""

import json
import random
import sys


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    n, ranks, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rnd = random.Random(42)
    trace_id = "0x%032x" % rnd.getrandbits(128)
    t0 = 1_700_000_000_000_000  # microseconds
    resources = [
        {
            "attributes": {
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.version": "1.38.0",
                "service.name": "bsb-simulation",
                "host.name": "node%03d" % (r // 32),
                "mpi.rank": r,
                "mpi.size": ranks,
                "slurm.job.id": "123456",
            },
            "schema_url": "",
        }
        for r in range(ranks)
    ]
    names = ["simulate", "connect", "place cells", "compile", "checkpoint", "io.write"]
    with open(out, "w", encoding="utf-8") as f:
        for i in range(n):
            rank = i % ranks
            start = t0 + i * 37 + rank
            end = start + 1 + rnd.randrange(5_000_000)
            span = {
                "name": names[i % len(names)],
                "context": {
                    "trace_id": trace_id,
                    "span_id": "0x%016x" % (i + 1),
                    "trace_state": "[]",
                },
                "kind": "SpanKind.INTERNAL",
                "parent_id": "0x%016x" % (rank + 1) if i >= ranks else None,
                "start_time": iso(start),
                "end_time": iso(end),
                "status": {"status_code": "UNSET"},
                "attributes": {
                    "code.function": names[i % len(names)].replace(" ", "_"),
                    "iteration": i // ranks,
                    "cells": rnd.randrange(1_000_000),
                    "load": round(rnd.random(), 6),
                },
                "events": [],
                "links": [],
                "resource": resources[rank],
            }
            f.write(json.dumps(span) + "\n")
    return 0


def iso(us: int) -> str:
    import datetime

    dt = datetime.datetime.fromtimestamp(us // 1_000_000, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % (us % 1_000_000)


if __name__ == "__main__":
    sys.exit(main())
