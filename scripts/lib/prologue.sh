# The prologue every script in scripts/ sources first, right after its own `set -euo pipefail`:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/prologue.sh" TAG [OPTION...]
#
# It provides, the same for every script:
#   REPO_ROOT        the checkout this file is in
#   PIPELINE_CACHE   built tools and caches (default ~/.cache/pipeline), exported for the scripts
#                    a script starts (nothing else reads it)
#   VENV, PYTHON     the project virtualenv (scripts/setup.sh makes it) and its python
#   LOCAL_DIR        the local stack's data (PIPELINE_LOCAL_DIR, default <repo>/.local), with
#   RUN_DIR, LOG_DIR, ENV_FILE   its pid files, its logs and the stack's env file under it;
#                    `use_local_dir DIR` points all four elsewhere (scripts/test.sh's test stack)
#   log MESSAGE      "[TAG] MESSAGE" on stderr
#   die MESSAGE      "[TAG] ERROR: MESSAGE" on stderr, then exit 1
# and, only where a script asks for it:
#   --cd             work from REPO_ROOT (scripts that take no user paths relative to the caller)
#   --cargo          export CARGO_TARGET_DIR (default $PIPELINE_CACHE/target), CARGO_TERM_COLOR
#                    (default never) and PIPELINE_CHECKOUT (this checkout's path, so the shared
#                    target rebuilds our crates for another checkout); without it cargo builds where
#                    the caller's environment says;
#                    and `build_binaries PROFILE CRATE...`, which builds the crates in one cargo run
#                    and sets BIN_DIR to where their binaries are
#   --path DIRS      put these repo-relative directories (colon-separated) in front of PATH
#   --spaced-log     log puts a blank line before each message (scripts whose log marks sections)
#   --die-status N   die exits N instead of 1
# Each default gives way to a value already in the environment. The script's own positional
# parameters are back as they were once this file has run.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PIPELINE_CACHE="${PIPELINE_CACHE:-$HOME/.cache/pipeline}"
VENV="$REPO_ROOT/.venv"
PYTHON="$VENV/bin/python"
# cargo-lambda and its zig live in one venv every checkout shares: cargo-zigbuild's linker wrapper
# runs cargo-lambda by its absolute path and the linker is part of each release unit's fingerprint,
# so a copy per checkout made every other checkout rebuild all the Lambda bundles' dependencies.
# Exported: the fault and deployment harnesses (Python) start `cargo lambda watch` with it too.
LAMBDA_TOOLS="$PIPELINE_CACHE/lambda-tools"
export CARGO_LAMBDA="$LAMBDA_TOOLS/bin/cargo-lambda"

use_local_dir() {
  LOCAL_DIR="$1"
  RUN_DIR="$LOCAL_DIR/run"
  LOG_DIR="$LOCAL_DIR/logs"
  ENV_FILE="$LOCAL_DIR/stack.env"
}
use_local_dir "${PIPELINE_LOCAL_DIR:-$REPO_ROOT/.local}"

LOG_TAG="${1:?prologue.sh: the first argument is the log tag}"
shift
LOG_GAP=""
DIE_STATUS=1
while (($# > 0)); do
  case "$1" in
    --cd) cd "$REPO_ROOT" ;;
    --cargo)
      export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PIPELINE_CACHE/target}"
      export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
      # The shared target serves every checkout; this makes cargo rebuild our crates for another
      # one (functions/contracts/build.rs says why).
      export PIPELINE_CHECKOUT="$REPO_ROOT"
      # `cargo lambda` is the shared one (see LAMBDA_TOOLS).
      export PATH="$LAMBDA_TOOLS/bin:$PATH"
      ;;
    --path)
      prologue_prefix=""
      IFS=: read -r -a prologue_dirs <<<"${2:?prologue.sh: --path needs directories}"
      for prologue_dir in "${prologue_dirs[@]}"; do
        prologue_prefix+="$REPO_ROOT/$prologue_dir:"
      done
      export PATH="$prologue_prefix$PATH"
      unset prologue_prefix prologue_dirs prologue_dir
      shift
      ;;
    --spaced-log) LOG_GAP=$'\n' ;;
    --die-status) DIE_STATUS="${2:?prologue.sh: --die-status needs a number}"; shift ;;
    *) printf 'prologue.sh: unknown option %s\n' "$1" >&2; return 2 ;;
  esac
  shift
done

log() { printf '%s[%s] %s\n' "$LOG_GAP" "$LOG_TAG" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "$LOG_TAG" "$*" >&2
  exit "$DIE_STATUS"
}

# One cargo run for all the crates a script needs (debug or release). Every binary depends on
# functions/feature-union, so this compiles the same units that `cargo lambda watch` (one crate at a
# time) and the test build reuse; the rust stage of scripts/test.sh checks that it stays so.
build_binaries() {
  [[ -v CARGO_TARGET_DIR ]] || die "build_binaries needs the prologue's --cargo option"
  local profile="${1:?build_binaries: debug or release}" crate
  shift
  local flags=(--locked)
  case "$profile" in
    debug) ;;
    release) flags+=(--release) ;;
    *) die "build_binaries: unknown profile $profile (debug or release)" ;;
  esac
  for crate in "$@"; do
    flags+=(-p "$crate")
  done
  cargo build "${flags[@]}"
  BIN_DIR="$CARGO_TARGET_DIR/$profile"
}
