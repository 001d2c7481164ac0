#!/usr/bin/env bash
# scripts/bench-report.sh - how fast is `otel-run report`, how big is its page, and how soon does
# the page show the job in a real browser?
#
# Generates one python-format span file with scripts/gen-spans.py (default 1,000,000 spans over
# 1,024 ranks, ~700 bytes per span like bsb-otel's files), then in ONE run (page cache warm, same
# machine state):
#   cat FILE > /dev/null                          the cost of reading the bytes
#   otel-run report FILE -o report.html           this page
#   otel-run merge --format chrome FILE -o ...    the peer: a Chrome/Perfetto trace of the same job
# with input MB/s (MB = 10^6 bytes) and peak RSS from /usr/bin/time, the page's size, and then
# opens the page in headless Chromium (the flags of tests/report.rs): the page records, with the
# Performance API clock (ms since navigation start), when its script started (the HTML, model
# included, is parsed by then), the model was parsed, the rows were built and the first frame was
# drawn; read back through --dump-dom. The browser's whole run (start-up included) is timed next to
# the same browser opening an empty page, BENCH_OPENS times each, once taking a screenshot (load +
# first paint) and once dumping the DOM (which adds serialising the 30 MB page). Then (with node)
# the page is driven like a person would (hover, ctrl+wheel zoom, drag pan, print) and the time
# each frame took to draw is read back.
# Results: stdout and target/bench/report.md. Generated data is deleted at the end.
# Knobs: OTEL_RUN_BIN (default target/release/otel-run, built here), BENCH_SPANS (1000000),
#        BENCH_RANKS (1024), BENCH_OPENS (3), BENCH_DIR (target/bench/report-data),
#        CHROMIUM (chromium).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
OUT=$REPO/target/bench
DATA=${BENCH_DIR:-$OUT/report-data}
SPANS=${BENCH_SPANS:-1000000}
RANKS=${BENCH_RANKS:-1024}
OPENS=${BENCH_OPENS:-3}
CHROMIUM=${CHROMIUM:-chromium}
mkdir -p "$OUT"

[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
command -v "$CHROMIUM" >/dev/null || { echo "bench: no $CHROMIUM (scripts/install-deps.sh installs it)" >&2; exit 1; }
if [ -z "${OTEL_RUN_BIN:-}" ]; then
  cargo build --release --bin otel-run
  OTEL_RUN_BIN=$REPO/target/release/otel-run
fi
rm -rf "$DATA"; mkdir -p "$DATA"
cleanup() { rm -rf "$DATA"; }
trap cleanup EXIT

echo "== generating $SPANS spans over $RANKS ranks" >&2
python3 scripts/gen-spans.py "$SPANS" "$RANKS" "$DATA/job.jsonlines"
bytes=$(wc -c <"$DATA/job.jsonlines")
cat "$DATA/job.jsonlines" >/dev/null   # warm the page cache for everyone alike

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -a rows
measure() {
  local label=$1; shift
  local tf; tf=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$tf" bash -c "$*" >/dev/null 2>"$OUT/report-last.err" ||
    { echo "bench: '$label' failed:" >&2; tail -5 "$OUT/report-last.err" >&2; exit 1; }
  read -r secs rss <"$tf"; rm -f "$tf"
  local mbs; mbs=$(awk -v b="$bytes" -v s="$secs" 'BEGIN {printf "%.0f", (s > 0 ? b / 1e6 / s : 0)}')
  local mib; mib=$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')
  rows+=("$(printf '| %-46s | %8s | %7s | %9s |' "$label" "$secs" "$mbs" "$mib")")
  printf '%-48s %7ss %6s MB/s  peak RSS %7s MiB\n' "$label" "$secs" "$mbs" "$mib"
}
rows+=("**input: $SPANS spans, $RANKS ranks, $((bytes / 1000000)) MB (python lines)**" "" \
       "| command | seconds | MB/s in | peak RSS MiB |" "|---|---:|---:|---:|")
measure "cat > /dev/null" "cat '$DATA/job.jsonlines'"
measure "otel-run report" "'$OTEL_RUN_BIN' report -q '$DATA/job.jsonlines' -o '$DATA/report.html'"
measure "otel-run merge --format chrome" "'$OTEL_RUN_BIN' merge -q --format chrome '$DATA/job.jsonlines' -o '$DATA/job.json'"
page=$(wc -c <"$DATA/report.html"); chrome=$(wc -c <"$DATA/job.json")
rows+=("" "page: $page bytes ($(awk -v p="$page" -v n="$SPANS" 'BEGIN {printf "%.1f", p / n}') bytes/span); Chrome JSON of the same job: $chrome bytes" "")

# open PAGE: one headless Chromium run with a fresh profile; prints "wall_s probe-json".
open_page() {
  local prof; prof=$(mktemp -d)
  local t0; t0=$(date +%s%N)
  local dom
  dom=$("$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
      --disable-background-networking --disable-component-update --disable-sync \
      --disable-extensions --window-size=1400,1100 --user-data-dir="$prof" --dump-dom "file://$1" 2>/dev/null)
  local wall; wall=$(awk -v d=$(( $(date +%s%N) - t0 )) 'BEGIN {printf "%.2f", d / 1e9}')
  rm -rf "$prof"
  local probe; probe=$(printf '%s' "$dom" | python3 -c '
import html, json, re, sys
m = re.search(r"<output id=\"probe\"[^>]*>(.*?)</output>", sys.stdin.read(), re.S)
p = json.loads(html.unescape(m.group(1))) if m and m.group(1) else {}
t = p.get("timing", {})
print(json.dumps({k: t.get(k) for k in ("scriptStart", "parsed", "built", "drawn")} | {"ready": p.get("ready"), "errors": p.get("errors")}))')
  echo "$wall $probe"
}
printf '<!doctype html><title>empty</title><p>empty' >"$DATA/empty.html"
# shot PAGE: wall seconds of one headless Chromium run that screenshots PAGE (start-up, load, the
# first frame painted and captured; no DOM serialisation, which --dump-dom adds for 30 MB).
shot() {
  local prof; prof=$(mktemp -d)
  local t0; t0=$(date +%s%N)
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --disable-extensions \
    --hide-scrollbars --window-size=1400,1100 --user-data-dir="$prof" --screenshot="$DATA/shot.png" "file://$1" >/dev/null 2>&1
  awk -v d=$(( $(date +%s%N) - t0 )) 'BEGIN {printf "%.2f", d / 1e9}'
  rm -rf "$prof" "$DATA/shot.png"
}
rows+=("| headless Chromium, --screenshot | run | browser wall s |" "|---|---:|---:|")
for i in $(seq "$OPENS"); do
  e=$(shot "$DATA/empty.html"); r=$(shot "$DATA/report.html")
  rows+=("| empty page | $i | $e |" "| report of $SPANS spans | $i | $r |")
  echo "screenshot, run $i: empty page ${e}s, report ${r}s"
done
rows+=("")
rows+=("| headless Chromium, --dump-dom | run | browser wall s | script start ms | model parsed ms | rows built ms | first frame drawn ms |" "|---|---:|---:|---:|---:|---:|---:|")
for i in $(seq "$OPENS"); do
  read -r wall probe < <(open_page "$DATA/empty.html")
  rows+=("| empty page | $i | $wall | | | | |")
  echo "empty page, run $i: browser wall ${wall}s"
  read -r wall probe < <(open_page "$DATA/report.html")
  cols=$(python3 -c 'import json,sys; p=json.loads(sys.argv[1]); print(" | ".join(str(p[k]) for k in ("scriptStart","parsed","built","drawn")))' "$probe")
  ok=$(python3 -c 'import json,sys; p=json.loads(sys.argv[1]); print("ok" if p["ready"] and not p["errors"] else "NOT READY / ERRORS: %s" % p)' "$probe")
  [ "$ok" = ok ] || { echo "bench: the page did not open cleanly: $ok" >&2; exit 1; }
  rows+=("| report of $SPANS spans | $i | $wall | $cols |")
  echo "report page, run $i: browser wall ${wall}s, page timing (ms since navigation): $probe"
done

# Responsiveness: hover, ctrl+wheel zoom, drag pan and print driven through the DevTools pipe
# (tests/support/report_drive.js); the page times each frame it draws.
if command -v node >/dev/null; then
  for i in $(seq "$OPENS"); do
    frames=$(node tests/support/report_drive.js "$CHROMIUM" "$DATA/report.html" | python3 -c '
import json, statistics, sys
d = json.load(sys.stdin)
assert not d["errors"] and not d["console"], d
ms = d["drawMs"]
print(len(ms), ms[0], round(statistics.median(ms[1:]), 1), max(ms[1:]))')
    read -r n first median max <<<"$frames"
    [ "$i" = 1 ] && rows+=("| frames drawn while driven (hover, zoom, pan, print) | run | frames | first ms | later: median ms | later: max ms |" "|---|---:|---:|---:|---:|---:|")
    rows+=("| report of $SPANS spans | $i | $n | $first | $median | $max |")
    echo "driven, run $i: $n frames, first ${first} ms, later median ${median} ms, max ${max} ms"
  done
  rows+=("")
fi

{
  echo "# otel-run report benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, $("$OTEL_RUN_BIN" --version), $("$CHROMIUM" --version 2>/dev/null | head -1))"
  echo
  echo "Load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every row alike)."
  echo
  printf '%s\n' "${rows[@]}"
} >"$OUT/report.md"
echo "written: $OUT/report.md" >&2
