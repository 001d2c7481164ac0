#!/usr/bin/env bash
# scripts/bench-merge.sh - how fast is `otel-run merge`, does its memory stay flat, and is its
# output the same as another build's?
#
# In ONE run (page cache warm, same machine state), with /usr/bin/time:
# 1. Throughput, per case of generated rank files (python lines, each file in end order as
#    otel-run writes them; default 1,024 files of 256 MB in total and 4,096 files of 128 MB):
#      cat FILES > /dev/null                       the cost of reading the bytes
#      otel-run merge --sort end|start|none        each order, python output to a file
#      otel-run merge --format chrome | otlp       the other writers
#      otel-run merge --sort end|start --no-adopt  without adoption's pre-scan
#      cat FILES | sort -S 256M -t'"' -k START     GNU sort on the start_time key (external sort)
#      sort -m -t'"' -k END FILES                  GNU sort merging the already sorted files (end)
#    input MB/s (MB = 10^6 bytes), peak RSS, and the ratios to GNU sort.
# 2. Peak RSS against the number of files (default 256, 1,024, 4,096 and 16,384 files of 128 MB in
#    total): `merge --sort end` beside `sort -m`.
# 3. With BENCH_BASELINE_BIN (another otel-run, e.g. a build of the previous commit): its merge
#    rows run right after the current ones (a before/after ratio on a shared machine), and both
#    binaries' outputs are compared byte for byte for every format and order on the first case's
#    files, on edge cases made from them (a file in reverse order, a file given twice, gzip) and on
#    the fuzz corpora of span lines (fuzz/corpus/{python_line,otlp_line,span_file}); any
#    difference fails the run.
# Results: stdout and target/bench/merge.md. Generated data is deleted at the end.
# Knobs: OTEL_RUN_BIN (default target/release/otel-run, built here), BENCH_CASES (default
#        "1024:256 4096:128", FILES:MB), BENCH_RSS_FILES (default "256 1024 4096 16384"),
#        BENCH_RSS_MB (default 128), BENCH_DIR (default target/bench/merge-data),
#        BENCH_BASELINE_BIN.
# The exact command of the numbers in the README:
#   BENCH_BASELINE_BIN=/path/to/previous/otel-run scripts/bench-merge.sh
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
OUT=$REPO/target/bench
DATA=${BENCH_DIR:-$OUT/merge-data}
CASES=${BENCH_CASES:-1024:256 4096:128}
RSS_FILES=${BENCH_RSS_FILES:-256 1024 4096 16384}
RSS_MB=${BENCH_RSS_MB:-128}
mkdir -p "$OUT"

[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
if [ -z "${OTEL_RUN_BIN:-}" ]; then
  cargo build --release --bin otel-run
  OTEL_RUN_BIN=$REPO/target/release/otel-run
fi
max_mb=$RSS_MB
for c in $CASES; do [ "${c#*:}" -gt "$max_mb" ] && max_mb=${c#*:}; done
need_mb=$(( max_mb * 5 ))   # the data, its edge cases, two outputs at a time, temporary runs
avail_mb=$(df -Pm "$OUT" | awk 'NR == 2 {print $4}')
df -h "$OUT" >&2
[ "$avail_mb" -gt "$need_mb" ] || { echo "bench: need ~$need_mb MB free in $OUT, have $avail_mb" >&2; exit 1; }
cleanup() { rm -rf "$DATA" "$OUT/merge-cmp" "$OUT/merge-out"; }
trap cleanup EXIT

# gen FILES SIZE_MB: FILES rank files of ~SIZE_MB MB in total, one trace, each file in end order.
gen() {
  rm -rf "$DATA"; mkdir -p "$DATA"
  python3 - "$DATA" "$2" "$1" <<'PY'
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
    with open(os.path.join(data, "rank%05d.jsonl" % rank), "w") as f:
        f.write("".join(out))
PY
}

# The '"'-separated field numbers of start_time's and end_time's values (every line has the
# same shape, so GNU sort can use them as keys; ISO timestamps sort as text).
key_of() { head -n1 "$DATA/rank00000.jsonl" | awk -F'"' -v k="$1" '{for (i = 1; i <= NF; i++) if ($i == k) {print i + 2; exit}}'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -a rows
declare -A SECS RSS
# measure LABEL BYTES CMD...: elapsed seconds and peak RSS (KiB) of CMD via /usr/bin/time.
measure() {
  local label=$1 bytes=$2; shift 2
  local tf; tf=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$tf" bash -c "$*" >/dev/null 2>"$OUT/merge-last.err" ||
    { echo "bench: '$label' failed:" >&2; tail -5 "$OUT/merge-last.err" >&2; exit 1; }
  read -r secs rss <"$tf"; rm -f "$tf"
  SECS[$label]=$secs; RSS[$label]=$rss
  local mbs; mbs=$(mbs "$bytes" "$secs")
  rows+=("$(printf '| %-44s | %8s | %7s | %9.1f |' "$label" "$secs" "$mbs" "$(mib "$rss")")")
  printf '%-46s %7ss %6s MB/s  peak RSS %7.1f MiB\n' "$label" "$secs" "$mbs" "$(mib "$rss")"
  rm -f "$OUT/merge-out"
}
mbs() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.0f", (s > 0 ? b / 1e6 / s : 0)}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
# ratio A B: how many times faster A ran than B (B's seconds / A's).
ratio() { awk -v a="${SECS[$1]}" -v b="${SECS[$2]}" 'BEGIN {printf "%.2f", (a > 0 ? b / a : 0)}'; }
merge_cmd() { echo "'$1' merge -q ${*:2} '$DATA/*.jsonl' -o '$OUT/merge-out'"; }

first_case=
for c in $CASES; do
  files=${c%%:*} size=${c#*:}
  echo "== generating $files rank files, ~$size MB" >&2
  gen "$files" "$size"
  bytes=$(cat "$DATA"/*.jsonl | wc -c)
  spans=$(cat "$DATA"/*.jsonl | wc -l)
  sk=$(key_of start_time); ek=$(key_of end_time)
  echo "== $files files, $bytes bytes, $spans spans" | tee -a /dev/stderr
  rows+=("" "**$files files, $((bytes / 1000000)) MB, $spans spans**" "" \
         "| command | seconds | MB/s | peak RSS MiB |" "|---|---:|---:|---:|")
  cat "$DATA"/*.jsonl >/dev/null   # warm the page cache for everyone alike
  measure "cat > /dev/null" "$bytes" "cat '$DATA'/*.jsonl"
  for sort in end start none; do
    measure "otel-run merge --sort $sort" "$bytes" "$(merge_cmd "$OTEL_RUN_BIN" --sort $sort)"
  done
  measure "otel-run merge --format chrome" "$bytes" "$(merge_cmd "$OTEL_RUN_BIN" --format chrome)"
  measure "otel-run merge --format otlp" "$bytes" "$(merge_cmd "$OTEL_RUN_BIN" --format otlp)"
  measure "otel-run merge --format otlp --sort end" "$bytes" \
    "$(merge_cmd "$OTEL_RUN_BIN" --format otlp --sort end)"
  # The cost of adoption's pre-scan (every file read once more, only otel-run's own lines
  # parsed): the same merges without it, in the same run.
  for sort in end start; do
    measure "otel-run merge --sort $sort --no-adopt" "$bytes" \
      "$(merge_cmd "$OTEL_RUN_BIN" --sort $sort --no-adopt)"
  done
  if [ -n "${BENCH_BASELINE_BIN:-}" ]; then
    for sort in end start none; do
      measure "baseline merge --sort $sort" "$bytes" "$(merge_cmd "$BENCH_BASELINE_BIN" --sort $sort)"
    done
    measure "baseline merge --format chrome" "$bytes" \
      "$(merge_cmd "$BENCH_BASELINE_BIN" --format chrome)"
    measure "baseline merge --format otlp" "$bytes" \
      "$(merge_cmd "$BENCH_BASELINE_BIN" --format otlp)"
    measure "baseline merge --format otlp --sort end" "$bytes" \
      "$(merge_cmd "$BENCH_BASELINE_BIN" --format otlp --sort end)"
  fi
  measure "cat | sort -S 256M (start_time key)" "$bytes" \
    "cat '$DATA'/*.jsonl | LC_ALL=C sort -S 256M -T '$OUT' -t'\"' -k$sk,$sk > '$OUT/merge-out'"
  measure "sort -m (end_time key, files pre-sorted)" "$bytes" \
    "LC_ALL=C sort -m -T '$OUT' -t'\"' -k$ek,$ek '$DATA'/*.jsonl > '$OUT/merge-out'"
  summary="ratios (>1: otel-run faster): --sort end / sort -m $(ratio "otel-run merge --sort end" "sort -m (end_time key, files pre-sorted)"), --sort start / sort -S $(ratio "otel-run merge --sort start" "cat | sort -S 256M (start_time key)")"
  if [ -n "${BENCH_BASELINE_BIN:-}" ]; then
    summary+=", against the baseline: end $(ratio "otel-run merge --sort end" "baseline merge --sort end"), start $(ratio "otel-run merge --sort start" "baseline merge --sort start"), chrome $(ratio "otel-run merge --format chrome" "baseline merge --format chrome"), otlp $(ratio "otel-run merge --format otlp" "baseline merge --format otlp"), otlp end $(ratio "otel-run merge --format otlp --sort end" "baseline merge --format otlp --sort end")"
  fi
  rows+=("" "$summary")
  echo "$summary"

  if [ -z "$first_case" ] && [ -n "${BENCH_BASELINE_BIN:-}" ]; then
    first_case=done
    # Edge cases beside the generated files: a file in reverse order (beyond any window), the
    # same file twice (duplicates), a gzip copy; then the fuzz corpora's span lines.
    cmp_dir=$OUT/merge-cmp; rm -rf "$cmp_dir"; mkdir -p "$cmp_dir"
    tac "$DATA/rank00001.jsonl" >"$cmp_dir/reversed.jsonl"
    gzip -c "$DATA/rank00002.jsonl" >"$cmp_dir/gzipped.jsonl.gz"
    compared=0 differ=0
    compare() {  # compare ARGS...: both binaries, same arguments, same status and output
      local a="$cmp_dir/a" b="$cmp_dir/b" sa=0 sb=0
      "$OTEL_RUN_BIN" merge -q "$@" >"$a" 2>/dev/null || sa=$?
      "$BENCH_BASELINE_BIN" merge -q "$@" >"$b" 2>/dev/null || sb=$?
      compared=$((compared + 1))
      if [ "$sa" != "$sb" ] || ! cmp -s "$a" "$b"; then
        differ=$((differ + 1)); echo "bench: DIFFERENT output (status $sa vs $sb): merge $*" >&2
      fi
      rm -f "$a" "$b"
    }
    for format in python otlp chrome; do
      for sort in start end none; do
        compare --format $format --sort $sort "$DATA/*.jsonl"
        compare --format $format --sort $sort --repair "$DATA/rank0000[0-7].jsonl" "$cmp_dir/reversed.jsonl" \
          "$DATA/rank00003.jsonl" "$DATA/rank00003.jsonl" "$cmp_dir/gzipped.jsonl.gz"
        for corpus in python_line otlp_line span_file; do
          for f in fuzz/corpus/$corpus/*; do
            compare --format $format --sort $sort --skip-invalid "$f"
          done
        done
      done
    done
    line="output against the baseline: $compared merges compared, $differ different"
    rows+=("" "$line"); echo "$line"
  fi
done

rows+=("" "**Peak RSS against the number of files ($RSS_MB MB in total each)**" "" \
       "| files | MB | merge --sort end s | MB/s | RSS MiB | sort -m s | MB/s | RSS MiB | end / sort -m |" \
       "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for files in $RSS_FILES; do
  echo "== generating $files rank files, ~$RSS_MB MB" >&2
  gen "$files" "$RSS_MB"
  bytes=$(cat "$DATA"/*.jsonl | wc -c)
  ek=$(key_of end_time)
  saved=("${rows[@]}")
  measure "merge $files" "$bytes" "$(merge_cmd "$OTEL_RUN_BIN" --sort end)"
  measure "sort -m $files" "$bytes" \
    "LC_ALL=C sort -m -T '$OUT' -t'\"' -k$ek,$ek '$DATA'/*.jsonl > '$OUT/merge-out'"
  rows=("${saved[@]}")
  rows+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |' "$files" "$((bytes / 1000000))" \
    "${SECS[merge $files]}" "$(mbs "$bytes" "${SECS[merge $files]}")" "$(mib "${RSS[merge $files]}")" \
    "${SECS[sort -m $files]}" "$(mbs "$bytes" "${SECS[sort -m $files]}")" "$(mib "${RSS[sort -m $files]}")" \
    "$(ratio "merge $files" "sort -m $files")")")
  echo "${rows[-1]}"
done

{
  echo "# otel-run merge benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, $("$OTEL_RUN_BIN" --version))"
  echo
  echo "Load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every row alike)."
  printf '%s\n' "${rows[@]}"
} >"$OUT/merge.md"
echo "written: $OUT/merge.md" >&2
[ "${differ:-0}" -eq 0 ] || { echo "bench: outputs differ from the baseline" >&2; exit 1; }
