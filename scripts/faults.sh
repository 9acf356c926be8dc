#!/usr/bin/env bash
# Fault tests of the local pipeline against the real components (tansu, moto, PostgreSQL, the
# producer and consumer Lambdas under `cargo lambda watch`, the esm-emulator): redelivery, crashes
# between sink write and commit, partial replays, broker/AWS/PostgreSQL outages, throttling, a
# poison corpus and invalid producer input. Each scenario is checked against a ground truth read
# from the topics and against a clean run's stored state. docs/guarantees.md maps guarantees to
# scenarios; scripts/local/faults/run.py describes each one.
#
#   scripts/faults.sh                       every scenario (what scripts/test.sh's faults stage runs)
#   scripts/faults.sh --only clean,outages  some scenarios (first word of their names; input always runs)
#   scripts/faults.sh --keep                keep each scenario's tables, bucket, queues and database
#
# Uses the local stack named by PIPELINE_LOCAL_DIR / PIPELINE_*_PORT (started if it is not up) and
# 20 loopback ports from PIPELINE_LAMBDA_PORT (else PIPELINE_TEST_LAMBDA_PORT, else 39000) upward.
# PIPELINE_FAULTS_TIMEOUT (s, default 900) bounds the whole run. Prints one line per scenario and
# exits non-zero if any failed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prologue.sh" faults --cd --cargo

PORT_BASE="${PIPELINE_LAMBDA_PORT:-${PIPELINE_TEST_LAMBDA_PORT:-39000}}"
TIMEOUT="${PIPELINE_FAULTS_TIMEOUT:-900}"

case "${1:-}" in
  -h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

[[ -x "$PYTHON" ]] || die "$PYTHON missing: run scripts/setup.sh"
for port in $(seq "$PORT_BASE" $((PORT_BASE + 19))); do
  if ss -Hltn "sport = :$port" | grep -q .; then
    die "port $port is in use; set PIPELINE_LAMBDA_PORT to the first of 20 free ports"
  fi
done

scripts/local-stack.sh up >/dev/null
set -a
# shellcheck disable=SC1091
source "$ENV_FILE"
set +a

build_binaries debug esm-emulator producer consumer

exec timeout -k 20 "$TIMEOUT" "$PYTHON" scripts/local/faults/run.py --esm "$BIN_DIR/esm-emulator" \
  --port-base "$PORT_BASE" --logdir "$LOG_DIR" --rundir "$RUN_DIR" "$@"
