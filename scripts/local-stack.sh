#!/usr/bin/env bash
# The local stack: tansu (Kafka API), moto server (DynamoDB, S3, SQS, Secrets Manager, STS, Glue)
# and PostgreSQL, each on 127.0.0.1 with its data under .local/, provisioned from contracts/pipeline.json.
#
#   scripts/local-stack.sh up                 start what is not running, provision, write .local/stack.env
#   scripts/local-stack.sh down               stop everything this script started
#   scripts/local-stack.sh status             one line per component
#   scripts/local-stack.sh env                print the env file (after up)
#   scripts/local-stack.sh start|stop COMPONENT    one of: kafka moto postgres (fault tests use these)
#   scripts/local-stack.sh pause|resume COMPONENT  SIGSTOP/SIGCONT: an outage that keeps the state
#   scripts/local-stack.sh reset              down, then delete .local/ data (topics, tables, rows)
#   scripts/local-stack.sh provision-database NAME   migrations + the consumer role's grants in NAME
#
# PostgreSQL is provisioned as on AWS: the admin (PIPELINE_PG_USER, owner of the databases) applies
# the migrations and creates the contract's consumer role (password PIPELINE_PG_CONSUMER_PASSWORD)
# with db-admin-local; stack.env gives the consumer that role (PG_USER/PG_PASSWORD) and the tools
# the admin (PIPELINE_PG_ADMIN_USER/PIPELINE_PG_ADMIN_PASSWORD).
#
# Ports (override with env): PIPELINE_KAFKA_PORT=19092 PIPELINE_MOTO_PORT=15000 PIPELINE_PG_PORT=15432
# PIPELINE_LOCAL_DIR moves the data (default <repo>/.local); PIPELINE_STACK_TIMEOUT (s) bounds each wait.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prologue.sh" local-stack --cargo

KAFKA_PORT="${PIPELINE_KAFKA_PORT:-19092}"
MOTO_PORT="${PIPELINE_MOTO_PORT:-15000}"
PG_PORT="${PIPELINE_PG_PORT:-15432}"
PG_USER="${PIPELINE_PG_USER:-pipeline}"
PG_PASSWORD="${PIPELINE_PG_PASSWORD:-pipeline-local}"
PG_CONSUMER_PASSWORD="${PIPELINE_PG_CONSUMER_PASSWORD:-pipeline-consumer-local}"
AWS_REGION_LOCAL="${PIPELINE_AWS_REGION:-us-east-1}"
TIMEOUT="${PIPELINE_STACK_TIMEOUT:-60}"
HOST=127.0.0.1

TANSU_BIN="${PIPELINE_TANSU_BIN:-$PIPELINE_CACHE/tansu/bin/tansu}"
# PostgreSQL refuses to run as root, so as root it runs as the 'postgres' user, which must be able to
# reach its data dir. A checkout under a private home (e.g. /root) is not reachable: the data then
# lives in a per-checkout folder under /var/tmp instead.
pg_dir() {
  local dir="$LOCAL_DIR/postgres"
  if [[ "$(id -u)" == "0" ]] && id postgres >/dev/null 2>&1; then
    mkdir -p "$LOCAL_DIR"
    if ! runuser -u postgres -- test -x "$LOCAL_DIR" 2>/dev/null; then
      dir="/var/tmp/pipeline-postgres-$(printf '%s' "$LOCAL_DIR" | sha256sum | cut -c1-12)"
    fi
  fi
  echo "$dir"
}
PG_DIR="${PIPELINE_PG_DIR:-$(pg_dir)}"
PG_DATA="$PG_DIR/data"
PG_SOCKET_DIR="$PG_DIR/socket"
PG_LOG="$PG_DIR/postgres.log"

contract_value() {
  "$PYTHON" "$REPO_ROOT/scripts/local/contract.py" value "$1"
}

pid_file() { echo "$RUN_DIR/$1.pid"; }

# The pid recorded for a component, if that process is still alive.
running_pid() {
  local file pid
  file="$(pid_file "$1")"
  [[ -f "$file" ]] || return 1
  pid="$(cat "$file")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# Who listens on a TCP port on loopback: "pid N (name)" or "an unknown process".
port_owner() {
  local line
  line="$(ss -Hltnp "sport = :$1" 2>/dev/null | head -n1)"
  [[ -n "$line" ]] || return 1
  if [[ "$line" =~ pid=([0-9]+) ]]; then
    local pid="${BASH_REMATCH[1]}"
    echo "pid $pid ($(ps -o comm= -p "$pid" 2>/dev/null || echo '?'))"
  else
    echo "an unknown process"
  fi
}

ensure_port_free() {
  local component="$1" port="$2" variable="$3" owner
  if owner="$(port_owner "$port")"; then
    die "$component: port $port is in use by $owner: run 'scripts/local-stack.sh down' if it is a stale stack, or set $variable to a free port"
  fi
}

# Polls a readiness check until it passes or the timeout ends; a dead process ends the wait early.
wait_ready() {
  local component="$1" pid="$2" logfile="$3"; shift 3
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$logfile" >&2 || true
      die "$component exited during startup; see $logfile (last lines above)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$logfile" >&2 || true
      die "$component not ready after ${TIMEOUT}s; see $logfile, or raise PIPELINE_STACK_TIMEOUT"
    fi
    sleep 0.3
  done
}

# Starts a command detached in its own session, records its pid.
spawn() {
  local component="$1" logfile="$2"; shift 2
  # fd 8 is the stack lock: the long-lived child must not keep holding it.
  setsid "$@" >>"$logfile" 2>&1 </dev/null 8>&- &
  echo $! >"$(pid_file "$component")"
  echo $!
}

check_prerequisites() {
  [[ -x "$PYTHON" ]] || die "project venv missing ($VENV): run scripts/setup.sh"
  command -v ss >/dev/null 2>&1 || die "'ss' is missing: apt-get install -y iproute2"
  mkdir -p "$RUN_DIR" "$LOG_DIR"
}

# ── kafka (tansu) ────────────────────────────────────────────────────────────
kafka_ready() {
  "$PYTHON" - "$HOST:$KAFKA_PORT" <<'EOF'
import sys
from confluent_kafka.admin import AdminClient
AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0}).list_topics(timeout=3)
EOF
}

start_kafka() {
  local pid
  if pid="$(running_pid kafka)"; then
    log "kafka: tansu already running (pid $pid) on $HOST:$KAFKA_PORT"
    return
  fi
  [[ -x "$TANSU_BIN" ]] || die "kafka: tansu not found at $TANSU_BIN: run scripts/setup.sh"
  ensure_port_free kafka "$KAFKA_PORT" PIPELINE_KAFKA_PORT
  mkdir -p "$LOCAL_DIR/tansu"
  # tansu resolves a sqlite:// URL's path against its working directory, so it starts in $LOCAL_DIR.
  pid="$(cd "$LOCAL_DIR" && spawn kafka "$LOG_DIR/kafka.log" "$TANSU_BIN" broker \
    --listener-url "tcp://$HOST:$KAFKA_PORT" \
    --advertised-listener-url "tcp://$HOST:$KAFKA_PORT" \
    --storage-engine "sqlite://tansu/tansu.db")"
  wait_ready kafka "$pid" "$LOG_DIR/kafka.log" kafka_ready
  log "kafka: tansu ready on $HOST:$KAFKA_PORT (pid $pid)"
}

# ── moto ─────────────────────────────────────────────────────────────────────
moto_ready() { curl -fsS -o /dev/null "http://$HOST:$MOTO_PORT/moto-api/"; }

start_moto() {
  local pid
  if pid="$(running_pid moto)"; then
    log "moto: already running (pid $pid) on $HOST:$MOTO_PORT"
    return
  fi
  [[ -x "$VENV/bin/moto_server" ]] || die "moto: $VENV/bin/moto_server missing: run scripts/setup.sh"
  ensure_port_free moto "$MOTO_PORT" PIPELINE_MOTO_PORT
  pid="$(spawn moto "$LOG_DIR/moto.log" "$VENV/bin/moto_server" -H "$HOST" -p "$MOTO_PORT")"
  wait_ready moto "$pid" "$LOG_DIR/moto.log" moto_ready
  log "moto: ready on http://$HOST:$MOTO_PORT (pid $pid)"
}

# ── postgres ─────────────────────────────────────────────────────────────────
pg_bin_dir() {
  if command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return
  fi
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
  [[ -n "$dir" && -x "$dir/pg_ctl" ]] || die "postgres: initdb/pg_ctl not found: run scripts/setup.sh"
  echo "$dir"
}

# PostgreSQL refuses to run as root, so as root the server runs as the 'postgres' system user.
as_pg_owner() {
  if [[ "$(id -u)" == "0" ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_ready() { PGPASSWORD="$PG_PASSWORD" "$(pg_bin_dir)/pg_isready" -q -h "$HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres; }

pg_psql() {
  PGPASSWORD="$PG_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U "$PG_USER" "$@"
}

init_postgres() {
  [[ -f "$PG_DATA/PG_VERSION" ]] && return
  local bin="$1"
  log "postgres: initialising $PG_DATA"
  if [[ "$(id -u)" == "0" ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    [[ "$PG_DIR" == "$LOCAL_DIR/postgres" ]] || log "postgres: $LOCAL_DIR is not reachable by the postgres user; data goes to $PG_DIR"
    mkdir -p "$PG_DIR"
    chown postgres: "$PG_DIR"
    chmod 700 "$PG_DIR"
  fi
  as_pg_owner mkdir -p "$PG_DATA" "$PG_SOCKET_DIR"
  local pwfile
  pwfile="$(as_pg_owner mktemp)"
  printf '%s\n' "$PG_PASSWORD" | as_pg_owner tee "$pwfile" >/dev/null
  as_pg_owner "$bin/initdb" -D "$PG_DATA" -U "$PG_USER" --pwfile="$pwfile" \
    --auth-host=scram-sha-256 --auth-local=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
    >>"$LOG_DIR/postgres-init.log" 2>&1 || {
      as_pg_owner rm -f "$pwfile"
      die "postgres: initdb failed; see $LOG_DIR/postgres-init.log"
    }
  as_pg_owner rm -f "$pwfile"
}

start_postgres() {
  local bin pid
  bin="$(pg_bin_dir)"
  init_postgres "$bin"
  if [[ -f "$PG_DATA/postmaster.pid" ]] && pid="$(head -n1 "$PG_DATA/postmaster.pid")" && kill -0 "$pid" 2>/dev/null; then
    echo "$pid" >"$(pid_file postgres)"
    log "postgres: already running (pid $pid) on $HOST:$PG_PORT"
  else
    ensure_port_free postgres "$PG_PORT" PIPELINE_PG_PORT
    as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" \
      -o "-c listen_addresses=$HOST -p $PG_PORT -k $PG_SOCKET_DIR" start >/dev/null 8>&- ||
      { tail -n 20 "$PG_LOG" >&2 || true; die "postgres: pg_ctl start failed; see $PG_LOG"; }
    pid="$(head -n1 "$PG_DATA/postmaster.pid")"
    echo "$pid" >"$(pid_file postgres)"
  fi
  wait_ready postgres "$pid" "$PG_LOG" pg_ready
  local database
  database="$(contract_value postgres.database)"
  if [[ "$(pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'")" != "1" ]]; then
    pg_psql -d postgres -c "CREATE DATABASE \"$database\""
    log "postgres: database $database created"
  fi
  log "postgres: ready on $HOST:$PG_PORT (pid $pid, user $PG_USER, database $database)"
}

# ── stop / pause ─────────────────────────────────────────────────────────────
stop_component() {
  local component="$1" pid
  if [[ "$component" == postgres && -f "$PG_DATA/postmaster.pid" ]]; then
    as_pg_owner "$(pg_bin_dir)/pg_ctl" -D "$PG_DATA" -m fast -w -t "$TIMEOUT" stop >/dev/null 2>&1 || true
  fi
  if pid="$(running_pid "$component")"; then
    kill -CONT "$pid" 2>/dev/null || true # a paused process cannot handle SIGTERM
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$component: pid $pid ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "$component: stopped (pid $pid)"
  else
    log "$component: not running"
  fi
  rm -f "$(pid_file "$component")"
}

signal_component() {
  local component="$1" signal="$2" pid
  pid="$(running_pid "$component")" || die "$component is not running: scripts/local-stack.sh up"
  kill "-$signal" "$pid"
  log "$component: sent SIG$signal to pid $pid"
}

# ── provisioning ─────────────────────────────────────────────────────────────
# The deploy-time step of AWS (the db-admin custom resource), for one local database.
provision_database() {
  local database="$1"
  mkdir -p "$LOG_DIR"
  (cd "$REPO_ROOT" && DB_ADMIN_PASSWORD="$PG_PASSWORD" DB_ADMIN_ROLE_PASSWORD="$PG_CONSUMER_PASSWORD" \
    cargo run -q -p db-admin --bin db-admin-local -- --host "$HOST" --port "$PG_PORT" --database "$database" \
    --admin-user "$PG_USER" --role "$(contract_value postgres.consumerRole)") \
    >>"$LOG_DIR/db-admin.log" 2>&1 || { tail -n 20 "$LOG_DIR/db-admin.log" >&2; die "postgres: provisioning $database failed; see $LOG_DIR/db-admin.log"; }
  log "postgres: $database provisioned: $(tail -n1 "$LOG_DIR/db-admin.log")"
}

provision() {
  provision_database "$(contract_value postgres.database)"
  "$PYTHON" "$REPO_ROOT/scripts/local/provision.py" \
    --kafka "$HOST:$KAFKA_PORT" --aws-endpoint "http://$HOST:$MOTO_PORT" --region "$AWS_REGION_LOCAL" \
    --pg-host "$HOST" --pg-port "$PG_PORT" --pg-user "$(contract_value postgres.consumerRole)" \
    --pg-password "$PG_CONSUMER_PASSWORD" --pg-admin-user "$PG_USER" --pg-admin-password "$PG_PASSWORD" \
    --env-file "$ENV_FILE"
}

status_line() {
  local component="$1" endpoint="$2" check="$3" pid state
  if pid="$(running_pid "$component")"; then
    if [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == T* ]]; then
      state="paused"
    elif $check >/dev/null 2>&1; then
      state="ready"
    else
      state="not ready"
    fi
    printf '%-9s %-10s pid %-8s %s\n' "$component" "$state" "$pid" "$endpoint"
  else
    local owner=""
    owner="$(port_owner "${endpoint##*:}" || true)"
    printf '%-9s %-10s %-12s %s%s\n' "$component" "stopped" "" "$endpoint" "${owner:+ (port held by $owner)}"
    return 1
  fi
}

start_one() {
  case "$1" in
    kafka) start_kafka ;;
    moto) start_moto ;;
    postgres) start_postgres ;;
    *) die "unknown component '$1' (kafka, moto, postgres)" ;;
  esac
}

with_lock() {
  mkdir -p "$LOCAL_DIR"
  exec 8>"$LOCAL_DIR/.stack.lock"
  flock -w "$((TIMEOUT * 3))" 8 || die "another local-stack.sh holds $LOCAL_DIR/.stack.lock"
  "$@"
}

cmd_up() {
  local started=$SECONDS
  check_prerequisites
  start_kafka
  start_moto
  start_postgres
  provision
  log "stack up in $((SECONDS - started))s; env: . $ENV_FILE"
}

cmd_down() {
  mkdir -p "$RUN_DIR"
  local component
  for component in kafka moto postgres; do stop_component "$component"; done
}

cmd_status() {
  local failed=0
  status_line kafka "$HOST:$KAFKA_PORT" kafka_ready || failed=1
  status_line moto "http://$HOST:$MOTO_PORT" moto_ready || failed=1
  status_line postgres "$HOST:$PG_PORT" pg_ready || failed=1
  [[ -f "$ENV_FILE" ]] && echo "env file: $ENV_FILE" || echo "env file: none yet (scripts/local-stack.sh up)"
  return "$failed"
}

main() {
  local command="${1:-}"
  case "$command" in
    up) with_lock cmd_up ;;
    down) with_lock cmd_down ;;
    status) check_prerequisites; cmd_status ;;
    env) [[ -f "$ENV_FILE" ]] || die "no $ENV_FILE yet: run scripts/local-stack.sh up"; cat "$ENV_FILE" ;;
    start) [[ -n "${2:-}" ]] || die "usage: $0 start kafka|moto|postgres"; check_prerequisites; with_lock start_one "$2" ;;
    stop) [[ -n "${2:-}" ]] || die "usage: $0 stop kafka|moto|postgres"; with_lock stop_component "$2" ;;
    pause) signal_component "${2:?component}" STOP ;;
    resume) signal_component "${2:?component}" CONT ;;
    provision) check_prerequisites; provision ;;
    provision-database) [[ -n "${2:-}" ]] || die "usage: $0 provision-database NAME"; provision_database "$2" ;;
    reset)
      with_lock cmd_down
      log "deleting $LOCAL_DIR/{tansu,run,logs}, $PG_DIR and the env file"
      rm -rf "$LOCAL_DIR/tansu" "$PG_DIR" "$RUN_DIR" "$LOG_DIR" "$ENV_FILE"
      ;;
    *)
      sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      [[ -z "$command" || "$command" == help || "$command" == -h || "$command" == --help ]] || exit 2
      ;;
  esac
}

main "$@"
