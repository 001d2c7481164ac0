#!/usr/bin/env bash
# scripts/bench-sink.sh - the loopback sink's ingest rate and idle footprint (issue 3).
#  1. Ingest, side by side in one run: the same load generator (examples/otlp_load.rs: OTLP/HTTP
#     protobuf, batches of 512 spans, 4 requests in flight) against
#       a) otel-run's sink, writing the rank file (python format, the default) — the generator
#          runs as otel-run's program and finds the sink in its environment;
#       b) otel-run's sink writing the otlp line format;
#       c) rotel (PyPI) on 127.0.0.1 with its blackhole exporter (receives, decodes, drops).
#     Each is run ROUNDS times, alternating, and the median spans/s printed with the ratio to rotel.
#  2. Footprint: otel-run with the sink up while its program sleeps 10 s: peak RSS (VmHWM),
#     threads, and CPU time used (utime+stime from /proc/PID/stat) over those 10 s.
# Knobs: BATCHES (default 2000 = 1,024,000 spans), ROUNDS (default 3), OTEL_RUN_VENV,
#        OTEL_RUN_BASELINE=/path/to/older/otel-run (its sink measured too, python format, same
#        generator, alternating in the same rounds: before/after).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
VENV=${OTEL_RUN_VENV:-$REPO/target/venv}
BATCHES=${BATCHES:-2000}
ROUNDS=${ROUNDS:-3}
scripts/install-deps.sh >/dev/null
cargo build --release --bin otel-run --example otlp_load 2>&1 | tail -1
OTEL_RUN=$REPO/target/release/otel-run
LOAD=$REPO/target/release/examples/otlp_load
TMP=$(mktemp -d /tmp/otel-run-bench-sink.XXXXXX)
# shellcheck source=scripts/bench-rotel.sh
. "$REPO/scripts/bench-rotel.sh"

rate() { sed -n 's/.*spans_per_s=\([0-9]*\).*/\1/p'; }
declare -A runs
for r in $(seq "$ROUNDS"); do
  rm -f "$TMP"/*.jsonlines
  runs[sink_python]+="$("$OTEL_RUN" --jsonlines-path "$TMP/python.jsonlines" -- "$LOAD" "$BATCHES" 4 | rate) "
  rm -f "$TMP"/*.jsonlines
  runs[sink_otlp]+="$("$OTEL_RUN" --jsonlines-format otlp --jsonlines-path "$TMP/otlp.jsonlines" -- "$LOAD" "$BATCHES" 4 | rate) "
  if [ -n "${OTEL_RUN_BASELINE:-}" ]; then
    rm -f "$TMP"/*.jsonlines
    runs[baseline_python]+="$("$OTEL_RUN_BASELINE" --jsonlines-path "$TMP/python.jsonlines" -- "$LOAD" "$BATCHES" 4 | rate) "
  fi
  runs[rotel]+="$(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:$HTTP/v1/traces" "$LOAD" "$BATCHES" 4 | rate) "
  echo "round $r: sink/python ${runs[sink_python]##* } sink/otlp ... done" >/dev/null
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rotel=$(echo "${runs[rotel]}" | median)
echo "ingest, OTLP/HTTP protobuf, 512 spans/request, $((BATCHES * 512)) spans, median of $ROUNDS (spans/s; all runs: ...)"
for k in sink_python ${OTEL_RUN_BASELINE:+baseline_python} sink_otlp rotel; do
  m=$(echo "${runs[$k]}" | median)
  printf '  %-15s %8d spans/s   %.2fx rotel   (runs: %s)\n' "$k" "$m" "$(echo "$m $rotel" | awk '{print $1/$2}')" "${runs[$k]}"
done

# 2. footprint while idle
"$OTEL_RUN" --jsonlines-path "$TMP/idle.jsonlines" -- sleep 10 &
pid=$!
sleep 0.5
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(ticks); threads=0; hwm=0
for _ in $(seq 18); do
  th=$(awk '/^Threads:/{print $2}' "/proc/$pid/status"); [ "$th" -gt "$threads" ] && threads=$th
  h=$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status"); [ "$h" -gt "$hwm" ] && hwm=$h
  sleep 0.5
done
t1=$(ticks)
wait "$pid"
echo "idle footprint with the sink up (program sleeps 10 s): peak RSS ${hwm} kB, max threads ${threads}, CPU $(( (t1 - t0) * 1000 / $(getconf CLK_TCK) )) ms over 9 s"
