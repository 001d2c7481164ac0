# shellcheck shell=bash
# scripts/bench-rotel.sh - sourced by the benchmarks that need a collector (bench-sink.sh,
# bench-forward.sh): starts rotel's blackhole receiver on two free loopback ports and stops it,
# and removes $TMP, when the sourcing script exits.
# Expects VENV and TMP; sets ROTEL, GRPC, HTTP and rotel_pid.
ROTEL="$("$VENV/bin/python" -c 'import rotel, os; print(os.path.dirname(rotel.__file__))')/rotel-agent"
rotel_pid=
# shellcheck disable=SC2317  # reached through the EXIT trap
rotel_cleanup() {
  if [ -n "$rotel_pid" ]; then kill "$rotel_pid" 2>/dev/null || true; wait "$rotel_pid" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap rotel_cleanup EXIT

port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
GRPC=$(port); HTTP=$(port)
"$ROTEL" start --exporter blackhole --otlp-grpc-endpoint "127.0.0.1:$GRPC" --otlp-http-endpoint "127.0.0.1:$HTTP" \
  --pid-file "$TMP/rotel.pid" >"$TMP/rotel.log" 2>&1 &
rotel_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$HTTP") 2>/dev/null && break; sleep 0.1; done
