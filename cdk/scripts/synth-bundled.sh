#!/usr/bin/env bash
# One full `cdk synth` WITH real bundling: cargo-lambda builds every Rust function from the
# workspace (release profile, zig as the linker so the binaries run on Lambda's glibc), then each
# Lambda asset is zipped the way the CDK uploads it and its size checked.
#
#   bash cdk/scripts/synth-bundled.sh
#   SYNTH_STACKS="producer-msk" bash cdk/scripts/synth-bundled.sh   # only these stacks (bundles only their functions)
#
# Size policy (zipped): goal <= 5 MiB (a warning above it); hard limit ASSET_HARD_LIMIT_MIB
# (default 20 MiB) fails the run. Lambda itself accepts 50 MiB zipped for direct uploads, but a
# Rust function above 20 MiB means debug symbols or an unintended dependency came along.
#
# Needs cargo-lambda (scripts/setup.sh installs it into ~/.cache/pipeline/lambda-tools, which
# cdk.json puts on the app's PATH). Works offline once the crates are in the cargo cache.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"

OUT="${SYNTH_OUT:-$REPO_ROOT/cdk.out/bundled}"
GOAL_MIB="${ASSET_GOAL_MIB:-5}"
HARD_LIMIT_MIB="${ASSET_HARD_LIMIT_MIB:-20}"
# cargo-lambda from the venv scripts/setup.sh shares between checkouts (scripts/lib/prologue.sh).
export PATH="${PIPELINE_CACHE:-$HOME/.cache/pipeline}/lambda-tools/bin:$PATH"
# No network calls from the CLI: notices and telemetry stay off.
export CDK_DISABLE_CLI_TELEMETRY=true

log() { printf '[synth-bundled] %s\n' "$*" >&2; }

if ! cargo lambda --version >/dev/null 2>&1; then
  log "cargo-lambda not found: run scripts/setup.sh"
  exit 1
fi
log "$(cargo lambda --version)"

if [[ -n "${SYNTH_STACKS:-}" ]]; then
  read -r -a stacks <<<"$SYNTH_STACKS"
  selection=("${stacks[@]}" --exclusively)
else
  for crate in producer consumer topic-admin db-admin; do
    [[ -f "functions/$crate/Cargo.toml" ]] || {
      log "functions/$crate is missing: a full bundled synth needs every function crate (or set SYNTH_STACKS)"
      exit 1
    }
  done
  selection=(--all)
fi

started=$SECONDS
rm -rf "$OUT"
log "cdk synth ${selection[*]} -> $OUT (real bundling, release, zig linker)"
npx --no-install cdk synth "${selection[@]}" --quiet --no-notices --output "$OUT"
log "synth took $((SECONDS - started))s"

# Every staged Lambda asset of a Rust function is a directory holding `bootstrap`.
mapfile -t assets < <(find "$OUT" -mindepth 2 -maxdepth 2 -name bootstrap -type f -printf '%h\n' | sort)
if [[ ${#assets[@]} -eq 0 ]]; then
  log "no bundled Rust assets found in $OUT"
  exit 1
fi

zips="$(mktemp -d)"
trap 'rm -rf "$zips"' EXIT
status=0
printf '%-60s %12s %12s\n' 'asset' 'bootstrap' 'zipped' >&2
for dir in "${assets[@]}"; do
  name="$(basename "$dir")"
  [[ "$(head -c 4 "$dir/bootstrap" | od -An -tx1 | tr -d ' \n')" == "7f454c46" ]] || { log "$name/bootstrap is not an ELF binary"; status=1; }
  # Zip it like the CDK does before upload (deflate).
  (cd "$dir" && python3 -m zipfile -c "$zips/$name.zip" .)
  # provided.al2023 ships glibc 2.34: a binary asking for newer symbols would not start.
  if command -v objdump >/dev/null 2>&1; then
    newest="$(objdump -T "$dir/bootstrap" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n -u | tail -1)"
    if [[ -n "$newest" ]] && awk -v v="$newest" 'BEGIN { split(v, p, "."); exit !(p[1] > 2 || (p[1] == 2 && p[2] > 34)) }'; then
      log "FAIL: $name/bootstrap needs glibc $newest (> 2.34 on provided.al2023): was it linked without zig?"
      status=1
    fi
  fi
  raw=$(stat -c %s "$dir/bootstrap")
  zipped=$(stat -c %s "$zips/$name.zip")
  awk -v n="$name" -v r="$raw" -v z="$zipped" 'BEGIN { printf "%-60s %10.2f M %10.2f M\n", n, r / 1048576, z / 1048576 }' >&2
  if (( zipped > HARD_LIMIT_MIB * 1048576 )); then
    log "FAIL: $name is above the hard limit of ${HARD_LIMIT_MIB} MiB zipped"
    status=1
  elif (( zipped > GOAL_MIB * 1048576 )); then
    log "warning: $name is above the ${GOAL_MIB} MiB goal"
  fi
done

# Which function each asset belongs to, from the templates (for the log).
for template in "$OUT"/*.template.json; do
  python3 - "$template" <<'PY' >&2
import json, sys
t = json.load(open(sys.argv[1]))
for lid, r in t.get("Resources", {}).items():
    if r.get("Type") == "AWS::Lambda::Function" and r.get("Properties", {}).get("Runtime", "").startswith("provided"):
        meta = r.get("Metadata", {})
        print(f"  {sys.argv[1].rsplit('/', 1)[-1]}: {lid} <- {meta.get('aws:asset:path', '?')} ({r['Properties'].get('Architectures', ['x86_64'])[0]})")
PY
done

log "done in $((SECONDS - started))s"
exit $status
