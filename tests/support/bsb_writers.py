"""Several bsb-otel JSONLinesSpanExporter writers appending to one file at once, for
tests/bsb_otel.rs (two writers must never tear each other's lines).

Usage: <venv>/bin/python tests/support/bsb_writers.py WRITERS STOP_FILE

Starts WRITERS processes; each appends spans through a BatchSpanProcessor around bsb-otel's
JSONLinesSpanExporter (OTEL_EXPORTER_JSONLINES_PATH, a Python text file in append mode) with a
payload of random length up to 12,000 characters, so batches run over the file object's 8 KiB
buffer, until STOP_FILE exists (at most 60 s). SIGTERM is ignored (otel-run forwards one to the program: the
writers must keep writing while otel-run writes its own spans). Prints the total number of spans
written.
"""

import os
import random
import signal
import subprocess
import sys
import time

# ~1000 spans/s of ~6 KB each per writer, every burst flushed as batches of up to 512 lines.
BURST = 20
# Should the stop file never come: a bound on the time (and so the disk) a writer takes.
MAX_SECONDS = 60


def writer(index, stop):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from bsb_otel.exporters import JSONLinesSpanExporter

    provider = TracerProvider()
    # Flushed every burst: nothing is dropped, so the count printed is the count written.
    provider.add_span_processor(BatchSpanProcessor(JSONLinesSpanExporter(), max_queue_size=4096))
    tracer = provider.get_tracer("bsb_writers")
    rng = random.Random(index)
    n = 0
    deadline = time.monotonic() + MAX_SECONDS
    while not (os.path.exists(stop) and n > 0) and time.monotonic() < deadline:
        for _ in range(BURST):
            with tracer.start_as_current_span(
                "w", attributes={"writer": index, "k": n, "pad": "x" * rng.randint(10, 12000)}
            ):
                pass
            n += 1
        provider.force_flush()
        time.sleep(0.02)
    provider.shutdown()
    print(n, flush=True)


def main():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.argv[1] == "--writer":
        writer(int(sys.argv[2]), sys.argv[3])
        return
    count, stop = int(sys.argv[1]), sys.argv[2]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--writer", str(i), stop], stdout=subprocess.PIPE, text=True
        )
        for i in range(count)
    ]
    total = 0
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(f"writer exited {p.returncode}")
        total += int(out)
    print(total)


if __name__ == "__main__":
    main()
