#!/usr/bin/env bash
# scripts/bench-merge.sh - how fast is `otel-run merge`, and does its memory stay flat?
#
# Generates 1024 rank files in the python line format (each in end-time order, as otel-run writes
# them) at two total sizes (default 0.5 and 1 GiB), then, in ONE run per size (page cache warm,
# same machine state), times with /usr/bin/time:
#   cat FILES > /dev/null                       the cost of reading the bytes
#   otel-run merge --sort end|start|none        each order, output to a file
#   otel-run merge --sort end|start --no-adopt  the same without adoption's pre-scan
#   cat FILES | sort -S 256M -t'"' -k START     GNU sort on the start_time key (external sort)
#   sort -m -t'"' -k END FILES                  GNU sort merging the already sorted files (end)
# and prints throughput (input MB/s, MB = 10^6 bytes) and peak RSS for each.
# Results: stdout and target/bench/merge.md. Generated data is deleted at the end.
# Knobs: OTEL_RUN_BIN (default target/release/otel-run, built here), BENCH_SIZES_MB (default
#        "512 1024"), BENCH_FILES (default 1024), BENCH_DIR (default target/bench/merge-data),
#        BENCH_BASELINE_BIN (another otel-run, e.g. a build of the previous commit: its merge
#        rows run in the same run, right after the current ones, for a before/after ratio on a
#        shared machine).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
OUT=$REPO/target/bench
DATA=${BENCH_DIR:-$OUT/merge-data}
SIZES=${BENCH_SIZES_MB:-512 1024}
FILES=${BENCH_FILES:-1024}
mkdir -p "$OUT"

[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
if [ -z "${OTEL_RUN_BIN:-}" ]; then
  cargo build --release --bin otel-run
  OTEL_RUN_BIN=$REPO/target/release/otel-run
fi
need_mb=$(( ${SIZES##* } * 4 ))   # the data, two outputs at a time and sort's temporary files
avail_mb=$(df -Pm "$OUT" | awk 'NR == 2 {print $4}')
df -h "$OUT" >&2
[ "$avail_mb" -gt "$need_mb" ] || { echo "bench: need ~$need_mb MB free in $OUT, have $avail_mb" >&2; exit 1; }
cleanup() { rm -rf "$DATA"; }
trap cleanup EXIT

# gen SIZE_MB: FILES rank files of ~SIZE_MB MB in total, one trace, each file in end order.
gen() {
  rm -rf "$DATA"; mkdir -p "$DATA"
  python3 - "$DATA" "$1" "$FILES" <<'PY'
import os, random, sys
data, size_mb, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(1)
trace = "0x" + "%032x" % random.getrandbits(128)
step = "0x%016x" % random.getrandbits(64)
def iso(ns):
    s, frac = divmod(ns, 10**9)
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%09dZ" % frac
per_file = size_mb * 10**6 // files
t0 = 1_700_000_000 * 10**9
for rank in range(files):
    res = ('"resource": {"attributes": {"service.name": "sim", "host.name": "node%d", '
           '"mpi.rank": %d, "mpi.size": %d}, "schema_url": ""}' % (rank // 32, rank, files))
    proc = "0x%016x" % random.getrandbits(64)
    out, size, t, i = [], 0, t0 + random.randrange(10**9), 0
    start = t
    while size < per_file - 600:
        dur = random.randrange(10**5, 10**7)
        line = ('{"name": "iteration", "context": {"trace_id": "%s", "span_id": "0x%016x", '
                '"trace_state": "[]"}, "kind": "SpanKind.INTERNAL", "parent_id": "%s", '
                '"start_time": "%s", "end_time": "%s", "status": {"status_code": "UNSET"}, '
                '"attributes": {"i": %d, "solver": "cg", "residual": %.6g}, "events": [], '
                '"links": [], %s, "instrumentation_scope": {"name": "sim", "version": "1.0"}}\n'
                % (trace, random.getrandbits(64), proc, iso(t), iso(t + dur), i,
                   random.random(), res))
        out.append(line); size += len(line); t += dur + random.randrange(1000); i += 1
    out.append('{"name": "process sim", "context": {"trace_id": "%s", "span_id": "%s", '
               '"trace_state": "[]"}, "kind": "SpanKind.INTERNAL", "parent_id": "%s", '
               '"start_time": "%s", "end_time": "%s", "status": {"status_code": "UNSET"}, '
               '"attributes": {"otel_run.span": "process", "process.exit.code": 0}, '
               '"events": [], "links": [], %s, "instrumentation_scope": {"name": "otel-run", '
               '"version": "0.1.0"}}\n' % (trace, proc, step, iso(start - 1000), iso(t + 1000), res))
    if rank == 0:
        # rank 0 writes the step root; its parent is an outer span (TRACEPARENT) not in the files
        out.append(out[-1].replace('"process sim"', '"step sim"').replace(proc, step, 1)
                   .replace('"parent_id": "%s"' % step, '"parent_id": "0x%016x"' % 1, 1)
                   .replace('"otel_run.span": "process"', '"otel_run.span": "step"'))
    with open(os.path.join(data, "rank%04d.jsonl" % rank), "w") as f:
        f.write("".join(out))
PY
}

# The '"'-separated field numbers of start_time's and end_time's values (every line has the
# same shape, so GNU sort can use them as keys; ISO timestamps sort as text).
key_of() { head -n1 "$DATA/rank0000.jsonl" | awk -F'"' -v k="$1" '{for (i = 1; i <= NF; i++) if ($i == k) {print i + 2; exit}}'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -a rows
# measure LABEL CMD...: elapsed seconds and peak RSS (KiB) of CMD via /usr/bin/time.
measure() {
  local label=$1 bytes=$2; shift 2
  local tf; tf=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$tf" bash -c "$*" >/dev/null 2>"$OUT/merge-last.err" ||
    { echo "bench: '$label' failed:" >&2; tail -5 "$OUT/merge-last.err" >&2; exit 1; }
  read -r secs rss <"$tf"; rm -f "$tf"
  local mbs; mbs=$(awk -v b="$bytes" -v s="$secs" 'BEGIN {printf "%.0f", (s > 0 ? b / 1e6 / s : 0)}')
  rows+=("$(printf '| %-44s | %8s | %7s | %9.1f |' "$label" "$secs" "$mbs" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')")")
  printf '%-46s %7ss %6s MB/s  peak RSS %7.1f MiB\n' "$label" "$secs" "$mbs" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')"
  rm -f "$OUT/merge-out"
}

for size in $SIZES; do
  echo "== generating $FILES rank files, ~$size MB" >&2
  gen "$size"
  bytes=$(cat "$DATA"/*.jsonl | wc -c)
  spans=$(cat "$DATA"/*.jsonl | wc -l)
  sk=$(key_of start_time); ek=$(key_of end_time)
  echo "== $FILES files, $bytes bytes, $spans spans" | tee -a /dev/stderr
  rows+=("" "**$FILES files, $((bytes / 1000000)) MB, $spans spans**" "" \
         "| command | seconds | MB/s | peak RSS MiB |" "|---|---:|---:|---:|")
  cat "$DATA"/*.jsonl >/dev/null   # warm the page cache for everyone alike
  measure "cat > /dev/null" "$bytes" "cat '$DATA'/*.jsonl"
  for sort in end start none; do
    measure "otel-run merge --sort $sort" "$bytes" \
      "'$OTEL_RUN_BIN' merge -q --sort $sort '$DATA/*.jsonl' -o '$OUT/merge-out'"
  done
  # The cost of adoption's pre-scan (every file read once more, only otel-run's own lines
  # parsed): the same merges without it, in the same run.
  for sort in end start; do
    measure "otel-run merge --sort $sort --no-adopt" "$bytes" \
      "'$OTEL_RUN_BIN' merge -q --sort $sort --no-adopt '$DATA/*.jsonl' -o '$OUT/merge-out'"
  done
  if [ -n "${BENCH_BASELINE_BIN:-}" ]; then
    for sort in end start none; do
      measure "baseline merge --sort $sort" "$bytes" \
        "'$BENCH_BASELINE_BIN' merge -q --sort $sort '$DATA/*.jsonl' -o '$OUT/merge-out'"
    done
  fi
  measure "otel-run merge --sort end --format chrome" "$bytes" \
    "'$OTEL_RUN_BIN' merge -q --sort end --format chrome '$DATA/*.jsonl' -o '$OUT/merge-out'"
  measure "cat | sort -S 256M (start_time key)" "$bytes" \
    "cat '$DATA'/*.jsonl | LC_ALL=C sort -S 256M -T '$OUT' -t'\"' -k$sk,$sk > '$OUT/merge-out'"
  measure "sort -m (end_time key, files pre-sorted)" "$bytes" \
    "LC_ALL=C sort -m -t'\"' -k$ek,$ek '$DATA'/*.jsonl > '$OUT/merge-out'"
done

{
  echo "# otel-run merge benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, $("$OTEL_RUN_BIN" --version))"
  echo
  echo "Load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every row alike)."
  printf '%s\n' "${rows[@]}"
} >"$OUT/merge.md"
echo "written: $OUT/merge.md" >&2
