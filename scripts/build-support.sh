#!/usr/bin/env bash
# scripts/build-support.sh - build the native helper programs the tests run:
#   tests/support/mpi_hello.c -> target/test-support/mpi_hello.openmpi (mpicc.openmpi)
#                              -> target/test-support/mpi_hello.mpich   (mpicc.mpich)
# Rebuilds a binary only when its source is newer, so repeated test runs cost nothing.
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
