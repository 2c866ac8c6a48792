# Helpers shared by infra/bench/run.sh and infra/bench/sidebyside.sh
# (sourced, not run). They start and stop only processes they started,
# by PID.

# bench_machine prints what the numbers were measured on.
bench_machine() {
  local cpu mem
  cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
  mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null || true)
  echo "date:    $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "nproc:   $(nproc)"
  echo "cpu:     ${cpu:-unknown}"
  echo "memory:  ${mem:-unknown}"
  echo "go:      $(go version | awk '{print $3, $4}')"
  echo "node:    $(node --version 2>/dev/null || echo none)"
  echo "kernel:  $(uname -sr)"
  echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- 2>/dev/null || echo ' + uncommitted changes')"
}

# bench_wait_http URL: waits (at most 30 s) until URL answers 200.
bench_wait_http() {
  local url=$1 i
  for i in $(seq 300); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "bench: $url did not come up" >&2
  return 1
}

# bench_stop PID...: stops processes this script started (SIGTERM, then
# SIGKILL after 10 s).
bench_stop() {
  local pid i
  for pid in "$@"; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || continue
    for i in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  done
}

# bench_start_learnerlink BIN PORT TOKEN DATADIR LOG: starts the local
# runner (sandbox target, defaults otherwise) and sets LL_PID.
bench_start_learnerlink() {
  local bin=$1 port=$2 token=$3 data=$4 log=$5
  LEARNERLINK_ADDR=127.0.0.1:$port LEARNERLINK_DATA_DIR=$data LEARNERLINK_SCIM_TOKEN=$token \
    LEARNERLINK_HOOK_SECRET=bench-hook-secret LEARNERLINK_LOG_LEVEL=warn "$bin" >"$log" 2>&1 &
  LL_PID=$!
  bench_wait_http "http://127.0.0.1:$port/healthz"
}

# bench_start_peer PORT TOKEN LOG: starts the peer SCIM server (after
# infra/peer/setup.sh) and sets PEER_PID.
bench_start_peer() {
  local port=$1 token=$2 log=$3
  cp infra/peer/server.js .stack/peer/server.js
  PEER_TOKEN=$token PEER_PORT=$port node .stack/peer/server.js >"$log" 2>&1 &
  PEER_PID=$!
  bench_wait_http "http://127.0.0.1:$port/healthz"
}
