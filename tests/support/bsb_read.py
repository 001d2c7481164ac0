"""Reads span files the way bsb-otel's users do, for tests/bsb_otel.rs (run by each bsb-otel
venv: 8.0.2 and 7.6.1).

Usage: <venv>/bin/python tests/support/bsb_read.py FILE...

1. bsb_otel.replay.load_spans(FILES) parses every line (json.loads);
2. replay_spans(spans, provider, shift_to_now=False) rebuilds each as a ReadableSpan into a
   TracerProvider whose in-memory exporter collects them;
3. every time stamp (start, end, event) is parsed as readers on Python <= 3.10 do:
   datetime.strptime(s, '%Y-%m-%dT%H:%M:%S.%fZ'), and checked to be what isoformat() writes
   plus `Z` (6 fractional digits), which is all 3.10's datetime.fromisoformat accepts.

Prints one JSON object: the bsb-otel version, the number of spans loaded and replayed, the number
of time stamps checked, and per replayed span what bsb-otel kept (ids, parent, name, kind, status,
times in µs from strptime, attributes and events as plain JSON, NaN and infinities as strings).
"""

import importlib.metadata
import json
import math
import re
import sys
from datetime import datetime, timezone

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from bsb_otel.replay import load_spans, replay_spans

ISO = "%Y-%m-%dT%H:%M:%S.%fZ"
SHAPE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Collect(SpanExporter):
    def __init__(self):
        self.spans = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def micros(s):
    if not SHAPE.match(s):
        sys.exit(f"time stamp {s!r} is not what isoformat() writes plus Z (Python <= 3.10 refuses it)")
    dt = datetime.strptime(s, ISO).replace(tzinfo=timezone.utc)
    return (dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) // datetime.resolution


def plain(v):
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def main():
    raw = load_spans(sys.argv[1:])
    stamps = {}
    checked = 0
    for d in raw:
        sid = d["context"]["span_id"]
        stamps[sid] = (micros(d["start_time"]), micros(d["end_time"]))
        checked += 2
        for e in d.get("events", []):
            micros(e["timestamp"])
            checked += 1
    exporter = Collect()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    replayed = replay_spans(raw, provider=provider, shift_to_now=False)
    spans = []
    for s in exporter.spans:
        sid = "0x%016x" % s.context.span_id
        spans.append(
            {
                "trace_id": "%032x" % s.context.trace_id,
                "span_id": "%016x" % s.context.span_id,
                "parent_id": "%016x" % s.parent.span_id if s.parent else "",
                "name": s.name,
                "kind": s.kind.name,
                "status": s.status.status_code.name,
                "description": s.status.description or "",
                "start_us": stamps[sid][0],
                "end_us": stamps[sid][1],
                "attributes": {k: plain(v) for k, v in s.attributes.items()},
                "events": [
                    {"name": e.name, "attributes": {k: plain(v) for k, v in e.attributes.items()}}
                    for e in s.events
                ],
            }
        )
    print(
        json.dumps(
            {
                "version": importlib.metadata.version("bsb-otel"),
                "python": sys.version.split()[0],
                "loaded": len(raw),
                "replayed": replayed,
                "time_stamps": checked,
                "spans": spans,
            }
        )
    )


if __name__ == "__main__":
    main()
