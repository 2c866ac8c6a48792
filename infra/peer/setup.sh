#!/usr/bin/env bash
# Installs the peer SCIM server's Node dependencies (pinned) into
# .stack/peer, away from the test stack's own .stack/node_modules (an npm
# install there would prune DynamoDB Local and fauxqs). Idempotent.
#
#   bash infra/peer/setup.sh        # then: node infra/peer/server.js (see server.js)
set -euo pipefail
cd "$(dirname "$0")/../.."
prefix=.stack/peer
pkgs=(scimmy@1.3.5 scimmy-routers@1.3.2 express@5.3.0)
want="${pkgs[*]}"
if [ -f "$prefix/installed" ] && [ "$(cat "$prefix/installed")" = "$want" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "peer setup: npm is needed" >&2; exit 1; }
mkdir -p "$prefix"
# server.js is an ES module; resolve its imports from the prefix.
printf '{"name":"learnerlink-peer","private":true,"type":"module"}\n' >"$prefix/package.json"
npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$prefix" "${pkgs[@]}"
echo "$want" >"$prefix/installed"
echo "peer setup: installed ${pkgs[*]} in $prefix"
