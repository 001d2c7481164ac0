"""A rank program with a native `jsonlines` exporter, like bsb-otel's: it appends its spans as
`ReadableSpan.to_json(indent=None)` lines to the file otel-run names in
OTEL_EXPORTER_JSONLINES_PATH, under the process span otel-run names in TRACEPARENT.

Usage: <venv>/bin/python tests/support/py_jsonlines_child.py ITERATIONS [SLEEP_S]

Spans: "compute" (parent: otel-run's process span) with ITERATIONS "iteration" children. Each
span is written as it ends (one write(2) per line on an O_APPEND file), so a rank killed while
sleeping in the last iteration leaves finished iterations whose parent "compute" never ended.
"""

import os
import sys
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


class JsonLines(SpanExporter):
    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def export(self, spans):
        data = "".join(s.to_json(indent=None) + "\n" for s in spans).encode()
        os.write(self.fd, data)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        os.close(self.fd)


def main():
    iterations = int(sys.argv[1])
    sleep = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(JsonLines(os.environ["OTEL_EXPORTER_JSONLINES_PATH"]))
    )
    tracer = provider.get_tracer("py_jsonlines_child", "0.1.0")
    parent = TraceContextTextMapPropagator().extract({"traceparent": os.environ["TRACEPARENT"]})
    with tracer.start_as_current_span("compute", context=parent):
        for i in range(iterations):
            with tracer.start_as_current_span("iteration", attributes={"i": i}):
                if i == iterations - 1 and sleep > 0:
                    time.sleep(sleep)
    provider.shutdown()


if __name__ == "__main__":
    main()
