#!/usr/bin/env bash
# scripts/build-support.sh - build the native helper programs the tests run:
#   tests/support/mpi_hello.c -> target/test-support/mpi_hello.openmpi (mpicc.openmpi)
#                              -> target/test-support/mpi_hello.mpich   (mpicc.mpich)
#   examples/sim.rs (cargo feature `mpi`, otel-run-sdk + rsmpi)
#                              -> target/sim-openmpi/release/examples/sim (MPICC=mpicc.openmpi)
#                              -> target/sim-mpich/release/examples/sim   (MPICC=mpicc.mpich)
# Rebuilds only what changed (mtime for the C programs, cargo's fingerprints for the sim).
# rsmpi's build (build-probe-mpi) asks $MPICC for the flags of the MPI to link, and its build
# script does not rerun when MPICC changes: hence one target directory per MPI.
# Both MPIs are installed side by side (scripts/install-deps.sh); the .openmpi/.mpich compiler
# names pick one explicitly, because plain `mpicc` follows whichever alternative won last.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$REPO/target/test-support
SRC=$REPO/tests/support/mpi_hello.c
mkdir -p "$OUT"

for mpi in openmpi mpich; do
  cc=mpicc.$mpi bin=$OUT/mpi_hello.$mpi
  command -v "$cc" >/dev/null || { echo "build-support: no $cc (run scripts/install-deps.sh)" >&2; exit 1; }
  if [ ! -x "$bin" ] || [ "$SRC" -nt "$bin" ]; then
    # build to a temp name and rename, so an interrupted build never leaves a half-written binary
    "$cc" -O2 -Wall -o "$bin.tmp" "$SRC"
    mv -f "$bin.tmp" "$bin"
    echo "build-support: built $bin" >&2
  fi
done

# The MPI simulation, once per MPI library. cargo itself decides whether anything changed (a
# no-op build takes about a second); its fingerprints are exact where an mtime check is not.
for mpi in openmpi mpich; do
  dir=$REPO/target/sim-$mpi
  (cd "$REPO" && MPICC=mpicc.$mpi CARGO_TARGET_DIR=$dir cargo build --quiet --release --features mpi --example sim) ||
    { echo "build-support: building the sim against $mpi failed (needs libclang-dev and the $mpi dev package: scripts/install-deps.sh)" >&2; exit 1; }
done
