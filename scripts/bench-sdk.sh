#!/usr/bin/env bash
# scripts/bench-sdk.sh - what otel-run-sdk costs a program, side by side in one run (the machine is
# noisy: compare the columns of one run, not runs).
#
# 1. examples/sdk_bench.rs under otel-run (the sink on, http/protobuf, like a real rank): a paced
#    workload of one span per ~1 ms of work (~1,000 spans/s) for SECONDS, then a burst of 20,000
#    back-to-back spans. Modes, interleaved ROUNDS times:
#      off    no tracing at all (the workload alone)
#      none   otel_run_sdk::init() with OTEL_TRACES_EXPORTER=none
#      sdk    otel_run_sdk::init() exporting to otel-run's sink
#      plain  opentelemetry_sdk + opentelemetry-otlp set up by hand (batch processor, HTTP
#             exporter reading the same OTEL_EXPORTER_OTLP_TRACES_* variables): the anchor
#    Columns: run time of the paced loop, its ratio to `none`, its excess over spans x 1 ms per
#    span, per-span cost on the program's thread in the paced loop (start + attribute + end,
#    measured around those calls) and in the burst.
# 2. examples/sim.rs (4 ranks, mpirun.openmpi) under otel-run, SDK exporting vs
#    OTEL_TRACES_EXPORTER=none, interleaved: run time and the span rate per rank.
#
# Knobs: SECONDS_PER_RUN (default 5), ROUNDS (default 3), SIM_STEPS (default 2000), SIM_GRID (256).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
S=${SECONDS_PER_RUN:-5}
ROUNDS=${ROUNDS:-3}
SIM_STEPS=${SIM_STEPS:-2000}
SIM_GRID=${SIM_GRID:-256}

# One release build for all three programs: the sim's (feature mpi, OpenMPI), which
# scripts/build-support.sh also uses, so nothing is compiled twice.
export CARGO_TARGET_DIR=$REPO/target/sim-openmpi
MPICC=mpicc.openmpi cargo build --quiet --release --features mpi --bin otel-run --example sdk_bench --example sim
OR=$CARGO_TARGET_DIR/release/otel-run
B=$CARGO_TARGET_DIR/release/examples/sdk_bench
SIM=$CARGO_TARGET_DIR/release/examples/sim
SLURM_STATE_DIR=${SLURM_STATE_DIR:-/tmp/otel-run-slurm}
# shellcheck source=/dev/null
[ -f "$SLURM_STATE_DIR/env.sh" ] && . "$SLURM_STATE_DIR/env.sh"   # OpenMPI as root

TMP=$(mktemp -d /tmp/otel-run-bench-sdk.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
clean_env=(env -u OTEL_TRACES_EXPORTER -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT -u TRACEPARENT)

echo "otel-run-sdk benchmark: $ROUNDS rounds, ${S}s paced runs, $(nproc) CPUs, $(date -u +%FT%TZ)"
for r in $(seq "$ROUNDS"); do
  for mode in off none sdk plain; do
    case $mode in
      none) prog=(env OTEL_TRACES_EXPORTER=none "$B" sdk "$S" none) ;;
      *)    prog=("$B" "$mode" "$S") ;;
    esac
    "${clean_env[@]}" "$OR" --jsonlines-path "$TMP/$mode-$r.jsonlines" -- "${prog[@]}" >> "$TMP/results"
  done
done

for r in $(seq "$ROUNDS"); do
  for mode in none sdk; do
    t0=$(date +%s%N)
    if [ $mode = none ]; then
      "${clean_env[@]}" mpirun.openmpi -n 4 "$OR" --jsonlines-path "$TMP/sim-$mode-$r-{rank}.jsonlines" -- \
        env OTEL_TRACES_EXPORTER=none "$SIM" --steps "$SIM_STEPS" --grid "$SIM_GRID" >/dev/null
    else
      "${clean_env[@]}" mpirun.openmpi -n 4 "$OR" --jsonlines-path "$TMP/sim-$mode-$r-{rank}.jsonlines" -- \
        "$SIM" --steps "$SIM_STEPS" --grid "$SIM_GRID" >/dev/null
    fi
    t1=$(date +%s%N)
    spans=$(cat "$TMP"/sim-"$mode"-"$r"-*.jsonlines | grep -vc '"otel_run.span"' || true)
    echo "sim-$mode $(( (t1 - t0) / 1000000 )) $spans" >> "$TMP/sim"
  done
done

python3 - "$TMP/results" "$TMP/sim" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    mode, n, wall, span_us, burst_us = line.split()
    rows.setdefault(mode, []).append((int(n), float(wall), float(span_us), float(burst_us)))
med = lambda xs: statistics.median(xs)
base = med([r[1] for r in rows["none"]])
print(f"\nsdk_bench under otel-run: {rows['off'][0][0]} paced spans per run (~1,000/s), medians of {len(rows['off'])} runs")
print(f"{'mode':<7}{'run time s':>12}{'vs none':>10}{'excess us/span':>16}{'span cost us':>14}{'burst us/span':>15}")
for mode in ["off", "none", "sdk", "plain"]:
    rs = rows[mode]
    wall = med([r[1] for r in rs])
    span = "-" if mode == "off" else f"{med([r[2] for r in rs]):.3f}"
    burst = "-" if mode == "off" else f"{med([r[3] for r in rs]):.3f}"
    excess = (wall - rs[0][0] * 1e-3) * 1e6 / rs[0][0]
    print(f"{mode:<7}{wall:>12.3f}{wall / base:>10.4f}{excess:>16.3f}{span:>14}{burst:>15}")
sim = {}
for line in open(sys.argv[2]):
    mode, ms, spans = line.split()
    sim.setdefault(mode, []).append((int(ms), int(spans)))
n = med([s[0] for s in sim["sim-none"]])
print("\nsim, 4 ranks (mpirun.openmpi) under otel-run, medians:")
print(f"{'mode':<10}{'run time s':>12}{'vs none':>10}{'program spans':>15}{'spans/s/rank':>14}")
for mode in ["sim-none", "sim-sdk"]:
    ms = med([s[0] for s in sim[mode]])
    spans = med([s[1] for s in sim[mode]])
    print(f"{mode:<10}{ms / 1000:>12.3f}{ms / n:>10.4f}{spans:>15.0f}{spans / 4 / (ms / 1000):>14.0f}")
PY
