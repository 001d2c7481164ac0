#!/usr/bin/env bash
# scripts/example.sh - a real run, end to end, on a fresh Debian machine: builds otel-run and the
# MPI heat-diffusion example (examples/sim.rs, instrumented with otel-run-sdk), starts a throw-away
# single-node Slurm (scripts/slurm/start.sh) unless one is up, runs the sim on 4 ranks under
# otel-run and ends with `otel-run summary`: per-phase, per-rank timings of the job's one trace.
# Output files: target/example/rank*_*.jsonlines (spans), target/example/ckpt (checkpoints).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

scripts/install-deps.sh
cargo build --release --bin otel-run
OTEL_RUN=$REPO/target/release/otel-run

# shellcheck source=scripts/slurm/use.sh
. "$REPO/scripts/slurm/use.sh"
# Builds target/sim-openmpi/release/examples/sim (cargo build --release --features mpi --example sim
# with MPICC=mpicc.openmpi) and its MPICH twin, only when their sources changed.
scripts/build-support.sh
SIM=$REPO/target/sim-openmpi/release/examples/sim

OUT=$REPO/target/example
rm -rf "$OUT"; mkdir -p "$OUT"
cd "$OUT"
echo "\$ srun --mpi=pmix -n 4 otel-run --jsonlines-path 'rank{rank}_*.jsonlines' -- sim --steps 200 --grid 256 --checkpoint-every 50 --out ckpt"
srun --mpi=pmix -n 4 "$OTEL_RUN" --jsonlines-path 'rank{rank}_*.jsonlines' -- \
  "$SIM" --steps 200 --grid 256 --checkpoint-every 50 --out ckpt
echo
echo "\$ ls $OUT"
ls -l "$OUT"
echo
echo "\$ otel-run summary rank*_*.jsonlines"
"$OTEL_RUN" summary rank*_*.jsonlines
