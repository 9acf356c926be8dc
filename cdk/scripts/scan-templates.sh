#!/usr/bin/env bash
# Synthesizes every stack with asset bundling skipped (one account, two accounts, and a
# disposable/multi-AZ/arm64 variant) and scans
# the CloudFormation templates:
#   - cfn-lint: zero findings of any level (errors, warnings, informational); the checks turned off
#     app-wide are in cdk/scripts/cfn-lint.yaml, each with its reason;
#   - checkov: zero failed checks. Skips are either inline in the templates (Metadata.checkov.skip,
#     written by the CDK code with a reason) or app-wide in cdk/scripts/checkov.yaml (with reasons).
# Both scanners must also fail on cdk/scripts/scan-canary.template.json, a deliberately
# non-compliant template, so a scanner that silently passes everything fails this script.
#
# The scanners live in their own virtualenv (.venv-scan: checkov pins clash with other tools),
# installed from PyPI at pinned versions and reused when present. Offline once installed.
#
#   bash cdk/scripts/scan-templates.sh            # scan
#   SCAN_OUT=/tmp/scan bash cdk/scripts/scan-templates.sh   # keep the templates somewhere else
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"

CFN_LINT_VERSION="1.58.0"
CHECKOV_VERSION="3.3.30"
SCAN_VENV="$REPO_ROOT/.venv-scan"
OUT="${SCAN_OUT:-$REPO_ROOT/cdk.out/scan}"

log() { printf '[scan] %s\n' "$*" >&2; }

installed_version() { "$SCAN_VENV/bin/pip" show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }

ensure_scanners() {
  if [[ -x "$SCAN_VENV/bin/pip" \
     && "$(installed_version cfn-lint)" == "$CFN_LINT_VERSION" \
     && "$(installed_version checkov)" == "$CHECKOV_VERSION" ]]; then
    log "scanners cached in $SCAN_VENV (cfn-lint $CFN_LINT_VERSION, checkov $CHECKOV_VERSION)"
    return
  fi
  log "installing cfn-lint $CFN_LINT_VERSION and checkov $CHECKOV_VERSION into $SCAN_VENV"
  [[ -x "$SCAN_VENV/bin/pip" ]] || python3 -m venv "$SCAN_VENV"
  "$SCAN_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "cfn-lint==$CFN_LINT_VERSION" "checkov==$CHECKOV_VERSION"
}

synth_variant() {
  local name="$1" override="$2" dir="$OUT/$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  local override_file="$OUT/$name.override.json"
  printf '%s\n' "$override" > "$override_file"
  log "synth ($name, bundling skipped) -> $dir"
  npx --no-install ts-node --transpile-only --project cdk/tsconfig.json \
    cdk/scripts/synth-unbundled.ts "$dir" "$override_file" >&2
}

started=$SECONDS
ensure_scanners
rm -rf "$OUT"
mkdir -p "$OUT"

# Placeholder accounts only shape the templates; nothing is deployed.
synth_variant one-account '{}'
synth_variant two-accounts '{
  "producer": {"account": "111111111111", "region": "eu-west-1",
               "availabilityZoneIds": ["euw1-az1", "euw1-az2", "euw1-az3"]},
  "consumer": {"account": "222222222222", "region": "eu-west-1",
               "handshakeSecretArn": "arn:aws:secretsmanager:eu-west-1:111111111111:secret:handshake-AbCdEf"}
}'

synth_variant disposable '{
  "retainData": false, "rds": {"multiAz": true}, "lambdaArchitecture": "arm64",
  "topicDeletion": "delete", "endpointAcceptanceRequired": true
}'

mapfile -t templates < <(find "$OUT" -name '*.template.json' | sort)
[[ ${#templates[@]} -ge 15 ]] || { log "expected 15 templates, found ${#templates[@]}"; exit 1; }

status=0

CANARY=cdk/scripts/scan-canary.template.json
cfn_lint() {
  "$SCAN_VENV/bin/cfn-lint" --config-file cdk/scripts/cfn-lint.yaml --non-zero-exit-code informational \
    --regions eu-west-1 --format parseable -- "$@"
}

log "cfn-lint over ${#templates[@]} templates"
set +e
cfn_lint "${templates[@]}"
lint_rc=$?
set -e
# cfn-lint's exit code is a bit mask: 2 = errors, 4 = warnings, 8 = informational (1 = crash).
if (( lint_rc != 0 )); then
  log "cfn-lint: findings (exit $lint_rc)"
  status=1
else
  log "cfn-lint: no findings"
fi
if cfn_lint "$CANARY" >/dev/null; then
  log "cfn-lint passed the non-compliant canary $CANARY: the scan cannot fail"
  status=1
else
  log "cfn-lint: fails the non-compliant canary, as it must"
fi

log "checkov over ${#templates[@]} templates"
checkov_args=()
for t in "${templates[@]}"; do checkov_args+=(--file "$t"); done
set +e
"$SCAN_VENV/bin/checkov" --config-file cdk/scripts/checkov.yaml "${checkov_args[@]}"
checkov_rc=$?
set -e
if (( checkov_rc != 0 )); then
  log "checkov: failed checks (exit $checkov_rc)"
  status=1
else
  log "checkov: no failed checks"
fi
if "$SCAN_VENV/bin/checkov" --config-file cdk/scripts/checkov.yaml --file "$CANARY" >/dev/null; then
  log "checkov passed the non-compliant canary $CANARY: the scan cannot fail"
  status=1
else
  log "checkov: fails the non-compliant canary, as it must"
fi

log "done in $((SECONDS - started))s"
exit $status
