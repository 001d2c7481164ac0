#!/usr/bin/env bash
# scripts/test.sh - THE test command (README, .ci/run). Runs the whole suite against real parts:
# a local Slurm cluster, OpenMPI and MPICH, the OpenTelemetry Python SDK and a real OTLP collector
# (rotel). Extra arguments go to the test runner (a test-name filter, --nocapture, ...).
#
# Phases (each timed on stderr):
#   lint       cargo fmt --check, cargo clippy -D warnings   (OTEL_RUN_SKIP_LINT=1 skips)
#   deps       scripts/install-deps.sh: Debian packages + Python venv, only what is missing
#   slurm      scripts/slurm/start.sh; stopped again on exit only if this script started it
#   support    scripts/build-support.sh: MPI test programs
#   build      cargo build --all-targets
#   doctests   cargo test --doc (only without arguments; nextest does not run doctests)
#   tests      cargo nextest run --no-fail-fast, or cargo test --no-fail-fast without nextest
# Exit status: the first failing phase's, else the tests'.
#
# The Rust tests find the real parts through these variables (and fail, saying how to get them, without them):
#   OTEL_RUN_TEST_PYTHON        venv python with the OpenTelemetry SDK + OTLP exporters (+ bsb-otel 8.0.2)
#   OTEL_RUN_TEST_BSB7_PYTHON   venv python with bsb-otel 7.6.1
#   OTEL_RUN_TEST_ROTEL         rotel-agent binary (OTLP collector)
#   OTEL_RUN_TEST_MPI_OPENMPI   MPI hello built with OpenMPI  (srun --mpi=pmix, mpirun.openmpi)
#   OTEL_RUN_TEST_MPI_MPICH     MPI hello built with MPICH    (srun --mpi=pmi2, mpiexec.mpich)
#   OTEL_RUN_TEST_SIM_OPENMPI   examples/sim.rs (otel-run-sdk, feature mpi) linked with OpenMPI
#   OTEL_RUN_TEST_SIM_MPICH     the same linked with MPICH
#   OTEL_RUN_TEST_SLURM=1       a Slurm cluster is up; SLURM_CONF points at it
# plus the MPI-as-root/loopback settings of $SLURM_STATE_DIR/env.sh (OMPI_ALLOW_RUN_AS_ROOT, ...).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export SLURM_STATE_DIR=${SLURM_STATE_DIR:-/tmp/otel-run-slurm}   # start.sh, stop.sh and we agree
S=$SLURM_STATE_DIR
VENV=${OTEL_RUN_VENV:-$REPO/target/venv}
export OTEL_RUN_VENV=$VENV

T_ALL=$(date +%s%N)
summary=()
secs_since() { local d=$(( $(date +%s%N) - $1 )); printf '%d.%01d' $(( d / 1000000000 )) $(( d / 100000000 % 10 )); }

# phase NAME CMD...: run CMD (an external command, so its own set -e applies), time it, report.
phase() {
  local name=$1 t rc=0; shift
  t=$(date +%s%N)
  echo "==> [$name] $*" >&2
  "$@" || rc=$?
  if [ "$rc" = 0 ]; then
    echo "<== [$name] ok in $(secs_since "$t") s" >&2
  else
    echo "<== [$name] FAILED (exit $rc) after $(secs_since "$t") s" >&2
  fi
  summary+=("$(printf '%-9s %6s s  %s' "$name" "$(secs_since "$t")" "$([ "$rc" = 0 ] && echo ok || echo "FAILED ($rc)")")")
  return "$rc"
}

started_slurm=0
# shellcheck disable=SC2317  # only reached through the EXIT trap
finish() {
  local rc=$?
  if [ "$started_slurm" = 1 ]; then
    # we started it, so we stop it: a CI machine must not be left with daemons on 6817/6818
    scripts/slurm/stop.sh || true
  fi
  if [ ${#summary[@]} -gt 0 ]; then
    echo "---- test.sh phases ----" >&2
    printf '%s\n' "${summary[@]}" >&2
    echo "total     $(secs_since "$T_ALL") s, exit $rc" >&2
  fi
  exit "$rc"
}
trap finish EXIT
# make Ctrl-C / a CI timeout still run finish (and so stop Slurm)
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. lint first: it fails fast and needs none of the real parts
if [ "${OTEL_RUN_SKIP_LINT:-0}" != 1 ]; then
  phase fmt cargo fmt --all -- --check
  phase clippy cargo clippy --workspace --all-targets -- -D warnings
fi

# 2. dependencies
phase deps scripts/install-deps.sh

# 3. Slurm: reuse a cluster that is already up (a developer's), else start one and stop it on exit
slurm_up() {
  local f
  for f in munged slurmctld slurmd; do
    [ -s "$S/$f.pid" ] && kill -0 "$(cat "$S/$f.pid")" 2>/dev/null || return 1
  done
  SLURM_CONF=$S/slurm.conf timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}
if slurm_up; then
  echo "==> [slurm] already running from $S: using it, leaving it running" >&2
else
  started_slurm=1   # set before starting, so a half-started cluster is stopped as well
  phase slurm scripts/slurm/start.sh
fi
# shellcheck source=/dev/null
. "$S/env.sh"

# 4. native test programs
phase support scripts/build-support.sh

# 5. where the tests find the real parts
export OTEL_RUN_TEST_PYTHON=$VENV/bin/python
# bsb-otel 7.6.1's venv (8.0.2 is in the main one), from install-deps.sh
export OTEL_RUN_TEST_BSB7_PYTHON=${OTEL_RUN_BSB7_VENV:-$VENV-bsb-otel-7}/bin/python
OTEL_RUN_TEST_ROTEL="$("$OTEL_RUN_TEST_PYTHON" -c 'import rotel, os; print(os.path.dirname(rotel.__file__))')/rotel-agent"
export OTEL_RUN_TEST_ROTEL
export OTEL_RUN_TEST_MPI_OPENMPI=$REPO/target/test-support/mpi_hello.openmpi
export OTEL_RUN_TEST_MPI_MPICH=$REPO/target/test-support/mpi_hello.mpich
export OTEL_RUN_TEST_SIM_OPENMPI=$REPO/target/sim-openmpi/release/examples/sim
export OTEL_RUN_TEST_SIM_MPICH=$REPO/target/sim-mpich/release/examples/sim
export OTEL_RUN_TEST_SLURM=1
export SLURM_CONF=$S/slurm.conf
for f in "$OTEL_RUN_TEST_PYTHON" "$OTEL_RUN_TEST_BSB7_PYTHON" "$OTEL_RUN_TEST_ROTEL" "$OTEL_RUN_TEST_MPI_OPENMPI" "$OTEL_RUN_TEST_MPI_MPICH" \
         "$OTEL_RUN_TEST_SIM_OPENMPI" "$OTEL_RUN_TEST_SIM_MPICH"; do
  [ -x "$f" ] || { echo "test.sh: missing $f" >&2; exit 1; }
done
env | grep -E '^(OTEL_RUN_TEST_|SLURM_CONF=)' | sort >&2

# 6. build, then test
# --workspace: the launcher and the program-side SDK (sdk/); default features, so no system
# library is needed (the `mpi` feature is built only by build-support.sh, for the sim).
phase build cargo build --workspace --all-targets
if [ $# -eq 0 ] && [ -f src/lib.rs ]; then
  # before the main run, so the runner's own summary stays the last thing printed
  phase doctests cargo test --workspace --doc
fi
status=0
if cargo nextest --version >/dev/null 2>&1; then
  phase tests cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
  phase tests cargo test --workspace --no-fail-fast "$@" || status=$?
fi
exit "$status"
