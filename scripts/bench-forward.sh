#!/usr/bin/env bash
# scripts/bench-forward.sh - store and forward (issue 13), side by side in one run.
#  1. Forwarding throughput: the same load generator (examples/otlp_load.rs: OTLP/HTTP protobuf,
#     512 spans per request, 4 in flight) as
#       a) otel-run's program with --traces-exporter otlp: program -> sink -> forwarder -> rotel,
#          timed from start to otel-run's exit (every span acknowledged by rotel or spilled; the
#          -v counts are checked and the spilled count printed);
#       b) straight to rotel (the program exporting to the collector itself).
#     rotel (PyPI) on 127.0.0.1 with its blackhole exporter. ROUNDS runs each, alternating;
#     median spans/s and the ratio (goal: a/b >= 0.90).
#  2. Exit delay with a dead collector (connection refused): a program that sends 10 requests
#     (5,120 spans) to the sink and records its exit time; the time from then to otel-run's exit,
#     median of EXITS runs (goal: <= 2 s).
# Knobs: BATCHES (default 400 = 204,800 spans), ROUNDS (default 5), EXITS (default 20), OTEL_RUN_VENV.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
VENV=${OTEL_RUN_VENV:-$REPO/target/venv}
BATCHES=${BATCHES:-400}
ROUNDS=${ROUNDS:-5}
EXITS=${EXITS:-20}
[ -x "$VENV/bin/python" ] || scripts/install-deps.sh >/dev/null
cargo build --release --bin otel-run --example otlp_load 2>&1 | tail -1
OTEL_RUN=$REPO/target/release/otel-run
LOAD=$REPO/target/release/examples/otlp_load
TMP=$(mktemp -d /tmp/otel-run-bench-forward.XXXXXX)
# shellcheck source=scripts/bench-rotel.sh
. "$REPO/scripts/bench-rotel.sh"

now() { date +%s%N; }
SPANS=$((BATCHES * 512))
declare -A runs
spilled_total=0
for r in $(seq "$ROUNDS"); do
  t0=$(now)
  "$OTEL_RUN" -v --traces-exporter otlp --exporter-otlp-endpoint "http://127.0.0.1:$HTTP" \
    --spill-path "$TMP/spill_{pid}.jsonl" -- "$LOAD" "$BATCHES" 4 >/dev/null 2>"$TMP/fwd.err"
  t1=$(now)
  line=$(grep "the program's spans:" "$TMP/fwd.err") || { cat "$TMP/fwd.err"; exit 1; }
  spilled=$(echo "$line" | sed -n "s/.*forwarded, \([0-9]*\) spilled.*/\1/p")
  spilled_total=$((spilled_total + spilled))
  runs[forward]+="$((SPANS * 1000000000 / (t1 - t0))) "
  t0=$(now)
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:$HTTP/v1/traces" "$LOAD" "$BATCHES" 4 >/dev/null
  t1=$(now)
  runs[direct]+="$((SPANS * 1000000000 / (t1 - t0))) "
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
direct=$(echo "${runs[direct]}" | median)
echo "forwarding throughput, OTLP/HTTP protobuf, 512 spans/request, $SPANS spans, start to exit, median of $ROUNDS (spans/s)"
for k in forward direct; do
  m=$(echo "${runs[$k]}" | median)
  printf '  %-8s %9d spans/s   %.2fx direct   (runs: %s)\n' "$k" "$m" "$(echo "$m $direct" | awk '{print $1/$2}')" "${runs[$k]}"
done
echo "  spans spilled in the forward runs (queue full or not acknowledged): $spilled_total of $((SPANS * ROUNDS))"

# 2. exit delay with a dead collector
DEAD=$(port)   # bound and closed again: connections are refused
delays=
for _ in $(seq "$EXITS"); do
  "$OTEL_RUN" --traces-exporter otlp --exporter-otlp-endpoint "http://127.0.0.1:$DEAD" \
    --spill-path "$TMP/dead_{pid}.jsonl" -- sh -c "$LOAD 10 4 >/dev/null; date +%s%N > $TMP/end" 2>/dev/null
  t1=$(now)
  delays+="$(( (t1 - $(cat "$TMP/end")) / 1000000 )) "
done
m=$(echo "$delays" | median)
echo "program exit -> otel-run exit, collector refusing, 5,120 spans spilled per run: median ${m} ms of $EXITS (runs ms: $delays)"
