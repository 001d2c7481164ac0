#!/usr/bin/env bash
# scripts/build-support.sh - build the native helper programs the tests run:
#   tests/support/mpi_hello.c -> target/test-support/mpi_hello.openmpi (mpicc.openmpi)
#                              -> target/test-support/mpi_hello.mpich   (mpicc.mpich)
#   examples/sim.rs (cargo feature `mpi`, otel-run-sdk + rsmpi)
#                              -> target/sim-openmpi/release/examples/sim (MPICC=mpicc.openmpi)
#                              -> target/sim-mpich/release/examples/sim   (MPICC=mpicc.mpich)
# Rebuilds a binary only when its sources are newer, so repeated test runs cost nothing.
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

# The MPI simulation, once per MPI library. Sources: the SDK, the example, the launcher library
# it links, and the manifests.
newest_source() {
  find "$REPO/sdk" "$REPO/src" "$REPO/examples/sim.rs" "$REPO/Cargo.toml" "$REPO/Cargo.lock" \
    -type f -newer "$1" -print -quit 2>/dev/null
}
for mpi in openmpi mpich; do
  dir=$REPO/target/sim-$mpi bin=$REPO/target/sim-$mpi/release/examples/sim
  if [ ! -x "$bin" ] || [ -n "$(newest_source "$bin")" ]; then
    echo "build-support: building $bin (MPICC=mpicc.$mpi)" >&2
    (cd "$REPO" && MPICC=mpicc.$mpi CARGO_TARGET_DIR=$dir cargo build --quiet --release --features mpi --example sim)
    touch "$bin"   # cargo may keep an up-to-date binary's old mtime
  fi
done
