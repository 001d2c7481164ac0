#!/usr/bin/env bash
# scripts/slurm/stop.sh - stop the cluster started by scripts/slurm/start.sh: cancels its jobs,
# then stops slurmd, slurmctld and munged by their pid files (never by name, so nothing else on
# the machine is touched). Keeps $SLURM_STATE_DIR (logs) unless SLURM_PURGE=1.
# Safe to run when nothing is running. Always exits 0: it runs from EXIT traps.
set -uo pipefail   # no -e: a failed scancel must not stop the daemons from being stopped
S=${SLURM_STATE_DIR:-/tmp/otel-run-slurm}
[ -d "$S" ] || exit 0
export SLURM_CONF=$S/slurm.conf

# running PID: alive and not a zombie. The daemons are orphans (parent: PID 1), and some
# container inits reap them only seconds later; kill -0 alone would count a zombie as running.
running() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# stop_pid PIDFILE NAME: TERM the process if it is still NAME (pid not reused), KILL after 10 s
stop_pid() {
  local f=$1 name=$2 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if running "$pid" && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ]; then
    kill -TERM "$pid"
    for _ in $(seq 100); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then kill -KILL "$pid"; fi
    echo "slurm/stop.sh: stopped $name ($pid)" >&2
  fi
  rm -f "$f"
}

# jobs first, while slurmctld/slurmd can still deliver the signals
if [ -s "$S/slurmctld.pid" ] && kill -0 "$(cat "$S/slurmctld.pid")" 2>/dev/null; then
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    echo "$jobs" | xargs -r scancel 2>/dev/null || true
    for _ in $(seq 100); do [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi
stop_pid "$S/slurmd.pid" slurmd
stop_pid "$S/slurmctld.pid" slurmctld
stop_pid "$S/munged.pid" munged
# remove the /etc/slurm/slurm.conf link only if it is ours
if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$S/slurm.conf" ]; then rm -f /etc/slurm/slurm.conf; fi
if [ "${SLURM_PURGE:-0}" = 1 ]; then rm -rf "$S"; fi
exit 0
