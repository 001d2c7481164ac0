#!/usr/bin/env bash
# scripts/bench-replay.sh - `otel-run replay` against bsb-otel's replay, side by side, in one run.
#
#   scripts/bench-replay.sh [N_SPANS]        (default 200000: a ~140 MB python-format file)
#   OTEL_RUN_BASELINE=/path/to/older/otel-run scripts/bench-replay.sh
#                                            (also measures that binary, for before/after;
#                                            BENCH_BASELINE_BIN works too, as in bench-merge.sh;
#                                            parse alone, best of several runs: bench-parse.sh)
#
# Measures, on the same file and into the same collector (rotel on 127.0.0.1, blackhole exporter,
# `--debug-log-verbosity basic`: one line per request, which is how received spans are counted):
#   parse+convert   otel-run replay --dry-run           | bsb_otel.replay.load_spans + replay_spans
#                                                         into a provider without processors
#   end to end      otel-run replay (http/protobuf, grpc) | load_spans + replay_spans into a
#                   BatchSpanProcessor(OTLPSpanExporter) | `bsb replay-otel` under
#                   opentelemetry-instrument
# and reports wall time, CPU time, spans/s, peak RSS (/usr/bin/time) and spans received.
# bsb-otel goes into a throw-away venv, target/bsb-venv (created on first use; never committed).
# rotel comes from the test venv (OTEL_RUN_VENV, default target/venv; scripts/install-deps.sh).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
N=${1:-200000}
RANKS=64
OUT=$REPO/target/bench
FILE=$OUT/replay-$N.jsonl
BSB=$REPO/target/bsb-venv
VENV=${OTEL_RUN_VENV:-$REPO/target/venv}
mkdir -p "$OUT"

[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null
cargo build --release --quiet
BIN=$REPO/target/release/otel-run
[ -s "$FILE" ] || python3 scripts/gen-spans.py "$N" "$RANKS" "$FILE"
if [ ! -x "$BSB/bin/bsb" ]; then
  echo "bench-replay: installing bsb-otel[sdk] into $BSB" >&2
  python3 -m venv "$BSB"
  "$BSB/bin/pip" install -q 'bsb-otel[sdk]' opentelemetry-distro opentelemetry-exporter-otlp
fi
ROTEL=${OTEL_RUN_TEST_ROTEL:-$("$VENV/bin/python" -c 'import rotel, os; print(os.path.dirname(rotel.__file__))')/rotel-agent}

read -r GRPC HTTP < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
LOG=$OUT/rotel.log
"$ROTEL" start --exporter blackhole --debug-log traces --debug-log-verbosity basic \
  --otlp-grpc-endpoint "127.0.0.1:$GRPC" --otlp-http-endpoint "127.0.0.1:$HTTP" \
  --pid-file "$OUT/rotel.pid" >"$LOG" 2>&1 &
ROTEL_PID=$!
trap 'kill "$ROTEL_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$HTTP") 2>/dev/null && break; sleep 0.1; done

# Spans rotel has received so far (the sum of `spans=` over its per-request lines).
received() { sed 's/\x1b\[[0-9;]*m//g' "$LOG" | grep -o ' spans=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print s+0}'; }
# Waits until the count stops changing (exporters may still be flushing), then prints it.
settled() {
  local last=-1 now
  for _ in $(seq 60); do
    now=$(received)
    [ "$now" = "$last" ] && break
    last=$now; sleep 0.5
  done
  echo "$now"
}

# Python snippets for bsb-otel's two routes besides its CLI.
BSB_CONVERT='import sys
from bsb_otel.replay import load_spans, replay_spans
from opentelemetry.sdk.trace import TracerProvider
print(replay_spans(load_spans([sys.argv[1]]), provider=TracerProvider()))'
BSB_EXPORT='import sys
from bsb_otel.replay import load_spans, replay_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
p = TracerProvider()
p.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=sys.argv[2])))
print(replay_spans(load_spans([sys.argv[1]]), provider=p))
p.shutdown()'

ROWS=()
# measure LABEL CMD...: runs CMD under /usr/bin/time, records wall, CPU, spans/s, RSS, received.
measure() {
  local label=$1; shift
  local before after wall cpu rss
  before=$(settled)
  env -u OTEL_EXPORTER_OTLP_ENDPOINT /usr/bin/time -f '%e %U %S %M' -o "$OUT/time.txt" "$@" \
    >"$OUT/out.txt" 2>"$OUT/err.txt" || { echo "bench-replay: $label failed:" >&2; cat "$OUT/err.txt" >&2; exit 1; }
  after=$(settled)
  read -r wall user sys rss <"$OUT/time.txt"
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u+s}')
  ROWS+=("$(awk -v l="$label" -v w="$wall" -v c="$cpu" -v r="$rss" -v n="$N" -v got=$((after - before)) \
    'BEGIN {printf "%-44s %8.2f %8.2f %11.0f %11.0f %8.0f %10d", l, w, c, n/w, n/c, r/1024, got}')")
  echo "${ROWS[-1]}" >&2
}

echo "bench-replay: $N spans, $(du -m "$FILE" | cut -f1) MB, $RANKS ranks interleaved, $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
INSTR=(env OTEL_TRACES_EXPORTER=otlp OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none
  OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$HTTP"
  "$BSB/bin/opentelemetry-instrument")
BASE=${OTEL_RUN_BASELINE:-${BENCH_BASELINE_BIN:-}}
[ -z "$BASE" ] || measure "parse+convert: baseline replay --dry-run" "$BASE" replay -q --dry-run "$FILE"
measure "parse+convert: otel-run replay --dry-run" "$BIN" replay -q --dry-run "$FILE"
measure "parse+convert: bsb load_spans+replay_spans" "$BSB/bin/python" -c "$BSB_CONVERT" "$FILE"
if [ -n "$BASE" ]; then
  measure "end to end: baseline replay (http/protobuf)" "$BASE" replay -q \
    --exporter-otlp-endpoint "http://127.0.0.1:$HTTP" "$FILE"
  measure "end to end: baseline replay (grpc)" "$BASE" replay -q --exporter-otlp-protocol grpc \
    --exporter-otlp-endpoint "http://127.0.0.1:$GRPC" "$FILE"
fi
measure "end to end: otel-run replay (http/protobuf)" "$BIN" replay -q \
  --exporter-otlp-endpoint "http://127.0.0.1:$HTTP" "$FILE"
measure "end to end: otel-run replay (grpc)" "$BIN" replay -q --exporter-otlp-protocol grpc \
  --exporter-otlp-endpoint "http://127.0.0.1:$GRPC" "$FILE"
measure "end to end: bsb replay_spans+BatchSpanProcessor" "$BSB/bin/python" -c "$BSB_EXPORT" \
  "$FILE" "http://127.0.0.1:$HTTP/v1/traces"
measure "end to end: bsb replay-otel (instrumented)" "${INSTR[@]}" "$BSB/bin/bsb" replay-otel "$FILE"

printf '\n%-44s %8s %8s %11s %11s %8s %10s\n' "$N spans" "wall s" "cpu s" "spans/s" "spans/cpu-s" "RSS MB" "received"
printf '%s\n' "${ROWS[@]}"
echo "(bsb replay-otel's count includes up to 2 spans of bsb's own: its 'cli' and 'replay-otel' command spans)"
