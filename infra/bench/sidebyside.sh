#!/usr/bin/env bash
# Side by side: the same SCIM workload (infra/loadgen: create, patch, get,
# filtered list, delete; N users, CLIENTS concurrent clients) against
# learnerlink's local runner and against a peer SCIM server built on
# SCIMMY + scimmy-routers + express (infra/peer, in-memory), one after
# the other on this machine; then the same conformance probes against
# both (infra/bench/scimdiff). Prints and saves ratios (learnerlink /
# peer) of req/s, p50 and p99 per operation.
#
#   bash infra/bench/sidebyside.sh                 # N=4000 CLIENTS=16
#   N=10000 ROUNDS=3 bash infra/bench/sidebyside.sh
#
# Env: N, CLIENTS, ROUNDS (each round runs both servers fresh, alternating
# which goes first), LL_PORT (18080), PEER_PORT (18090), OUT (results dir),
# LL_DATA (where learnerlink keeps its store and queue; default a temp dir
# on disk; /dev/shm shows what the fsyncs cost), TAG (result file suffix).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=infra/bench/lib.sh
source infra/bench/lib.sh

N=${N:-4000}
CLIENTS=${CLIENTS:-16}
ROUNDS=${ROUNDS:-1}
LL_PORT=${LL_PORT:-18080}
PEER_PORT=${PEER_PORT:-18090}
out=${OUT:-infra/bench/results/$(date -u +%Y-%m-%d)}
mkdir -p "$out"

bash infra/peer/setup.sh
tmp=$(mktemp -d)
data=$(mktemp -d "${LL_DATA:-${TMPDIR:-/tmp}}/learnerlink-sbs-XXXXXX")
LL_PID= PEER_PID=
cleanup() { bench_stop "$LL_PID" "$PEER_PID"; rm -rf "$tmp" "$data"; }
trap cleanup EXIT
go build -o "$tmp/learnerlink-local" ./infra/local
go build -o "$tmp/loadgen" ./infra/loadgen
go build -o "$tmp/scimdiff" ./infra/bench/scimdiff
ll_token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
peer_token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')

run_ll() {
  rm -rf "$data/run"
  bench_start_learnerlink "$tmp/learnerlink-local" "$LL_PORT" "$ll_token" "$data/run" "$tmp/learnerlink.log"
  "$tmp/loadgen" -url "http://127.0.0.1:$LL_PORT/scim/v2" -token "$ll_token" -clients "$CLIENTS" -n "$N" -cleanup >"$tmp/ll.$1.txt"
  bench_stop "$LL_PID"; LL_PID=
}
run_peer() {
  bench_start_peer "$PEER_PORT" "$peer_token" "$tmp/peer.log"
  "$tmp/loadgen" -url "http://127.0.0.1:$PEER_PORT/scim/v2" -token "$peer_token" -clients "$CLIENTS" -n "$N" -cleanup >"$tmp/peer.$1.txt"
  bench_stop "$PEER_PID"; PEER_PID=
}

for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then run_ll "$r"; run_peer "$r"; else run_peer "$r"; run_ll "$r"; fi
done

# ratios: one row per operation from loadgen's tables (columns: operation,
# requests, errors, req/s, p50, p90, p99, max), median over rounds.
ratios() {
  awk -v rounds="$ROUNDS" '
    function ms(s) { sub(/ms$/, "", s); return s + 0 }
    function median(arr, n,   i, j, t) {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
      return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
    }
    FNR == 1 { who = (FILENAME ~ /\/ll\./) ? "ll" : "peer" }
    /^ *operation/ || !/ms *$/ { next }
    {
      line = $0; sub(/^ +/, "", line); n = split(line, f, /  +/)
      op = f[1]; if (!(op in seen)) { seen[op] = 1; order[++nops] = op }
      k = ++cnt[who, op]
      rps[who, op, k] = f[4]; p50[who, op, k] = ms(f[5]); p99[who, op, k] = ms(f[7]); errs[who, op] += f[3]
    }
    END {
      printf "| operation | learnerlink req/s | peer req/s | req/s ratio | learnerlink p50 | peer p50 | p50 ratio | learnerlink p99 | peer p99 | p99 ratio | errors (ll/peer) |\n"
      printf "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
      for (i = 1; i <= nops; i++) {
        op = order[i]
        for (w = 0; w < 2; w++) {
          who = w ? "peer" : "ll"; m = cnt[who, op]
          for (k = 1; k <= m; k++) { a[k] = rps[who, op, k]; b[k] = p50[who, op, k]; c[k] = p99[who, op, k] }
          R[who] = median(a, m); P50[who] = median(b, m); P99[who] = median(c, m)
        }
        printf "| %s | %.0f | %.0f | %.2f | %.2fms | %.2fms | %.2f | %.2fms | %.2fms | %.2f | %d/%d |\n", op,
          R["ll"], R["peer"], (R["peer"] ? R["ll"] / R["peer"] : 0),
          P50["ll"], P50["peer"], (P50["peer"] ? P50["ll"] / P50["peer"] : 0),
          P99["ll"], P99["peer"], (P99["peer"] ? P99["ll"] / P99["peer"] : 0), errs["ll", op], errs["peer", op]
      }
    }' "$tmp"/ll.*.txt "$tmp"/peer.*.txt
}

# Conformance: the same probes against both, fresh servers.
rm -rf "$data/run"
bench_start_learnerlink "$tmp/learnerlink-local" "$LL_PORT" "$ll_token" "$data/run" "$tmp/learnerlink.log"
bench_start_peer "$PEER_PORT" "$peer_token" "$tmp/peer.log"
"$tmp/scimdiff" -server "learnerlink=http://127.0.0.1:$LL_PORT/scim/v2,$ll_token" \
  -server "peer=http://127.0.0.1:$PEER_PORT/scim/v2,$peer_token" >"$tmp/scimdiff.txt" || true

{
  echo "# Side by side: learnerlink local runner vs SCIMMY peer ($(date -u +%Y-%m-%d))"
  echo
  echo '```'
  bench_machine
  echo '```'
  echo
  echo "Workload: infra/loadgen, $N users, $CLIENTS clients, each operation once per user; $ROUNDS round(s), medians."
  echo "learnerlink: infra/local (bolt store and disk queue in $(df -P "$data" | awk 'NR==2 {print $1}'), fsync per commit group; 8 workers syncing to the built-in sandbox LMS meanwhile)."
  echo "peer: infra/peer/server.js (scimmy 1.3.5, scimmy-routers 1.3.2, express 5.3.0; in memory, no queue)."
  echo "Ratios are learnerlink / peer: req/s above 1 and latency below 1 favour learnerlink."
  echo
  ratios
  echo
  echo "Raw loadgen output:"
  echo '```'
  for f in "$tmp"/ll.*.txt "$tmp"/peer.*.txt; do echo "== $(basename "$f" .txt)"; cat "$f"; done
  echo '```'
  echo
  echo "Conformance probes (infra/bench/scimdiff; ✗ = status or effect not as Okta/Entra expect):"
  echo '```'
  cat "$tmp/scimdiff.txt"
  echo '```'
} | tee "$out/sidebyside${TAG:+-$TAG}.md"
