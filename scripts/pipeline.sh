#!/usr/bin/env bash
# The whole pipeline on this machine, in one command, with no AWS account and no Docker:
# setup -> local stack (tansu, moto, PostgreSQL) -> producer and consumer under `cargo lambda watch`
# -> one ESM emulator per contract topic -> producer invoked -> progress until every record is
# committed -> per-device window table, counts per sink and a chart (.local/report/pipeline.html).
#
#   scripts/pipeline.sh                 fresh run (the stack's data is reset first)
#   scripts/pipeline.sh --keep          keep what earlier runs stored
#   scripts/pipeline.sh --verify        then check every record is accounted for exactly once and the
#                                       aggregates equal a ground truth read from the topics (CI)
#   PIPELINE_PRODUCER_REQUESTS=file     JSON array of producer requests, invoked in order
#                                       (default: scripts/local/pipeline-requests.json, fixed seeds)
#   PIPELINE_LAMBDA_PORT=19000          cargo lambda watch invoke port of the producer; the consumer's
#                                       (its own environment, as on AWS) is PIPELINE_LAMBDA_PORT+2
#   PIPELINE_TIMEOUT=900                seconds to wait for the mappings to catch up
#   PIPELINE_RECORD_AWS_CALLS=file      the functions reach moto through a recording proxy (port
#                                       PIPELINE_LAMBDA_PORT+1; the mappings +3) that writes every call
#                                       as a JSON line (the IAM check, scripts/test.sh stage iam, reads it)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prologue.sh" pipeline --cd --cargo --spaced-log

REPORT_DIR="$LOCAL_DIR/report"
LAMBDA_PORT="${PIPELINE_LAMBDA_PORT:-19000}"
CONSUMER_PORT=$((LAMBDA_PORT + 2))
TIMEOUT="${PIPELINE_TIMEOUT:-900}"
REQUESTS="${PIPELINE_PRODUCER_REQUESTS:-$REPO_ROOT/scripts/local/pipeline-requests.json}"
KEEP=0
VERIFY=0

for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    --verify) VERIFY=1 ;;
    -h | --help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

STARTED_PIDS=()
cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() {
  local name="$1"; shift
  local started=$SECONDS
  log "── $name"
  "$@"
  log "   $name: $((SECONDS - started))s"
}

# Starts a background process in its own process group (so cleanup can stop its children too).
background() {
  local name="$1" logfile="$2"; shift 2
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  local pid=$!
  STARTED_PIDS+=("$pid")
  echo "$pid" >"$RUN_DIR/$name.pid"
}

check_functions() {
  local missing=()
  for crate in producer consumer; do
    [[ -f "functions/$crate/Cargo.toml" ]] || missing+=("functions/$crate")
  done
  ((${#missing[@]} == 0)) || die "${missing[*]} not in this checkout yet: the pipeline needs both Lambda crates"
  [[ -f "$REQUESTS" ]] || die "producer requests $REQUESTS not found (set PIPELINE_PRODUCER_REQUESTS)"
}

bring_up_stack() {
  if ((KEEP == 0)); then
    scripts/local-stack.sh reset
  fi
  scripts/local-stack.sh up
}

# Everything the run starts, in one build: db-admin-local (the local stack's migrations), the
# emulator, and the two Lambdas `cargo lambda watch` then finds already built.
EMULATOR=""
build() {
  build_binaries debug esm-emulator producer consumer db-admin
  EMULATOR="$BIN_DIR/esm-emulator"
  [[ -x "$EMULATOR" ]] || die "esm-emulator was built but $EMULATOR is missing"
}

start_functions() {
  local port owner
  for port in "$LAMBDA_PORT" "$CONSUMER_PORT"; do
    if owner="$(ss -Hltnp "sport = :$port" | head -n1)" && [[ -n "$owner" ]]; then
      die "cargo lambda watch: port $port is in use ($owner): stop it or set PIPELINE_LAMBDA_PORT"
    fi
  done
  # The functions read the same names as on AWS, pointed at the local stack; the PostgreSQL admin
  # stays with the tools (the consumer runs as its least-privilege role, PG_USER).
  sed -e 's/^export //' -e "s/='\(.*\)'$/=\1/" "$ENV_FILE" | grep -v -e '^#' -e '^PIPELINE_PG_ADMIN_' >"$RUN_DIR/lambda.env"
  if [[ -n "${PIPELINE_RECORD_AWS_CALLS:-}" ]]; then
    start_recording_proxy
  fi
  # The functions' log level and format, as Lambda sets them from the CDK's logging config.
  printf 'AWS_LAMBDA_LOG_LEVEL=%s\nAWS_LAMBDA_LOG_FORMAT=JSON\n' "${PIPELINE_LAMBDA_LOG_LEVEL:-INFO}" >>"$RUN_DIR/lambda.env"
  # Only the consumer reads the registry through the registry-reader role (on AWS only its
  # environment names one): a real sts:AssumeRole against moto, then Glue with those credentials.
  # cargo lambda watch gives one environment to every function it runs, so the consumer runs in
  # a watch of its own.
  cp "$RUN_DIR/lambda.env" "$RUN_DIR/lambda-consumer.env"
  if [[ -n "${PIPELINE_LOCAL_REGISTRY_ROLE_ARN:-}" ]]; then
    echo "$("$PYTHON" -c 'import json;print(json.load(open("contracts/pipeline.json"))["envVars"]["registryRoleArn"])')=$PIPELINE_LOCAL_REGISTRY_ROLE_ARN" >>"$RUN_DIR/lambda-consumer.env"
  fi
  start_watch lambda-watch "$LAMBDA_PORT" "$RUN_DIR/lambda.env"
  start_watch lambda-watch-consumer "$CONSUMER_PORT" "$RUN_DIR/lambda-consumer.env"
}

# One `cargo lambda watch` on 127.0.0.1:port with its own environment file.
start_watch() {
  local name="$1" port="$2" env_file="$3"
  # No RUST_LOG for cargo lambda watch itself: with it, it logs each function's whole
  # environment, passwords included.
  background "$name" "$LOG_DIR/$name.log" \
    env -u RUST_LOG "$CARGO_LAMBDA" lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" \
    --ignore-changes --env-file "$env_file"
  local deadline=$((SECONDS + 120))
  until curl -fs -o /dev/null -X POST "http://127.0.0.1:$port/2015-03-31/functions/none/invocations" -d '{}' ||
    [[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/2015-03-31/functions/none/invocations" -d '{}')" == 404 ]]; do
    ((SECONDS < deadline)) || die "cargo lambda watch did not answer on 127.0.0.1:$port; see $LOG_DIR/$name.log"
    sleep 0.5
  done
  echo "cargo lambda watch on http://127.0.0.1:$port (log: $LOG_DIR/$name.log)" >&2
}

# The functions' AWS calls go through a pass-through proxy that records each one (caller process,
# service, operation, resources); only the functions use it, so the recording holds their calls only.
# The mappings (esm-emulator) use its second endpoint, recorded as acting for the consumer's
# mappings: on AWS the Lambda service makes those calls with the consumer's execution role.
ESM_AWS_ENDPOINT=""
start_recording_proxy() {
  local port=$((LAMBDA_PORT + 1)) esm_port=$((LAMBDA_PORT + 3)) owner
  for owner in "$port" "$esm_port"; do
    if owner="$(ss -Hltnp "sport = :$owner" | head -n1)" && [[ -n "$owner" ]]; then
      die "recording proxy: a port of $port/$esm_port is in use ($owner)"
    fi
  done
  mkdir -p "$(dirname "$PIPELINE_RECORD_AWS_CALLS")"
  : >"$PIPELINE_RECORD_AWS_CALLS"
  background record-proxy "$LOG_DIR/record-proxy.log" "$PYTHON" scripts/local/faults/throttle_proxy.py \
    --port "$port" --upstream "$AWS_ENDPOINT_URL" --rate 0 --stats "$RUN_DIR/record-proxy-stats.json" \
    --record "$PIPELINE_RECORD_AWS_CALLS" --listen "esm:consumer=$esm_port"
  local deadline=$((SECONDS + 30))
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
    ((SECONDS < deadline)) || die "recording proxy did not start; see $LOG_DIR/record-proxy.log"
    sleep 0.2
  done
  sed -i "s|^AWS_ENDPOINT_URL=.*|AWS_ENDPOINT_URL=http://127.0.0.1:$port|" "$RUN_DIR/lambda.env"
  ESM_AWS_ENDPOINT="http://127.0.0.1:$esm_port"
  echo "recording the functions' AWS calls to $PIPELINE_RECORD_AWS_CALLS (proxy 127.0.0.1:$port)" >&2
}

# One mapping per contract topic, with the contract's consumer group and ESM defaults.
ESM_PIDS=()
start_mappings() {
  local topic group batch window
  batch="$("$PYTHON" scripts/local/contract.py value defaults.esmBatchSize)"
  window="$("$PYTHON" scripts/local/contract.py value defaults.esmBatchingWindowSeconds)"
  while read -r topic group _; do
    rm -f "$RUN_DIR/esm-$topic.json"
    background "esm-$topic" "$LOG_DIR/esm-$topic.log" \
      env AWS_ENDPOINT_URL="${ESM_AWS_ENDPOINT:-$AWS_ENDPOINT_URL}" "$EMULATOR" --topic "$topic" --consumer-group "$group" \
      --bootstrap-servers "$KAFKA_BOOTSTRAP_SERVERS" --starting-position TRIM_HORIZON \
      --batch-size "$batch" --batching-window-secs "$window" --maximum-retry-attempts 3 \
      --retry-initial-backoff-ms 500 --retry-max-backoff-ms 5000 \
      --function-name consumer --invoke-endpoint "http://127.0.0.1:$CONSUMER_PORT" \
      --on-failure-queue-url "$ON_FAILURE_QUEUE_URL" --status-file "$RUN_DIR/esm-$topic.json"
    ESM_PIDS+=("$(cat "$RUN_DIR/esm-$topic.pid")")
    echo "mapping $topic -> consumer (group $group, log $LOG_DIR/esm-$topic.log)" >&2
  done < <("$PYTHON" scripts/local/contract.py topics)
}

PRODUCED_AT=0
invoke_producer() {
  local request response code index=0
  for request in $("$PYTHON" - "$REQUESTS" "$RUN_DIR" <<'EOF'
import json, sys
requests = json.load(open(sys.argv[1]))
for index, request in enumerate(requests if isinstance(requests, list) else [requests]):
    path = f"{sys.argv[2]}/producer-request-{index}.json"
    json.dump(request, open(path, "w"))
    print(path)
EOF
  ); do
    response="$RUN_DIR/producer-response-$index.json"
    code="$(curl -sS -o "$response" -w '%{http_code}' -X POST \
      "http://127.0.0.1:$LAMBDA_PORT/2015-03-31/functions/producer/invocations" \
      -H 'Content-Type: application/json' --data-binary "@$request")" ||
      die "producer: invoke failed; see $LOG_DIR/lambda-watch.log"
    [[ "$code" == 200 ]] || die "producer answered HTTP $code to $request: $(head -c 2000 "$response"); see $LOG_DIR/lambda-watch.log"
    echo "producer ($("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["action"])' "$request")): $(head -c 600 "$response")" >&2
    index=$((index + 1))
  done
  PRODUCED_AT="$(date +%s)"
}

wait_for_mappings() {
  local args=() topic pid
  while read -r topic _; do
    args+=(--status "$RUN_DIR/esm-$topic.json")
  done < <("$PYTHON" scripts/local/contract.py topics)
  for pid in "${ESM_PIDS[@]}"; do args+=(--pid "$pid"); done
  "$PYTHON" scripts/local/progress.py "${args[@]}" --since "$PRODUCED_AT" --timeout "$TIMEOUT"
}

summarize() {
  "$PYTHON" scripts/local/summary.py --html "$REPORT_DIR/pipeline.html" --json "$REPORT_DIR/summary.json"
}

main() {
  local started=$SECONDS
  check_functions
  step "setup" scripts/setup.sh
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$REPORT_DIR"
  step "build" build
  step "local stack" bring_up_stack
  set -a
  # shellcheck disable=SC1091
  source "$ENV_FILE"
  set +a
  step "functions (cargo lambda watch)" start_functions
  step "event source mappings" start_mappings
  step "producer" invoke_producer
  step "consume" wait_for_mappings
  cleanup
  STARTED_PIDS=()
  step "summary" summarize
  if ((VERIFY == 1)); then
    step "verify" "$PYTHON" scripts/local/verify.py
  fi
  log "done in $((SECONDS - started))s; open $REPORT_DIR/pipeline.html"
}

main
