#!/usr/bin/env bash
# Installs everything the local pipeline and the tests need, and nothing by hand.
# Idempotent and non-interactive: each step checks first and skips when its result is already there,
# so a second run takes seconds.
#
#   scripts/setup.sh            # everything
#   PIPELINE_CACHE=/some/dir    # where built tools are cached (default ~/.cache/pipeline)
#   PIPELINE_SKIP_NPM=1         # skip npm ci (e.g. Rust-only work)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prologue.sh" setup

TANSU_VERSION="0.6.0"
TANSU_ROOT="$PIPELINE_CACHE/tansu"
TANSU_BIN="$TANSU_ROOT/bin/tansu"
CARGO_FUZZ_VERSION="0.13.2"
CARGO_FUZZ_ROOT="$PIPELINE_CACHE/cargo-fuzz"

# Runs one named step and prints how long it took.
step() {
  local name="$1"; shift
  local started=$SECONDS
  log "── $name"
  "$@"
  log "   $name done in $((SECONDS - started))s"
}

need_tool() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"
}

check_toolchain() {
  need_tool cargo "install Rust (rustup) first; the project builds with cargo"
  need_tool python3 "install Python 3.11+ (apt-get install -y python3 python3-venv)"
  log "   cargo $(cargo --version | awk '{print $2}'), python $(python3 -c 'import sys; print(sys.version.split()[0])')"
}

# A virtualenv at VENV with the pinned requirements file REQUIREMENTS, reinstalled when the file changes.
install_venv() {
  local venv="$1" requirements="$2"
  local stamp="$venv/.requirements.sha256"
  local wanted
  wanted="$(sha256sum "$requirements" | awk '{print $1}')"
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    log "   venv up to date ($venv)"
    return
  fi
  if [[ ! -x "$venv/bin/python" ]]; then
    log "   creating $venv"
    python3 -m venv "$venv" || die "python3 -m venv failed: apt-get install -y python3-venv"
  fi
  log "   installing $(basename "$requirements") into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" >"$stamp"
}

# Project virtualenv with the pinned Python tools (moto server, boto3, confluent-kafka).
setup_venv() {
  install_venv "$VENV" "$REPO_ROOT/requirements.txt"
  # A venv from before cargo-lambda moved out would put its copy first on the scripts' PATH.
  if [[ -e "$VENV/bin/cargo-lambda" ]]; then
    log "   removing cargo-lambda from $VENV (it lives in $LAMBDA_TOOLS)"
    "$VENV/bin/python" -m pip uninstall --quiet --yes cargo-lambda
  fi
}

# cargo-lambda and zig, in the venv every checkout shares (scripts/lib/prologue.sh says why).
setup_lambda_tools() {
  install_venv "$LAMBDA_TOOLS" "$REPO_ROOT/requirements-lambda-tools.txt"
  "$CARGO_LAMBDA" lambda --version >/dev/null || die "cargo-lambda in $LAMBDA_TOOLS does not run"
}

tansu_ok() {
  [[ -x "$TANSU_BIN" ]] && "$TANSU_BIN" --version 2>/dev/null | grep -q "$TANSU_VERSION"
}

# The Kafka-compatible broker, built once into the cache.
setup_tansu() {
  if tansu_ok; then
    log "   tansu $TANSU_VERSION present ($TANSU_BIN)"
    return
  fi
  mkdir -p "$TANSU_ROOT"
  # Only one build at a time: a concurrent setup (or an earlier one still compiling) holds this lock.
  exec 9>"$PIPELINE_CACHE/tansu.lock"
  if ! flock -n 9; then
    log "   another tansu build holds $PIPELINE_CACHE/tansu.lock; waiting for it"
    flock 9
  fi
  # A build started outside this script (e.g. by hand) does not hold the lock: wait for it too.
  while pgrep -f "cargo install tansu" >/dev/null 2>&1; do
    log "   a 'cargo install tansu' is already running; waiting for it to finish"
    sleep 30
  done
  if tansu_ok; then
    log "   tansu $TANSU_VERSION present after waiting"
  else
    log "   building tansu $TANSU_VERSION (about 25 min on 2 cores, cached afterwards)"
    cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features \
      --features dynostore,libsql --root "$TANSU_ROOT"
    tansu_ok || die "tansu built but '$TANSU_BIN --version' does not report $TANSU_VERSION"
  fi
  flock -u 9
}

cargo_fuzz_ok() {
  [[ -x "$CARGO_FUZZ_ROOT/bin/cargo-fuzz" ]] &&
    "$CARGO_FUZZ_ROOT/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"
}

# The fuzzing driver (scripts/fuzz.sh), built once into the cache; it runs on stable Rust with
# --sanitizer none (see scripts/fuzz.sh).
setup_cargo_fuzz() {
  if cargo_fuzz_ok; then
    log "   cargo-fuzz $CARGO_FUZZ_VERSION present ($CARGO_FUZZ_ROOT/bin/cargo-fuzz)"
    return
  fi
  # Two setups at once would share the build dir and one install fails copying the other's binary.
  mkdir -p "$CARGO_FUZZ_ROOT"
  exec 8>"$PIPELINE_CACHE/cargo-fuzz.lock"
  flock 8
  if cargo_fuzz_ok; then
    log "   cargo-fuzz $CARGO_FUZZ_VERSION present after waiting for another setup"
  else
    log "   building cargo-fuzz $CARGO_FUZZ_VERSION (about 2 min, cached afterwards)"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$CARGO_FUZZ_ROOT" \
      --target-dir "$PIPELINE_CACHE/cargo-fuzz/build"
    rm -rf "$PIPELINE_CACHE/cargo-fuzz/build"
    cargo_fuzz_ok || die "cargo-fuzz built but does not report version $CARGO_FUZZ_VERSION"
  fi
  flock -u 8
}

find_pg_bin() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

setup_postgres() {
  local bin
  if bin="$(find_pg_bin)"; then
    log "   PostgreSQL server binaries present ($bin)"
    return
  fi
  local sudo=""
  if [[ "$(id -u)" != "0" ]]; then
    command -v sudo >/dev/null 2>&1 || die "PostgreSQL is missing and this user cannot install it: run 'apt-get install -y postgresql' as root"
    sudo="sudo -n"
  fi
  log "   installing PostgreSQL from Debian packages"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
  bin="$(find_pg_bin)" || die "apt-get installed postgresql but initdb/pg_ctl are still missing"
  log "   PostgreSQL installed ($bin)"
}

setup_npm() {
  if [[ "${PIPELINE_SKIP_NPM:-0}" == "1" ]]; then
    log "   skipped (PIPELINE_SKIP_NPM=1)"
    return
  fi
  local lock="$REPO_ROOT/package-lock.json"
  if [[ ! -f "$lock" ]]; then
    log "   no package-lock.json yet; nothing to install"
    return
  fi
  need_tool npm "install Node.js 20 and npm"
  # npm writes node_modules/.package-lock.json on every install; newer than the lock file means fresh.
  local installed="$REPO_ROOT/node_modules/.package-lock.json"
  if [[ -f "$installed" && "$installed" -nt "$lock" ]]; then
    log "   node_modules up to date"
    return
  fi
  # `npm install`, not `npm ci`: the lock file lacks the optional per-platform bindings of
  # unrs-resolver (a jest dependency) that the registry here does not serve, and `npm ci` refuses a
  # lock with missing optional entries. With an in-sync lock `npm install` installs exactly its versions.
  (cd "$REPO_ROOT" && npm install --no-audit --no-fund --loglevel=error)
}

main() {
  local started=$SECONDS
  mkdir -p "$PIPELINE_CACHE"
  step "toolchain" check_toolchain
  step "python venv" setup_venv
  step "cargo-lambda" setup_lambda_tools
  step "tansu broker" setup_tansu
  step "postgresql" setup_postgres
  step "cargo-fuzz" setup_cargo_fuzz
  step "npm packages" setup_npm
  log "setup complete in $((SECONDS - started))s"
}

main "$@"
