#!/usr/bin/env bash
# Runs every test the project has, the way CI does: setup, static checks, the Rust unit and
# integration tests against a real local stack (tansu, moto, PostgreSQL), the CDK tests and
# scanners, a bundled synth, and the end-to-end local pipeline.
#
#   scripts/test.sh                 everything
#   PIPELINE_TEST_ONLY="rust cdk"   only the named stages (see STAGES below)
#
# The test stack runs on its own ports and data dir (.local/test), so it never disturbs a local
# pipeline you have running. Caches (built tools, cargo target dir) live under PIPELINE_CACHE.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prologue.sh" test --cd --cargo --path .venv/bin:node_modules/.bin --spaced-log

# The test stack: separate ports and data from the interactive local pipeline.
export PIPELINE_LOCAL_DIR="${PIPELINE_TEST_LOCAL_DIR:-$REPO_ROOT/.local/test}"
export PIPELINE_KAFKA_PORT="${PIPELINE_TEST_KAFKA_PORT:-39092}"
export PIPELINE_MOTO_PORT="${PIPELINE_TEST_MOTO_PORT:-35000}"
export PIPELINE_PG_PORT="${PIPELINE_TEST_PG_PORT:-35432}"
use_local_dir "$PIPELINE_LOCAL_DIR"

STAGES=(setup static stack rust e2e iam deploy faults security cdk scan fuzz bench bundled)
ONLY="${PIPELINE_TEST_ONLY:-${STAGES[*]}}"

wanted() { [[ " $ONLY " == *" $1 "* ]]; }

stage_setup() { scripts/setup.sh; }

# No test support ships in a Lambda: every fakes/fuzzing/testkit module is compiled only for tests
# or the `testing` feature, and the feature set `cargo lambda build --bin X` resolves (the default
# members, without dev-dependencies) enables no `testing` feature.
check_no_test_support_in_lambdas() {
  local ungated
  ungated="$(grep -rn -B1 -E '^pub mod (fakes|fuzzing|testkit)( |;|\{)' functions --include=*.rs |
    awk '/-[0-9]+-/ { previous = $0; next } /:[0-9]+:/ { if (previous !~ /cfg\((any\(test, )?feature = "testing"\)?\)/) print }')"
  if [[ -n "$ungated" ]]; then
    printf 'test support outside the testing feature:\n%s\n' "$ungated" >&2
    return 1
  fi
  if cargo tree --locked -e normal,build,features --prefix none | grep -F 'feature "testing"'; then
    echo 'a Lambda build enables the testing feature (above)' >&2
    return 1
  fi
}

stage_static() {
  # The scripts' shared prologue, that no script keeps a copy of it, and that every crate of ours is
  # rebuilt when the shared target last built another checkout (scripts/local/tests).
  "$PYTHON" -m unittest discover -s scripts/local/tests -t scripts/local
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --locked -- -D warnings
  check_no_test_support_in_lambdas
  # The TypeScript bindings in cdk/lib/generated/ must be what the Rust side generates.
  cargo run --locked -q -p pipeline-bindings --bin generate-bindings -- --check
  npm run --silent build
  npm run --silent lint
}

stage_stack() {
  scripts/local-stack.sh up
}

# The integration tests' AWS calls go through a recording proxy (for the iam stage) with one
# endpoint per identity a test acts as (functions/test-recording): the consumer, the producer, the
# consumer's event source mappings, and the test itself (AWS_ENDPOINT_URL: set-up, assertions and
# the adapter tests, recorded but never judged as a function).
RUST_AWS_CALLS="$PIPELINE_LOCAL_DIR/report/aws-calls-rust.jsonl"
RUST_ENVIRONMENTS="$PIPELINE_LOCAL_DIR/report/aws-call-environments-rust.jsonl"
start_rust_recording() {
  local base=$((${PIPELINE_TEST_LAMBDA_PORT:-39000} + 30)) port label pairs=() listen=()
  for port in $(seq "$base" $((base + 4))); do
    ! ss -Hltn "sport = :$port" | grep -q . || { echo "recording proxy: port $port is in use" >&2; return 1; }
  done
  mkdir -p "$(dirname "$RUST_AWS_CALLS")"
  : >"$RUST_AWS_CALLS"
  : >"$RUST_ENVIRONMENTS"
  port=$base
  for label in consumer producer esm:consumer test; do
    port=$((port + 1))
    listen+=(--listen "$label=$port")
    pairs+=("$label=http://127.0.0.1:$port")
  done
  "$PYTHON" scripts/local/faults/throttle_proxy.py --port "$base" --upstream "$AWS_ENDPOINT_URL" \
    --rate 0 --stats "$RUN_DIR/rust-record-proxy-stats.json" --record "$RUST_AWS_CALLS" "${listen[@]}" \
    >"$LOG_DIR/rust-record-proxy.log" 2>&1 &
  RUST_RECORD_PROXY=$!
  local deadline=$((SECONDS + 30))
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
    ((SECONDS < deadline)) || { echo "recording proxy did not start; see $LOG_DIR/rust-record-proxy.log" >&2; return 1; }
    sleep 0.2
  done
  PIPELINE_RECORD_ENDPOINTS="$(IFS=,; echo "${pairs[*]}")"
  export PIPELINE_RECORD_ENDPOINTS PIPELINE_RECORD_ENVIRONMENTS="$RUST_ENVIRONMENTS"
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"  # the last label: test
}

stage_rust() {
  # Integration tests must fail, not skip, when the stack is missing.
  export PIPELINE_REQUIRE_STACK=1
  set -a
  # shellcheck disable=SC1091
  source "$ENV_FILE"
  set +a
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  start_rust_recording
  trap 'kill "$RUST_RECORD_PROXY" 2>/dev/null || true' EXIT
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
  else
    cargo test --workspace --locked --no-fail-fast
  fi
  check_one_build_serves_every_binary
}

# The binaries built together (as pipeline.sh, faults.sh and the deploy stage build them) leave
# nothing to compile when one is built alone, as `cargo lambda watch` and local-stack.sh's
# db-admin-local do: every third-party crate has one feature set (functions/feature-union).
BINARIES=(esm-emulator producer consumer db-admin topic-admin)
check_one_build_serves_every_binary() {
  local crate compiled
  build_binaries debug "${BINARIES[@]}"
  for crate in "${BINARIES[@]}"; do
    compiled="$(cargo build --locked -p "$crate" 2>&1 | grep -E '^ *Compiling ' || true)"
    if [[ -n "$compiled" ]]; then
      printf 'building %s alone compiled again what the joint build had compiled:\n%s\n' "$crate" "$compiled" >&2
      echo 'a dependency change split a feature set: run `cargo hakari generate` (.config/hakari.toml)' >&2
      return 1
    fi
  done
}

# The whole local pipeline with fixed seeds, checked against a ground truth read from the topics:
# every record accounted for exactly once, aggregates equal to an independent recomputation.
# The functions' AWS calls are recorded for the iam stage.
AWS_CALLS="$PIPELINE_LOCAL_DIR/report/aws-calls.jsonl"
stage_e2e() {
  rm -f "$AWS_CALLS"
  PIPELINE_LAMBDA_PORT="${PIPELINE_TEST_LAMBDA_PORT:-39000}" PIPELINE_RECORD_AWS_CALLS="$AWS_CALLS" scripts/pipeline.sh --verify
}

# IAM both ways: every AWS call the functions and the consumer's mappings made in the integration
# tests (rust) and in e2e is judged against the synthesized policies of the role each runs as on AWS
# (and the role the consumer assumes, and the KMS calls encrypted resources imply); what no local run
# can make is modelled and listed as such; grants no call used are listed. Fails on a denial, an
# empty recording or a caller with no recorded call.
stage_iam() {
  npx ts-node --transpile-only --project cdk/tsconfig.json cdk/scripts/check-iam.ts \
    --env "$RUN_DIR/lambda-consumer.env" --environments "$RUST_ENVIRONMENTS" "$RUST_AWS_CALLS" "$AWS_CALLS"
}

# The post-deploy check (scripts/check-deployment.sh) pointed at the local pipeline, each ESM
# emulator answering the Lambda API's mapping reads: it must pass, then fail naming the broken
# mapping's problem when one reads a topic that does not exist. Its unit tests (recorded AWS
# responses; teardown order and waits against moto) run first.
stage_deploy() {
  local target
  "$PYTHON" -m unittest discover -s scripts/local/deployment/tests -t scripts/local
  build_binaries debug esm-emulator producer consumer
  PYTHONPATH="$REPO_ROOT/scripts/local" "$PYTHON" scripts/local/deployment/local_stage.py --esm "$BIN_DIR/esm-emulator" \
    --port-base $((${PIPELINE_TEST_LAMBDA_PORT:-39000} + 50)) --env-file "$ENV_FILE" \
    --logdir "$LOG_DIR" --rundir "$RUN_DIR"
}

# Redelivery, crashes, outages, throttling, poison records and bad producer input, each checked
# against the same independent ground truth as e2e (docs/guarantees.md).
stage_faults() {
  "$PYTHON" -m unittest discover -s scripts/local/faults/tests -t scripts/local
  scripts/faults.sh
}

# Secrets absent from every captured log, every local server bound to loopback only.
stage_security() { scripts/security-checks.sh; }

stage_cdk() { npm run --silent test:cdk; }

stage_scan() { bash cdk/scripts/scan-templates.sh; }

# A short, bounded cargo-fuzz run of every target (the long runs are recorded in docs/guarantees.md).
stage_fuzz() { scripts/fuzz.sh --ci; }

# Exercises the benchmark code end to end on tiny inputs; figures are not judged here. The cost
# model's and the report's unit tests run first.
stage_bench() {
  "$PYTHON" -m unittest discover -s bench/python -p 'test_*.py'
  scripts/bench.sh --smoke
}

stage_bundled() { bash cdk/scripts/synth-bundled.sh; }

stop_stack() {
  if wanted stack || wanted e2e || wanted deploy || wanted faults || wanted security; then
    scripts/local-stack.sh down >/dev/null 2>&1 || true
  fi
}
trap stop_stack EXIT

passed=0
failed=0
summary=()
for stage in "${STAGES[@]}"; do
  wanted "$stage" || continue
  log "stage $stage"
  started=$SECONDS
  # Not `if ( stage )`: inside a tested command bash ignores `set -e`, and a stage would pass
  # whenever its last command passed.
  set +e
  ( set -e; "stage_$stage" )
  status=$?
  set -e
  if [[ "$status" -eq 0 ]]; then
    passed=$((passed + 1))
    summary+=("$(printf '  %-8s ok      %4ds' "$stage" $((SECONDS - started)))")
  else
    failed=$((failed + 1))
    summary+=("$(printf '  %-8s FAILED  %4ds' "$stage" $((SECONDS - started)))")
    # Later stages depend on setup and the stack; there is no point running them.
    if [[ "$stage" == setup || "$stage" == stack ]]; then
      break
    fi
  fi
done

printf '\n[test] stages:\n'
printf '%s\n' "${summary[@]}"
echo "stages: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
