#!/usr/bin/env bash
# scripts/example.sh - a real run, end to end, on a fresh Debian machine: builds otel-run, starts a
# throw-away single-node Slurm (scripts/slurm/start.sh), runs a 4-rank MPI job under otel-run and
# shows the span files and the one trace they form. Stops Slurm again if it started it.
# Output files: target/example/rank*_*.jsonlines
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

scripts/install-deps.sh
cargo build --release --bin otel-run
OTEL_RUN=$REPO/target/release/otel-run

# shellcheck source=scripts/slurm/use.sh
. "$REPO/scripts/slurm/use.sh"
scripts/build-support.sh

OUT=$REPO/target/example
rm -rf "$OUT"; mkdir -p "$OUT"
echo "\$ srun --mpi=pmix -n 4 otel-run --jsonlines-path '$OUT/rank{rank}_*.jsonlines' -- mpi_hello.openmpi"
srun --mpi=pmix -n 4 "$OTEL_RUN" --jsonlines-path "$OUT/rank{rank}_*.jsonlines" -- target/test-support/mpi_hello.openmpi
echo
echo "\$ ls $OUT"
ls -l "$OUT"
echo
echo "One trace, one step root (rank 0), one process span per rank:"
"${OTEL_RUN_VENV:-$REPO/target/venv}/bin/python" - "$OUT"/rank*_*.jsonlines <<'PY'
import json, sys
spans = [json.loads(l) for f in sys.argv[1:] for l in open(f)]
by_parent = {}
for s in spans:
    by_parent.setdefault(s["parent_id"], []).append(s)
def show(s, depth):
    r = s["resource"]["attributes"]
    print(f'{"  " * depth}{s["name"]}  rank={r["mpi.rank"]}  trace={s["context"]["trace_id"]}  status={s["status"]["status_code"]}')
    for c in sorted(by_parent.get(s["context"]["span_id"], []), key=lambda c: c["resource"]["attributes"]["mpi.rank"]):
        show(c, depth + 1)
for root in by_parent.get(None, []):
    show(root, 0)
PY
