#!/usr/bin/env bash
# The test command (README): starts the real DynamoDB- and SQS-compatible
# servers (installing them on first use), runs every test with the race
# detector, and stops the servers again.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/stack/stack.sh
source infra/stack/stack.sh
trap stack_stop EXIT
stack_start
echo "stack: DynamoDB Local at $LEARNERLINK_TEST_DYNAMODB_ENDPOINT, fauxqs at $LEARNERLINK_TEST_SQS_ENDPOINT"
go test -race -count=1 -timeout 25m "${@:-./...}"
