#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), two at a time (the machine has 2 cores),
# then prints the executions per target. Needs nightly and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
# New interesting inputs are added to fuzz/corpus/<target>/; crashes land in
# fuzz/artifacts/<target>/ (minimise with `cargo +nightly fuzz tmin <target> <file>`).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
JOBS=${FUZZ_JOBS:-2}
# target:max_len — lines and requests need room for real spans; the small parsers do not.
TARGETS=(
  python_line:65536
  otlp_line:65536
  span_file:16384
  sink_request:65536
  grpc_request:65536
  iso_time:64
  trace_context:256
  key_value_list:1024
  path_template:512
)
cargo +nightly fuzz build -O
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
run() {
  local target=${1%%:*} max_len=${1##*:}
  mkdir -p "fuzz/corpus/$target"
  if cargo +nightly fuzz run -O "$target" "fuzz/corpus/$target" -- \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=512 -max_len="$max_len" -timeout=10 \
      -print_final_stats=1 >"$LOGS/$target.log" 2>&1; then
    echo "ok $target"
  else
    echo "FAILED $target (log below)"
    tail -40 "$LOGS/$target.log"
    echo 1 >"$LOGS/$target.failed"
  fi
}
for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run "$t" &
done
wait
printf '\n%-16s %14s %8s\n' target executions seconds
for t in "${TARGETS[@]%%:*}"; do
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$LOGS/$t.log" | grep -o '[0-9]*$' || echo '?')
  printf '%-16s %14s %8s\n' "$t" "$execs" "$SECONDS_EACH"
done
if ls "$LOGS"/*.failed >/dev/null 2>&1; then exit 1; fi
