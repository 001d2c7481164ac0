#!/usr/bin/env bash
# scripts/bench-launch.sh - what does wrapping a program in otel-run cost?
#  1. launch time, in ONE hyperfine run (same conditions for all four):
#       true                                  baseline for otel-run
#       otel-run --traces-exporter jsonlines --jsonlines-path DIR/bench_*.jsonlines -- true
#       python -c pass                        baseline for opentelemetry-instrument
#       opentelemetry-instrument --traces_exporter console python -c pass
#     then the added median ms of otel-run over `true`, and of opentelemetry-instrument over
#     python (the usual way to get traces from a program without touching it, for scale).
#  2. footprint: peak RSS (VmHWM) and thread count of the otel-run process while its child runs
#     `sleep 2`, sampled from /proc/PID/status.
# Results: stdout, plus target/bench/launch.md (hyperfine markdown) and launch.json.
# Knobs: OTEL_RUN_BIN (default target/release/otel-run, built here), OTEL_RUN_VENV,
#        OTEL_RUN_BASELINE=/path/to/older/otel-run (also measured, in the same hyperfine run and
#        footprint loop, for before/after),
#        BENCH_WARMUP (default 20), BENCH_HYPERFINE_ARGS (extra hyperfine arguments, split on spaces).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
VENV=${OTEL_RUN_VENV:-$REPO/target/venv}
OUT=$REPO/target/bench
mkdir -p "$OUT"

command -v hyperfine >/dev/null || { echo "bench: no hyperfine (run scripts/install-deps.sh)" >&2; exit 1; }
scripts/install-deps.sh   # the venv provides python + opentelemetry-instrument
if [ -z "${OTEL_RUN_BIN:-}" ]; then
  cargo build --release --bin otel-run
  OTEL_RUN_BIN=$REPO/target/release/otel-run
fi
PY=$VENV/bin/python
INSTR=$VENV/bin/opentelemetry-instrument
TRUE=$(command -v true)   # -N runs without a shell, so the builtin is not an option

TMP=$(mktemp -d /tmp/otel-run-bench.XXXXXX)
bg=
cleanup() {
  if [ -n "$bg" ] && kill -0 "$bg" 2>/dev/null; then kill "$bg" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# opentelemetry-instrument would also set up OTLP metric and log exporters (pointing at a
# collector that is not there); switch those off so it is measured doing what otel-run does:
# traces only. otel-run itself ignores these variables.
export OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none

# -N (no intermediate shell): nothing to subtract, and the `*` of the path template reaches
# otel-run literally instead of being globbed by a shell.
read -r -a extra <<<"${BENCH_HYPERFINE_ARGS:-}"
BASE=${OTEL_RUN_BASELINE:-}
base_cmd=()
[ -z "$BASE" ] || base_cmd=(-n otel-run-baseline "$BASE --traces-exporter jsonlines --jsonlines-path $TMP/base_*.jsonlines -- $TRUE")
hyperfine -N --warmup "${BENCH_WARMUP:-20}" \
  --export-markdown "$OUT/launch.md" --export-json "$OUT/launch.json" \
  -n true "$TRUE" \
  -n otel-run "$OTEL_RUN_BIN --traces-exporter jsonlines --jsonlines-path $TMP/bench_*.jsonlines -- $TRUE" \
  ${base_cmd[@]+"${base_cmd[@]}"} \
  -n python "$PY -c pass" \
  -n opentelemetry-instrument "$INSTR --traces_exporter console $PY -c pass" \
  ${extra[@]+"${extra[@]}"}

# sanity: otel-run really wrote span files (a no-op "launcher" would look very fast)
n=$(find "$TMP" -name 'bench_*.jsonlines' | wc -l)
echo
echo "otel-run wrote $n span files during the benchmark"
[ "$n" -gt 0 ] || { echo "bench: otel-run wrote no span file: the numbers above mean nothing" >&2; exit 1; }

"$PY" - "$OUT/launch.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
med = lambda name: r[name]["median"] * 1000
print(f"added median launch time: otel-run                 {med('otel-run') - med('true'):8.2f} ms "
      f"({med('otel-run'):.2f} vs {med('true'):.2f} ms for true)")
if "otel-run-baseline" in r:
    print(f"added median launch time: otel-run baseline        {med('otel-run-baseline') - med('true'):8.2f} ms "
          f"({med('otel-run-baseline'):.2f} vs {med('true'):.2f} ms for true)")
print(f"added median launch time: opentelemetry-instrument {med('opentelemetry-instrument') - med('python'):8.2f} ms "
      f"({med('opentelemetry-instrument'):.2f} vs {med('python'):.2f} ms for python -c pass)")
PY

# footprint while the child sleeps. otel-run execs nothing in between, so $! is otel-run itself.
# footprint LABEL BIN
footprint() {
  "$2" --traces-exporter jsonlines --jsonlines-path "$TMP/rss_*.jsonlines" -- sleep 2 &
  bg=$!
  [ "$(cat /proc/$bg/comm 2>/dev/null)" != otel-run ] && sleep 0.05   # let the exec happen
  local hwm=0 threads=0 samples=0 status h t rc=0
  while kill -0 "$bg" 2>/dev/null; do
    status=$(cat "/proc/$bg/status" 2>/dev/null) || break
    # zombie after the child exits: no memory lines any more
    h=$(awk '/^VmHWM:/{print $2}' <<<"$status"); t=$(awk '/^Threads:/{print $2}' <<<"$status")
    if [ -n "$h" ]; then
      samples=$((samples + 1))
      [ "$h" -gt "$hwm" ] && hwm=$h
      [ "$t" -gt "$threads" ] && threads=$t
    fi
    sleep 0.1
  done
  wait "$bg" || rc=$?; bg=
  echo "$1 footprint while its child sleeps 2 s ($samples samples): peak RSS (VmHWM) $hwm kB = $((hwm / 1024)) MiB, max threads $threads, exit $rc"
}
footprint otel-run "$OTEL_RUN_BIN"
[ -z "$BASE" ] || footprint "otel-run baseline" "$BASE"
echo "hyperfine tables: $OUT/launch.md  $OUT/launch.json"
