#!/usr/bin/env bash
# Fuzzes the consumer's record decoders with cargo-fuzz (libFuzzer) on stable Rust.
#
#   scripts/fuzz.sh --ci                 every target for PIPELINE_FUZZ_SECONDS (default 25) each
#   scripts/fuzz.sh --long               every target until PIPELINE_FUZZ_RUNS executions (default
#                                        10,000,000) each; prints a Markdown table of the figures
#   scripts/fuzz.sh --ci record esm_event    only the named targets
#
# Targets (fuzz/fuzz_targets/, checks in functions/domain/src/fuzzing.rs): wire_frame, avro_payload,
# json_payload, record, esm_event, fast_path. Any crash, panic, timeout (> 10 s for one input) or memory
# blow-up (> 2 GB) fails the run; the input is kept under $PIPELINE_CACHE/fuzz/artifacts/<target>/.
# Turn each into a regression test: copy it to fuzz/regressions/<target>/<what-it-found>, which
# `cargo test -p pipeline-domain --test fuzz_regressions` replays, and fix the bug.
#
# Stable Rust has no sanitizers, so targets build with `--sanitizer none`: libFuzzer's coverage
# instrumentation needs only stable codegen flags. The decoders are safe Rust, so what we look for
# are panics, overflows (debug assertions are on), stack overflows, hangs and memory exhaustion.
# Build output, corpora and artifacts live under $PIPELINE_CACHE/fuzz, outside the checkout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prologue.sh" fuzz --cd --cargo

FUZZ_HOME="$PIPELINE_CACHE/fuzz"
CARGO_FUZZ="$PIPELINE_CACHE/cargo-fuzz/bin/cargo-fuzz"
SECONDS_PER_TARGET="${PIPELINE_FUZZ_SECONDS:-25}"
RUNS_PER_TARGET="${PIPELINE_FUZZ_RUNS:-10000000}"
ALL_TARGETS=(wire_frame avro_payload json_payload record esm_event fast_path)

mode="${1:-}"
case "$mode" in
  --ci | --long) shift ;;
  *) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; [[ "$mode" == -h || "$mode" == --help ]]; exit ;;
esac
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL_TARGETS[@]}")
for target in "${targets[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $target "* ]] || die "unknown target '$target' (${ALL_TARGETS[*]})"
done

[[ -x "$CARGO_FUZZ" ]] || die "cargo-fuzz missing at $CARGO_FUZZ: run scripts/setup.sh"

# Seeds: every consumer fixture, as each target takes its input (regenerated each run).
# Each run has its own seed directory, so runs of different targets can go side by side.
SEEDS=""
seed_corpora() {
  mkdir -p "$FUZZ_HOME"
  SEEDS="$(mktemp -d "$FUZZ_HOME/seeds.XXXXXX")"
  trap 'rm -rf "$SEEDS"' EXIT
  cargo run --quiet --locked -p pipeline-domain --example fuzz_seeds -- "$SEEDS" |
    sed 's/^/[fuzz] seeds: /' >&2
}

build_targets() {
  local started=$SECONDS
  mkdir -p "$FUZZ_HOME/logs"
  # cargo-fuzz builds release with debug assertions and overflow checks, in its own target dir
  # (the instrumented dependencies must not mix with the workspace's). All targets share them.
  if ! "$CARGO_FUZZ" build --fuzz-dir fuzz --sanitizer none --target-dir "$FUZZ_HOME/target" \
    >"$FUZZ_HOME/logs/build.log" 2>&1; then
    tail -n 40 "$FUZZ_HOME/logs/build.log" >&2
    die "building the fuzz targets failed; see $FUZZ_HOME/logs/build.log"
  fi
  log "built the targets in $((SECONDS - started))s"
}

# Runs one target; prints "target runs seconds exec/s corpus result".
run_target() {
  local target="$1" limit_arg="$2" corpus="$FUZZ_HOME/corpus/$1" artifacts="$FUZZ_HOME/artifacts/$1"
  local output="$FUZZ_HOME/logs/$1.log" started=$SECONDS status=0
  mkdir -p "$corpus" "$artifacts" "$FUZZ_HOME/logs"
  local -a corpora=("$corpus" "$SEEDS/$target")
  set +e
  "$CARGO_FUZZ" run --fuzz-dir fuzz --sanitizer none --target-dir "$FUZZ_HOME/target" "$target" "${corpora[@]}" -- \
    "$limit_arg" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$output" 2>&1
  status=$?
  set -e
  local runs rate
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$output" | tail -n1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$output" | tail -n1)"
  local elapsed=$((SECONDS - started)) result="ok"
  if [[ "$status" -ne 0 ]]; then
    result="FAILED"
    log "$target failed (exit $status); last lines of $output:"
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|deadly|timeout|out-of-memory' "$output" | head -n 20 >&2 || true
    tail -n 5 "$output" >&2
  fi
  printf '%s %s %s %s %s %s\n' "$target" "${runs:-0}" "$elapsed" "${rate:-0}" \
    "$(find "$corpus" -type f | wc -l)" "$result"
}

main() {
  local started=$SECONDS limit_arg
  if [[ "$mode" == --ci ]]; then
    limit_arg="-max_total_time=$SECONDS_PER_TARGET"
    log "short run: ${#targets[@]} targets, ${SECONDS_PER_TARGET}s each"
  else
    limit_arg="-runs=$RUNS_PER_TARGET"
    log "long run: ${#targets[@]} targets, $RUNS_PER_TARGET executions each"
  fi
  seed_corpora
  build_targets
  local failed=0 line results=()
  for target in "${targets[@]}"; do
    line="$(run_target "$target" "$limit_arg")"
    results+=("$line")
    log "$line"
    [[ "$line" == *" ok" ]] || failed=$((failed + 1))
  done
  printf '\n| target | executions | seconds | exec/s | corpus files | result |\n|---|---:|---:|---:|---:|---|\n'
  for line in "${results[@]}"; do
    # shellcheck disable=SC2086
    printf '| %s | %s | %s | %s | %s | %s |\n' $line
  done
  log "done in $((SECONDS - started))s; logs in $FUZZ_HOME/logs"
  if [[ "$failed" -gt 0 ]]; then
    log "$failed target(s) failed: inputs under $FUZZ_HOME/artifacts/<target>/"
    exit 1
  fi
}

main
