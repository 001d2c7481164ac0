#!/usr/bin/env bash
# scripts/install-deps.sh - install what the tests need, and only what is missing:
#   * Debian packages: Slurm (munge, slurmctld, slurmd, slurm-client), OpenMPI and MPICH side by
#     side (runtime + mpicc), libclang-dev (bindgen, for rsmpi in the MPI example sim),
#     hyperfine and time (benchmarks), gcc (mpicc needs it), nodejs (unless a node is
#     on PATH: it runs Perfetto's WebAssembly trace processor for the merge tests and drives the
#     report page in the report tests), chromium (opens `otel-run report` pages headless),
#     openssl (certificates for the TLS replay tests), python3 at /usr/bin (tests/attack.rs runs
#     it as user nobody); setpriv, prlimit and flock come from util-linux (Essential: always there);
#   * a Python venv (default target/venv, override with OTEL_RUN_VENV) with the exact pins of
#     scripts/requirements-test.txt: the real OpenTelemetry Python SDK + OTLP exporters,
#     opentelemetry-instrument, and rotel (a real OTLP collector binary shipped in a wheel);
#   * bsb-otel 8.0.2 in that venv (scripts/requirements-bsb-otel.txt) and bsb-otel 7.6.1 in a venv
#     of its own (default target/venv-bsb-otel-7, override with OTEL_RUN_BSB7_VENV;
#     scripts/requirements-bsb-otel-7.txt), for the interoperability tests (tests/bsb_otel.rs).
# Idempotent and quick when everything is there (a few dpkg-query calls and one hash compare).
# Any failure exits non-zero with a message saying what failed.
#
# Knobs (env):
#   OTEL_RUN_VENV         where the venv lives               (default $REPO/target/venv)
#   OTEL_RUN_BASE_PYTHON  interpreter the venv is made from  (default python3 on PATH)
#   OTEL_RUN_SKIP_APT=1   do not touch Debian packages (e.g. not root, installed by other means)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQ=$REPO/scripts/requirements-test.txt
VENV=${OTEL_RUN_VENV:-$REPO/target/venv}
BASE_PY=${OTEL_RUN_BASE_PYTHON:-python3}
log() { echo "install-deps: $*" >&2; }
die() { echo "install-deps: ERROR: $*" >&2; exit 1; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# ---------------------------------------------------------------- 1. Debian packages
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

if [ "${OTEL_RUN_SKIP_APT:-0}" != 1 ]; then
  t=$(date +%s%N)
  want=(munge slurmctld slurmd slurm-client openmpi-bin libopenmpi-dev mpich libmpich-dev libclang-dev hyperfine time gcc openssl chromium)
  # The venv needs ensurepip (Debian splits it into python3-venv) when the base python is Debian's;
  # rotel-agent is linked against libpython3.11.so.1.0, which only the libpython3.11 package ships.
  # tests/attack.rs runs /usr/bin/python3 as another user (setpriv), who cannot reach a python
  # under root's home (pyenv, rustup-style installs): Debian's own interpreter must be there too.
  { command -v "$BASE_PY" >/dev/null && [ -x /usr/bin/python3 ]; } || want+=(python3)
  if command -v "$BASE_PY" >/dev/null && ! "$BASE_PY" -c 'import ensurepip, venv' 2>/dev/null; then
    want+=(python3-venv)
  fi
  ldconfig -p 2>/dev/null | grep -q 'libpython3\.11\.so\.1\.0' || want+=(libpython3.11)
  # node runs the Perfetto UI's WebAssembly trace processor (merge's Chrome output test)
  command -v node >/dev/null || want+=(nodejs)
  missing=()
  for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing Debian packages (${missing[*]}) and not root: install them, or set OTEL_RUN_SKIP_APT=1"
    log "apt-get install ${missing[*]} (may wait up to 300 s for another apt/dpkg to finish)"
    export DEBIAN_FRONTEND=noninteractive
    # Lock::Timeout: wait for a concurrent apt/dpkg (e.g. a provisioning step) instead of failing.
    apt=(apt-get -q -o DPkg::Lock::Timeout=300)
    aptlog=$(mktemp /tmp/otel-run-apt.XXXXXX)
    if ! "${apt[@]}" update >"$aptlog" 2>&1; then
      tail -n 30 "$aptlog" >&2; die "apt-get update failed (full log: $aptlog)"
    fi
    if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >>"$aptlog" 2>&1; then
      tail -n 30 "$aptlog" >&2; die "apt-get install ${missing[*]} failed (full log: $aptlog)"
    fi
    for p in "${missing[@]}"; do installed "$p" || die "package $p still not installed after apt-get (log: $aptlog)"; done
    rm -f "$aptlog"
    log "Debian packages installed in $(ms_since "$t") ms"
  fi
fi

# ---------------------------------------------------------------- 2. Python venv
command -v "$BASE_PY" >/dev/null || die "no $BASE_PY on PATH (set OTEL_RUN_BASE_PYTHON)"
[ -f "$REQ" ] || die "missing $REQ"
mkdir -p "$(dirname "$VENV")"
# Two test runs at once (e.g. a developer and CI on one machine) must not build the venv twice.
exec 9>"$VENV.lock"
flock -w 600 9 || die "timed out waiting for $VENV.lock"

# The stamp ties the venv to the requirements file and the interpreter it was built from.
want_stamp="$(sha256sum "$REQ" | cut -d' ' -f1) $("$BASE_PY" -c 'import sys; print(sys.version.split()[0])')"
stamp=$VENV/.otel-run-requirements
if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ] &&
   "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  venv_ready=1   # up to date
else
  venv_ready=0
fi

if [ "$venv_ready" = 0 ]; then
t=$(date +%s%N)
log "building venv $VENV from $REQ"
# --clear: start from nothing, so packages of an older requirements file do not linger.
"$BASE_PY" -m venv --clear "$VENV" || die "'$BASE_PY -m venv $VENV' failed (on Debian: apt-get install python3-venv)"
piplog=$(mktemp /tmp/otel-run-pip.XXXXXX)
if ! "$VENV/bin/python" -m pip install --no-input --disable-pip-version-check -r "$REQ" >"$piplog" 2>&1; then
  tail -n 30 "$piplog" >&2; die "pip install -r $REQ failed (full log: $piplog)"
fi
rm -f "$piplog"

# Check that what the tests use actually works, not just that pip said yes.
"$VENV/bin/python" - <<'PY' || die "venv check failed (see above)"
import os, subprocess, sys
import opentelemetry.sdk.trace                                     # noqa: F401
import opentelemetry.exporter.otlp.proto.http.trace_exporter       # noqa: F401
import opentelemetry.exporter.otlp.proto.grpc.trace_exporter       # noqa: F401
import rotel
agent = os.path.join(os.path.dirname(rotel.__file__), "rotel-agent")
if not os.access(agent, os.X_OK):
    sys.exit(f"no executable {agent}")
r = subprocess.run([agent, "--version"], capture_output=True, text=True)
if r.returncode != 0:
    sys.exit(f"{agent} --version failed ({r.returncode}): {r.stderr.strip()} (libpython3.11 missing?)")
PY
[ -x "$VENV/bin/opentelemetry-instrument" ] || die "no $VENV/bin/opentelemetry-instrument after install"
echo "$want_stamp" > "$stamp"
log "venv ready in $(ms_since "$t") ms"
fi

# ---------------------------------------------------------------- 3. bsb-otel (interop tests)
# bsb-otel 8.0.2 into the test venv (its pins agree with requirements-test.txt), and 7.6.1 in a
# venv of its own; each only when missing (a stamp of its requirements file), ~450 MB each.
# pip_stamped VENV REQ WHAT: installs REQ into VENV unless VENV's stamp says it is there.
pip_stamped() {
  local venv=$1 req=$2 what=$3 stamp want t log
  stamp=$venv/.otel-run-$(basename "$req" .txt)
  want=$(sha256sum "$req" | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  t=$(date +%s%N)
  log "installing $what into $venv from $req (~450 MB, first time only)"
  log=$(mktemp /tmp/otel-run-pip.XXXXXX)
  if ! "$venv/bin/python" -m pip install --no-input --disable-pip-version-check -r "$req" >"$log" 2>&1; then
    tail -n 30 "$log" >&2; die "pip install -r $req into $venv failed (full log: $log)"
  fi
  rm -f "$log"
  echo "$want" > "$stamp"
  log "$what ready in $(ms_since "$t") ms"
}
pip_stamped "$VENV" "$REPO/scripts/requirements-bsb-otel.txt" "bsb-otel 8.0.2"
BSB7_VENV=${OTEL_RUN_BSB7_VENV:-$VENV-bsb-otel-7}
exec 8>"$BSB7_VENV.lock"
flock -w 600 8 || die "timed out waiting for $BSB7_VENV.lock"
if ! [ -x "$BSB7_VENV/bin/python" ]; then
  "$BASE_PY" -m venv --clear "$BSB7_VENV" || die "'$BASE_PY -m venv $BSB7_VENV' failed"
fi
pip_stamped "$BSB7_VENV" "$REPO/scripts/requirements-bsb-otel-7.txt" "bsb-otel 7.6.1"
for py in "$VENV/bin/python:8.0.2" "$BSB7_VENV/bin/python:7.6.1"; do
  "${py%:*}" -c "import sys, importlib.metadata as m, bsb_otel.exporters, bsb_otel.replay; v = m.version('bsb-otel'); sys.exit(0 if v == '${py##*:}' else f'bsb-otel {v}, want ${py##*:}')" ||
    die "bsb-otel ${py##*:} does not import in ${py%:*} (remove its .otel-run-requirements-bsb-otel* stamp to reinstall)"
done
