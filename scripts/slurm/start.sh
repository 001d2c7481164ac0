#!/usr/bin/env bash
# scripts/slurm/start.sh - start a throw-away single-node Slurm cluster on 127.0.0.1 for the tests
# (Debian/Ubuntu, as root). Self-contained: a fresh clone has nothing else to lean on.
#
# Idempotent: if the cluster of $SLURM_STATE_DIR is already up it only prints how to use it;
# otherwise it stops leftovers (by pid file, never by name), wipes the state dir and starts
# munged, slurmctld and slurmd with their own config, key and socket (a system Slurm/munge, if
# any, is left alone). Writes $SLURM_STATE_DIR/env.sh for the shells and tests that use it.
#
# Knobs (env):
#   SLURM_STATE_DIR   config, state, pid files, logs, env.sh   (default /tmp/otel-run-slurm)
#   SLURM_NODE_CPUS   CPUs the node claims; more than nproc lets `srun -n N` oversubscribe
#                     (default max(8, nproc))
#   SLURM_KILL_WAIT   seconds between SIGTERM and SIGKILL on scancel/timeout (default 5; Slurm's
#                     own default of 30 would make the signal tests slow)
#   SLURM_PROCTRACK   linuxproc | pgid | cgroup   (default linuxproc: needs no cgroup access)
#   SLURM_CTLD_PORT / SLURM_D_PORT                (default 6817 / 6818)
#   SLURM_WITH_MPI=0  do not install OpenMPI + MPICH             (default 1)
#   SLURM_LINK_ETC=0  do not symlink /etc/slurm/slurm.conf       (default 1: makes srun work without
#                     SLURM_CONF and stops clients from trying a DNS SRV lookup for a config)
#   SLURM_UP_TIMEOUT  seconds to wait for the node to be idle    (default 60)
set -euo pipefail
S=${SLURM_STATE_DIR:-/tmp/otel-run-slurm}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CPUS=${SLURM_NODE_CPUS:-$(( $(nproc) > 8 ? $(nproc) : 8 ))}
t0=$(date +%s%N)
log() { echo "slurm/start.sh: $*" >&2; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "$(id -u)" != 0 ]; then
  log "must run as root (slurmd runs jobs as any user; munged/slurmctld use SlurmUser=root)"; exit 1
fi

usage() {
  cat >&2 <<USAGE
Slurm is up (node localhost, $CPUS CPUs, KillWait $(awk -F= '/^KillWait/{print $2}' "$S/slurm.conf") s). Use it with:
  . $S/env.sh          # SLURM_CONF, and OpenMPI-as-root / loopback-only MPI settings
  srun -n 4 hostname;  sbatch -n 2 --wrap 'srun env';  squeue;  scancel JOBID   (more tasks than CPUs: srun -O)
  srun --mpi=pmix -n 4 ./a.out   (OpenMPI)      srun --mpi=pmi2 -n 4 ./a.out   (MPICH)
  mpirun.openmpi -n 4 ./a.out    mpiexec.mpich -n 4 ./a.out   (mpicc.openmpi / mpicc.mpich to build)
Logs: $S/log/   Stop: $HERE/stop.sh
USAGE
}

# 0. already running (all three daemons alive and the node answers)? then nothing to do.
if alive "$S/munged.pid" && alive "$S/slurmctld.pid" && alive "$S/slurmd.pid" &&
   SLURM_CONF=$S/slurm.conf timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  usage; exit 0
fi

# 1. packages (only what is missing; scripts/install-deps.sh normally did this already)
pkgs=()
command -v munged >/dev/null    || pkgs+=(munge)
command -v slurmctld >/dev/null || pkgs+=(slurmctld)
command -v slurmd >/dev/null    || pkgs+=(slurmd)
command -v srun >/dev/null      || pkgs+=(slurm-client)
if [ "${SLURM_WITH_MPI:-1}" = 1 ]; then
  command -v mpicc.openmpi >/dev/null || pkgs+=(openmpi-bin libopenmpi-dev)
  command -v mpicc.mpich >/dev/null   || pkgs+=(mpich libmpich-dev)
fi
if [ ${#pkgs[@]} -gt 0 ]; then
  log "installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt=(apt-get -qq -o DPkg::Lock::Timeout=300)   # wait for a concurrent apt/dpkg instead of failing
  "${apt[@]}" update
  "${apt[@]}" install -y --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# 2. fresh state dir (stop leftovers of an earlier run first, by pid file only)
if [ -d "$S" ]; then SLURM_STATE_DIR=$S "$HERE/stop.sh" >/dev/null 2>&1 || true; fi
rm -rf "$S"; mkdir -p "$S/ctld" "$S/spool" "$S/log" "$S/munge"
chmod 755 "$S" "$S/munge"               # munged insists its socket dir is world-executable

# a different cluster (e.g. one started from another state dir) on our ports would make slurmctld
# die with a bind error deep in its log; say so plainly instead
if command -v ss >/dev/null; then
  for port in "${SLURM_CTLD_PORT:-6817}" "${SLURM_D_PORT:-6818}"; do
    if ss -Hltn "sport = :$port" | grep -q .; then
      log "port $port is already in use (another Slurm? see ss -ltnp); set SLURM_CTLD_PORT/SLURM_D_PORT"; exit 1
    fi
  done
fi

# 3. munge: own key, own socket, so a system munged (if any) is left alone
dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$S/munge/munge.key"
munged --socket="$S/munge/munge.sock" --key-file="$S/munge/munge.key" --pid-file="$S/munged.pid" \
       --log-file="$S/log/munged.log" --seed-file="$S/munge/munged.seed"

# 4. slurm.conf: everything on 127.0.0.1, no cgroups (unless SLURM_PROCTRACK=cgroup), no accounting
cat > "$S/slurm.conf" <<CONF
ClusterName=localci
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=${SLURM_CTLD_PORT:-6817}
SlurmdPort=${SLURM_D_PORT:-6818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$S/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$S/ctld
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
ProctrackType=proctrack/${SLURM_PROCTRACK:-linuxproc}
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=${SLURM_KILL_WAIT:-5}
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
if [ "${SLURM_PROCTRACK:-linuxproc}" = cgroup ]; then
  printf 'CgroupPlugin=autodetect\nIgnoreSystemd=yes\n' > "$S/cgroup.conf"
fi

# env.sh: what a shell (or scripts/test.sh) sources to use this cluster and run MPI as root on
# loopback only (the machine has no other network; UCX/OFI would otherwise probe devices).
cat > "$S/env.sh" <<ENV
export SLURM_CONF=$S/slurm.conf
# OpenMPI as root, oversubscribed, shared memory + loopback only; MPICH/UCX/Hydra loopback only
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1 OMPI_MCA_osc=^ucx OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_btl_tcp_if_include=lo
export UCX_TLS=self,sm UCX_NET_DEVICES=lo HYDRA_IFACE=lo
# more ranks than cores (4 on 2 here): OpenMPI's busy polling makes a halo exchange ~40x slower
export OMPI_MCA_mpi_yield_when_idle=1
ENV
# only replace /etc/slurm/slurm.conf when it is absent or already a link (ours or a stale one)
if [ "${SLURM_LINK_ETC:-1}" = 1 ] && { [ ! -e /etc/slurm/slurm.conf ] || [ -L /etc/slurm/slurm.conf ]; }; then
  mkdir -p /etc/slurm && ln -sfn "$S/slurm.conf" /etc/slurm/slurm.conf
fi

# 5. daemons (they fork and write their pid files)
export SLURM_CONF=$S/slurm.conf
slurmctld -f "$S/slurm.conf"
slurmd -f "$S/slurm.conf" -N localhost

# 6. wait until the node is idle
deadline=$(( $(date +%s) + ${SLURM_UP_TIMEOUT:-60} ))
until [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "node not idle after ${SLURM_UP_TIMEOUT:-60}s"; sinfo -N -l >&2 || true
    tail -n 20 "$S/log/slurmctld.log" "$S/log/slurmd.log" >&2 || true; exit 1
  fi
  sleep 0.2
done
log "up in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
usage
