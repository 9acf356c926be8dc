#!/usr/bin/env bash
# Security checks against the running local stack (the `security` stage of scripts/test.sh, after
# the e2e and fault stages, so their logs are there to read):
#
#   1. Loopback only: every listening socket of the stack's processes (tansu, moto, PostgreSQL and
#      their children, plus a `cargo lambda watch` started here exactly as scripts/pipeline.sh
#      starts it) is bound to 127.0.0.1 or ::1, never to 0.0.0.0, :: or an external address.
#   2. No secret in any log: the PostgreSQL password, the local AWS secret key and every value in
#      the stack's Secrets Manager (moto) are searched for, verbatim and encoded, in every file
#      under $PIPELINE_LOCAL_DIR/logs and .../report and in PostgreSQL's server log.
#
# Each check first proves on planted data that it detects what it looks for.
#
#   scripts/security-checks.sh          uses PIPELINE_LOCAL_DIR (default .local) and its stack.env
#   PIPELINE_SECURITY_LAMBDA_PORT=N     port for the cargo lambda watch it starts (default: the
#                                       lambda port + 90)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prologue.sh" security --cd --cargo --die-status 2

CHECKS="$REPO_ROOT/scripts/local/security_checks.py"
# Clear of the ports the e2e and fault stages use (PIPELINE_TEST_LAMBDA_PORT=39000 upward).
LAMBDA_PORT="${PIPELINE_SECURITY_LAMBDA_PORT:-$((${PIPELINE_LAMBDA_PORT:-${PIPELINE_TEST_LAMBDA_PORT:-39000}} + 90))}"

[[ -x "$PYTHON" ]] || die "project venv missing: run scripts/setup.sh"
[[ -f "$ENV_FILE" ]] || die "no $ENV_FILE: start the stack first (scripts/local-stack.sh up)"
command -v ss >/dev/null 2>&1 || die "'ss' is missing: apt-get install -y iproute2"
set -a
# shellcheck disable=SC1090
source "$ENV_FILE"
set +a

started=$SECONDS
status=0

# ── 1. loopback ─────────────────────────────────────────────────────────────────────────────
# The functions run under `cargo lambda watch`, which the e2e stage has stopped again: start one
# the way scripts/pipeline.sh does (same flags, same kind of env file), so its sockets are checked.
WATCH_PID=""
stop_watch() {
  if [[ -n "$WATCH_PID" ]] && kill -0 "$WATCH_PID" 2>/dev/null; then
    kill -TERM -- "-$WATCH_PID" 2>/dev/null || kill -TERM "$WATCH_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$WATCH_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL -- "-$WATCH_PID" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/security-lambda.env"
}
trap stop_watch EXIT

mkdir -p "$RUN_DIR" "$LOG_DIR"
if ss -Hltn "sport = :$LAMBDA_PORT" | grep -q .; then
  die "port $LAMBDA_PORT is in use: set PIPELINE_SECURITY_LAMBDA_PORT to a free port"
fi
sed -e 's/^export //' -e "s/='\(.*\)'$/=\1/" "$ENV_FILE" | grep -v '^#' >"$RUN_DIR/security-lambda.env"
# Under CI load cargo lambda watch has been seen to stop right after starting (its log ends with
# "terminating lambda scheduler"); a fresh start then succeeds, so allow three.
for attempt in 1 2 3; do
  setsid "$CARGO_LAMBDA" lambda watch --invoke-address 127.0.0.1 --invoke-port "$LAMBDA_PORT" \
    --ignore-changes --env-file "$RUN_DIR/security-lambda.env" \
    >>"$LOG_DIR/security-lambda-watch.log" 2>&1 </dev/null &
  WATCH_PID=$!
  deadline=$((SECONDS + 60))
  until ss -Hltn "sport = :$LAMBDA_PORT" | grep -q .; do
    kill -0 "$WATCH_PID" 2>/dev/null || break
    ((SECONDS < deadline)) || die "cargo lambda watch did not listen on port $LAMBDA_PORT within 60s"
    sleep 0.3
  done
  ss -Hltn "sport = :$LAMBDA_PORT" | grep -q . && break
  log "cargo lambda watch exited before listening (attempt $attempt); see $LOG_DIR/security-lambda-watch.log"
  ((attempt < 3)) || die "cargo lambda watch exited three times; see $LOG_DIR/security-lambda-watch.log"
  sleep 2
done

"$PYTHON" "$CHECKS" loopback --run-dir "$RUN_DIR" --pid "$WATCH_PID" \
  --expect-port "${PIPELINE_KAFKA_PORT:-19092}" --expect-port "${PIPELINE_MOTO_PORT:-15000}" \
  --expect-port "${PIPELINE_PG_PORT:-15432}" --expect-port "$LAMBDA_PORT" || status=1
stop_watch
WATCH_PID=""

# ── 2. secrets in logs ──────────────────────────────────────────────────────────────────────
# PostgreSQL logs into its data directory's parent, which may live outside $LOCAL_DIR (see
# scripts/local-stack.sh: /var/tmp when the checkout is not reachable by the postgres user).
pg_logs=()
for candidate in "$LOCAL_DIR/postgres/postgres.log" \
  "/var/tmp/pipeline-postgres-$(printf '%s' "$LOCAL_DIR" | sha256sum | cut -c1-12)/postgres.log"; do
  [[ -f "$candidate" ]] && pg_logs+=(--log-file "$candidate")
done
[[ ${#pg_logs[@]} -gt 0 ]] || { log "FAIL PostgreSQL's server log was not found"; status=1; }

# The pipeline's report (summary JSON, HTML chart) is output a person reads too.
"$PYTHON" "$CHECKS" secrets --env-file "$ENV_FILE" --log-dir "$LOG_DIR" --log-dir "$LOCAL_DIR/report" "${pg_logs[@]}" \
  --aws-endpoint "${AWS_ENDPOINT_URL:?stack.env sets AWS_ENDPOINT_URL}" || status=1

log "done in $((SECONDS - started))s"
exit "$status"
