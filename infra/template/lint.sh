#!/usr/bin/env bash
# Lints template.yaml with cfn-lint@1.9.7 from npm (installed into the
# ignored .stack/cfn-lint on first use). Exits non-zero on any error ("crit");
# warnings are listed and do not fail.
#
# cfn-lint 1.9.7 bundles the CloudFormation resource specification 2.29.0
# and a 2019 SAM specification, so it rejects properties and types AWS has
# added since. Those findings are listed as "known-outdated" and do not
# fail; each entry below is valid in today's SAM/CloudFormation (checked
# with the current Python cfn-lint and the SAM translator). Any other error
# fails. When a modern cfn-lint (the Python one, v1.x) is on PATH it runs
# too, and its errors fail as well.
set -euo pipefail
cd "$(dirname "$0")/../.."
LINT_DIR=${LINT_DIR:-"$(pwd)/.stack/cfn-lint"}
TEMPLATE=${1:-template.yaml}

if [ ! -f "$LINT_DIR/node_modules/cfn-lint/package.json" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  fi
  mkdir -p "$LINT_DIR"
  # Its own prefix: an npm install prunes packages it did not install, and
  # .stack/node_modules holds the test servers.
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$LINT_DIR" cfn-lint@1.9.7
fi

LINT_DIR="$LINT_DIR" node - "$TEMPLATE" <<'EOF'
const path = require("path");
const api = require(path.join(process.env.LINT_DIR, "node_modules", "cfn-lint"));
const template = process.argv[2];
// message pattern -> why it is not an error today
const outdated = [
  [/^Resource \w+ has an invalid Type of AWS::Serverless::HttpApi\.$/, "SAM HttpApi (2019-12)"],
  [/^Architectures is not a valid property of AWS::Serverless::Function$/, "Lambda arm64 (2021-09)"],
  [/^ApiId is not a valid property of AWS::Serverless::Function\.ApiEvent$/, "the linter reads an HttpApi event as an Api event"],
  [/^FunctionResponseTypes is not a valid property of AWS::Serverless::Function\.SQSEvent$/, "SQS partial batch responses (2021-11)"],
  [/^ScalingConfig is not a valid property of AWS::Serverless::Function\.SQSEvent$/, "SQS event source maximum concurrency (2023-01)"],
];
const r = api.validateFile(template);
let errors = 0;
for (const e of r.errors.crit) {
  const known = outdated.find(([re]) => re.test(e.message));
  if (known) {
    console.log(`known-outdated: ${e.resource}: ${e.message} [${known[1]}]`);
  } else {
    console.log(`ERROR: ${e.resource}: ${e.message}`);
    errors++;
  }
}
for (const e of r.errors.warn) console.log(`warning: ${e.resource}: ${e.message}`);
for (const e of r.errors.info) console.log(`info: ${e.resource}: ${e.message}`);
console.log(`cfn-lint 1.9.7: ${errors} error(s), ${r.errors.warn.length} warning(s)`);
process.exit(errors > 0 ? 1 : 0);
EOF

# The Python cfn-lint (v1.x) knows today's specification; use it when a
# developer or CI machine has it.
if command -v cfn-lint >/dev/null 2>&1 && cfn-lint --version 2>/dev/null | grep -q '^cfn-lint 1\.'; then
  echo "$(cfn-lint --version):"
  rc=0
  cfn-lint --format parseable "$TEMPLATE" || rc=$?
  # Exit codes are a bit mask: 2 errors, 4 warnings, 8 informational.
  if (( rc & 2 )) || (( rc & 1 )); then
    echo "cfn-lint (Python) found errors" >&2
    exit 1
  fi
  echo "cfn-lint (Python): no errors"
fi
