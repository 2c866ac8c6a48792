#!/usr/bin/env bash
# learnerlink's benchmarks on this machine. Each step writes its raw
# output to $OUT (default infra/bench/results/<UTC date>/); docs/BENCHMARKS.md
# holds the table made from them.
#
#   bash infra/bench/run.sh                 # every step (about 15 minutes on 2 cores)
#   bash infra/bench/run.sh scim gobench    # some steps
#   BASELINE=old/gobench.txt bash infra/bench/run.sh gobench   # benchstat old vs new
#
# Steps:
#   machine     nproc, CPU, memory, Go version (always written)
#   scim        SCIM throughput/latency of the local runner: infra/loadgen, 16 clients, N users
#   drain       LMS drain rate against a rate-limited Absorb simulator (infra/drain, creates)
#   coalesce    LMS calls per Okta change under bursts (infra/drain, 10 changes per user)
#   reconcile   reconciliation time and memory at 10k and 100k (infra/reconcilerun)
#   coldstart   Lambda binary size (infra/build/build.sh, arm64) and init time (infra/build/coldstart)
#   gobench     go test -bench for the store, SCIM, filter, worker and queue packages, summarised
#               by benchstat (installed pinned into .stack/bin); with BASELINE, compared to it;
#               with HEAD_BASELINE=1, compared to the committed tree (git archive HEAD)
#   sidebyside  infra/bench/sidebyside.sh (learnerlink vs a SCIMMY peer server)
#
# Env: OUT, N (scim users, 4000), CLIENTS (16), COUNT (go bench -count, 6), BENCHTIME (go -benchtime, 1s),
#      BASELINE, HEAD_BASELINE, LL_PORT (18080).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=infra/bench/lib.sh
source infra/bench/lib.sh

out=${OUT:-infra/bench/results/$(date -u +%Y-%m-%d)}
N=${N:-4000}
CLIENTS=${CLIENTS:-16}
COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-1s}
LL_PORT=${LL_PORT:-18080}
BENCHSTAT_VERSION=v0.0.0-20260908200009-22c9c6c9d4da # golang.org/x/perf, pinned
BENCH_PKGS=(./shared/store/bolt ./shared/scim ./shared/scim/filter ./shared/worker ./shared/queue/disk)
mkdir -p "$out"
tmp=$(mktemp -d)
LL_PID=
trap 'bench_stop "$LL_PID"; rm -rf "$tmp"' EXIT

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(scim drain coalesce reconcile coldstart gobench sidebyside)

bench_machine | tee "$out/machine.txt"

step_scim() {
  go build -o "$tmp/learnerlink-local" ./infra/local
  go build -o "$tmp/loadgen" ./infra/loadgen
  local token; token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  bench_start_learnerlink "$tmp/learnerlink-local" "$LL_PORT" "$token" "$tmp/scim-data" "$tmp/learnerlink.log"
  "$tmp/loadgen" -url "http://127.0.0.1:$LL_PORT/scim/v2" -token "$token" -clients "$CLIENTS" -n "$N" -cleanup | tee "$out/scim.txt"
  bench_stop "$LL_PID"; LL_PID=
}

step_drain() {
  # 2,000 creates against an Absorb admitting 50 req/s.
  go run ./infra/drain -changes 2000 -rate 50 | tee "$out/drain.txt"
}

step_coalesce() {
  # 4,000 changes over 400 users: a create and 9 quick updates each.
  go run ./infra/drain -changes 4000 -identities 400 -rate 50 | tee "$out/coalesce.txt"
}

step_reconcile() {
  go run ./infra/reconcilerun -n 10000 | tee "$out/reconcile-10k.txt"
  go run ./infra/reconcilerun -n 100000 | tee "$out/reconcile-100k.txt"
}

step_coldstart() {
  bash infra/build/build.sh "$tmp/dist" | tee "$out/lambda-sizes.txt"
  go run ./infra/build/coldstart -runs 15 | tee "$out/coldstart.txt"
}

benchstat_bin() {
  if [ ! -x .stack/bin/benchstat ]; then
    GOBIN="$PWD/.stack/bin" go install "golang.org/x/perf/cmd/benchstat@$BENCHSTAT_VERSION"
  fi
  echo .stack/bin/benchstat
}

step_gobench() {
  local bs; bs=$(benchstat_bin)
  go test -run '^$' -bench . -benchmem -count "$COUNT" -benchtime "$BENCHTIME" "${BENCH_PKGS[@]}" | tee "$out/gobench.txt"
  "$bs" "$out/gobench.txt" | tee "$out/gobench-stat.txt"
  if [ -n "${BASELINE:-}" ]; then
    "$bs" "$BASELINE" "$out/gobench.txt" | tee "$out/gobench-vs-baseline.txt"
  fi
  if [ -n "${HEAD_BASELINE:-}" ]; then
    # The committed tree, untouched working copy: git archive into a temp dir.
    mkdir -p "$tmp/head"
    git archive HEAD | tar -x -C "$tmp/head"
    local pkgs=() p
    for p in "${BENCH_PKGS[@]}"; do
      if ls "$tmp/head/$p"/*_test.go >/dev/null 2>&1 && grep -qs '^func Benchmark' "$tmp/head/$p"/*_test.go; then pkgs+=("$p"); fi
    done
    (cd "$tmp/head" && go test -run '^$' -bench . -benchmem -count "$COUNT" -benchtime "$BENCHTIME" "${pkgs[@]}") >"$out/gobench-head.txt"
    "$bs" head="$out/gobench-head.txt" tree="$out/gobench.txt" | tee "$out/gobench-head-vs-tree.txt"
  fi
}

step_sidebyside() {
  OUT="$out" N="$N" CLIENTS="$CLIENTS" bash infra/bench/sidebyside.sh
}

for s in "${steps[@]}"; do
  case "$s" in
    machine) ;;
    scim | drain | coalesce | reconcile | coldstart | gobench | sidebyside)
      echo "== $s" >&2
      "step_$s"
      ;;
    *) echo "run.sh: unknown step $s" >&2; exit 2 ;;
  esac
done
echo "results in $out" >&2
