# shellcheck shell=bash
# scripts/slurm/use.sh - sourced by scripts that need the single-node cluster (example.sh,
# bench-signals.sh): uses a running cluster, or starts one and stops it again when the sourcing
# script exits; then loads its environment (SLURM_CONF, MPI-as-root settings).
# Expects REPO; honours SLURM_STATE_DIR. (scripts/test.sh keeps its own, timed, variant.)
export SLURM_STATE_DIR=${SLURM_STATE_DIR:-/tmp/otel-run-slurm}
slurm_started=0
if ! { [ -s "$SLURM_STATE_DIR/slurmctld.pid" ] && kill -0 "$(cat "$SLURM_STATE_DIR/slurmctld.pid")" 2>/dev/null; }; then
  slurm_started=1
  "$REPO/scripts/slurm/start.sh" >/dev/null
fi
# shellcheck disable=SC2317  # reached through the EXIT trap
slurm_cleanup() { if [ "$slurm_started" = 1 ]; then "$REPO/scripts/slurm/stop.sh" >/dev/null; fi; }
trap slurm_cleanup EXIT
# shellcheck source=/dev/null
. "$SLURM_STATE_DIR/env.sh"
