#!/usr/bin/env bash
# scripts/bench-parse.sh - span-file parse throughput of this otel-run against another build of
# otel-run (the "before"), side by side in one run, with the ratio.
#
#   BENCH_BASELINE_BIN=/path/to/older/otel-run scripts/bench-parse.sh [N_SPANS]   (default 300000)
#
# Without BENCH_BASELINE_BIN only this build is measured; several baselines: separate them with `:`. Both binaries run the same commands on
# the same files, alternating, ROUNDS times (default 3; the best CPU time of each is kept: the
# machine is shared and noise only ever adds time):
#   replay --dry-run python    the python-line reader (replay's checking pass, sketches)
#   replay --dry-run otlp      the otlp-line reader (the same spans as OTLP/JSON lines)
#   merge --sort end           merge's reading and ordering of the python file (output python)
#   merge --sort none          ... without ordering (reading and copying)
# Throughput is spans per CPU-second (user+sys from /usr/bin/time); ratio = this / baseline
# (above 1: this build is faster). Files: target/bench/parse-*.jsonl, deleted at the end unless
# BENCH_KEEP=1. Knobs: OTEL_RUN_BIN (default target/release/otel-run, built here), ROUNDS.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
N=${1:-300000}
ROUNDS=${ROUNDS:-3}
OUT=$REPO/target/bench
PY=$OUT/parse-$N.jsonl
OTLP=$OUT/parse-$N-otlp.jsonl
mkdir -p "$OUT"
[ -x /usr/bin/time ] || { echo "bench-parse: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
if [ -z "${OTEL_RUN_BIN:-}" ]; then
  cargo build --release --quiet --bin otel-run
  OTEL_RUN_BIN=$REPO/target/release/otel-run
fi
BASE=${BENCH_BASELINE_BIN:-}
cleanup() { [ -n "${BENCH_KEEP:-}" ] || rm -f "$PY" "$OTLP" "$OUT/parse-out"; }
trap cleanup EXIT

[ -s "$PY" ] || python3 scripts/gen-spans.py "$N" 64 "$PY"
[ -s "$OTLP" ] || "$OTEL_RUN_BIN" merge -q --sort none --format otlp "$PY" -o "$OTLP"

# cpu BIN ARGS...: user+sys seconds of one run (output discarded).
cpu() {
  local tf; tf=$(mktemp)
  /usr/bin/time -f '%U %S' -o "$tf" "$@" >/dev/null 2>"$OUT/parse-err.txt" ||
    { echo "bench-parse: $* failed:" >&2; tail -5 "$OUT/parse-err.txt" >&2; rm -f "$tf"; exit 1; }
  awk '{printf "%.3f", $1 + $2}' "$tf"; rm -f "$tf"
}
min() { awk -v a="$1" -v b="$2" 'BEGIN {print (b == "" || a < b) ? a : b}'; }

CASES=("replay --dry-run python" "replay --dry-run otlp" "merge --sort end" "merge --sort none")
args_of() {
  case $1 in
    "replay --dry-run python") echo "replay -q --dry-run $PY" ;;
    "replay --dry-run otlp") echo "replay -q --dry-run $OTLP" ;;
    "merge --sort end") echo "merge -q --sort end $PY -o $OUT/parse-out" ;;
    "merge --sort none") echo "merge -q --sort none $PY -o $OUT/parse-out" ;;
  esac
}

echo "bench-parse: $N spans ($(du -m "$PY" | cut -f1) MB python, $(du -m "$OTLP" | cut -f1) MB otlp), $ROUNDS rounds, $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# BINS[0] is this build, then each baseline; best[i,case] the best CPU seconds of BINS[i].
BINS=("$OTEL_RUN_BIN")
if [ -n "$BASE" ]; then
  IFS=: read -r -a more <<<"$BASE"
  BINS+=("${more[@]}")
fi
declare -A best
for round in $(seq "$ROUNDS"); do
  for c in "${CASES[@]}"; do
    for i in "${!BINS[@]}"; do
      # shellcheck disable=SC2046 # the arguments are plain words
      t=$(cpu "${BINS[$i]}" $(args_of "$c")); best[$i,$c]=$(min "$t" "${best[$i,$c]:-}")
    done
  done
  echo "bench-parse: round $round done" >&2
done

printf '\n%-26s %14s' "$N spans" "this"
for i in "${!BINS[@]}"; do [ "$i" = 0 ] || printf ' %14s %7s' "base$i" "ratio"; done
printf '\n'
for c in "${CASES[@]}"; do
  printf '%-26s %14.0f' "$c" "$(awk -v n="$N" -v a="${best[0,$c]}" 'BEGIN {print n / a}')"
  for i in "${!BINS[@]}"; do
    [ "$i" = 0 ] && continue
    awk -v n="$N" -v a="${best[0,$c]}" -v b="${best[$i,$c]}" 'BEGIN {printf " %14.0f %7.3f", n / b, b / a}'
  done
  printf '\n'
done
echo "(spans per CPU-second, best of $ROUNDS runs each; ratio = this / base, above 1: this is faster)"
for i in "${!BINS[@]}"; do
  if [ "$i" = 0 ]; then echo "this:  ${BINS[$i]}"; else echo "base$i: ${BINS[$i]}"; fi
done
