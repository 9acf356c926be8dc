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

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

export PIPELINE_CACHE="${PIPELINE_CACHE:-$HOME/.cache/pipeline}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PIPELINE_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export PATH="$REPO_ROOT/.venv/bin:$REPO_ROOT/node_modules/.bin:$PATH"

# The test stack: separate ports and data from the interactive local pipeline.
export PIPELINE_LOCAL_DIR="${PIPELINE_TEST_LOCAL_DIR:-$REPO_ROOT/.local/test}"
export PIPELINE_KAFKA_PORT="${PIPELINE_TEST_KAFKA_PORT:-39092}"
export PIPELINE_MOTO_PORT="${PIPELINE_TEST_MOTO_PORT:-35000}"
export PIPELINE_PG_PORT="${PIPELINE_TEST_PG_PORT:-35432}"

STAGES=(setup static stack rust e2e iam deploy faults security cdk scan fuzz bench bundled)
ONLY="${PIPELINE_TEST_ONLY:-${STAGES[*]}}"

log() { printf '\n[test] %s\n' "$*" >&2; }

wanted() { [[ " $ONLY " == *" $1 "* ]]; }

stage_setup() { scripts/setup.sh; }

stage_static() {
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --locked -- -D warnings
  # The TypeScript bindings in cdk/lib/generated/ must be what the Rust side generates.
  cargo run --locked -q -p pipeline-bindings --bin generate-bindings -- --check
  npm run --silent build
  npm run --silent lint
}

stage_stack() {
  scripts/local-stack.sh up
}

stage_rust() {
  # Integration tests must fail, not skip, when the stack is missing.
  export PIPELINE_REQUIRE_STACK=1
  set -a
  # shellcheck disable=SC1091
  source "$PIPELINE_LOCAL_DIR/stack.env"
  set +a
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
  else
    cargo test --workspace --locked --no-fail-fast
  fi
}

# The whole local pipeline with fixed seeds, checked against a ground truth read from the topics:
# every record accounted for exactly once, aggregates equal to an independent recomputation.
# The functions' AWS calls are recorded for the iam stage.
AWS_CALLS="$PIPELINE_LOCAL_DIR/report/aws-calls.jsonl"
stage_e2e() {
  rm -f "$AWS_CALLS"
  PIPELINE_LAMBDA_PORT="${PIPELINE_TEST_LAMBDA_PORT:-39000}" PIPELINE_RECORD_AWS_CALLS="$AWS_CALLS" scripts/pipeline.sh --verify
}

# IAM both ways: every AWS call the functions made in e2e is judged against the synthesized
# policies of the role each runs as on AWS (and the role it assumes, and the KMS calls encrypted
# resources imply); grants no call used are listed. Fails on a denial or an empty recording.
stage_iam() {
  npx ts-node --transpile-only --project cdk/tsconfig.json cdk/scripts/check-iam.ts \
    "$AWS_CALLS" "$PIPELINE_LOCAL_DIR/run/lambda.env"
}

# The post-deploy check (scripts/check-deployment.sh) pointed at the local pipeline, each ESM
# emulator answering the Lambda API's mapping reads: it must pass, then fail naming the broken
# mapping's problem when one reads a topic that does not exist. Its unit tests (recorded AWS
# responses; teardown order and waits against moto) run first.
stage_deploy() {
  local python="$REPO_ROOT/.venv/bin/python" target
  "$python" -m unittest discover -s scripts/local/deployment/tests -t scripts/local
  for crate in esm-emulator producer consumer; do
    cargo build --quiet -p "$crate"
  done
  target="$(cargo metadata --format-version 1 --no-deps | "$python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  PYTHONPATH="$REPO_ROOT/scripts/local" "$python" scripts/local/deployment/local_stage.py --esm "$target/debug/esm-emulator" \
    --port-base $((${PIPELINE_TEST_LAMBDA_PORT:-39000} + 50)) --env-file "$PIPELINE_LOCAL_DIR/stack.env" \
    --logdir "$PIPELINE_LOCAL_DIR/logs" --rundir "$PIPELINE_LOCAL_DIR/run"
}

# Redelivery, crashes, outages, throttling, poison records and bad producer input, each checked
# against the same independent ground truth as e2e (docs/guarantees.md).
stage_faults() { scripts/faults.sh; }

# Secrets absent from every captured log, every local server bound to loopback only.
stage_security() { scripts/security-checks.sh; }

stage_cdk() { npm run --silent test:cdk; }

stage_scan() { bash cdk/scripts/scan-templates.sh; }

# A short, bounded cargo-fuzz run of every target (the long runs are recorded in docs/guarantees.md).
stage_fuzz() { scripts/fuzz.sh --ci; }

# Exercises the benchmark code end to end on tiny inputs; figures are not judged here.
stage_bench() { scripts/bench.sh --smoke; }

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
