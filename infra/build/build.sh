#!/usr/bin/env bash
# Builds every Lambda function (one per folder in functions/) the way the
# template deploys it: linux/arm64, static (CGO_ENABLED=0), without the RPC
# shim (-tags lambda.norpc), reproducible paths (-trimpath), stripped
# (-ldflags "-s -w"). Output: <out>/<name>/bootstrap, like .aws-sam/build.
#
# Usage: bash infra/build/build.sh [out]      (default out: dist)
#        GOARCH=amd64 bash infra/build/build.sh  (x86_64 functions)
# Then: go run ./infra/build/coldstart   (init time of each, on this host)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-dist}
arch=${GOARCH:-arm64}

names=()
for d in functions/*/; do
  [ -f "$d/main.go" ] && names+=("$(basename "$d")")
done
if [ ${#names[@]} -eq 0 ]; then
  echo "build: no functions/<name>/main.go found" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pkgs=()
for n in "${names[@]}"; do pkgs+=("./functions/$n"); done
# One go build: the dependencies compile once for all functions.
GOOS=linux GOARCH=$arch CGO_ENABLED=0 \
  go build -tags lambda.norpc -trimpath -ldflags "-s -w" -o "$tmp/" "${pkgs[@]}"

printf '%-12s %10s %10s  %s\n' function bytes MiB path
for n in "${names[@]}"; do
  mkdir -p "$out/$n"
  mv "$tmp/$n" "$out/$n/bootstrap"
  size=$(stat -c %s "$out/$n/bootstrap")
  printf '%-12s %10d %10s  %s\n' "$n" "$size" "$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }')" "$out/$n/bootstrap"
done
echo "linux/$arch; zip each bootstrap alone to deploy without sam build"
