#!/usr/bin/env bash
# After `cdk deploy consumer-stack`: invokes the producer function with a fixed request (small
# sensor, store-event and explicit-event batches, fixed seeds, a known malformed share), waits for
# the consumer's sinks and prints one screen: what was published; whether it reached DynamoDB (the
# window and explicit-events tables), S3 (the store-events archive) and the poison queue, with
# counts; and, when it did not, why: each event source mapping's State, StateTransitionReason and
# LastProcessingResult, OffsetLag, the consumer's Errors, its last error log line and the
# on-failure queue. Stack outputs are read from CloudFormation; nothing needs typing.
#
#   scripts/check-deployment.sh                                   one account, default credentials
#   scripts/check-deployment.sh --producer-profile producer --consumer-profile consumer --region eu-west-1
#   scripts/check-deployment.sh --timeout 600                     wait longer (seconds, default 300)
#   PIPELINE_PRODUCER_PROFILE / PIPELINE_CONSUMER_PROFILE / AWS_REGION   the same as options
#
# Exit 0: every sink got the data and nothing unexpected was set aside; 1: the check failed (the
# screen says why); 2: the deployment could not be read (a stack, output or permission is missing).
# `--local-env ...` points the same check at the local stack (scripts/test.sh, stage deploy).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prologue.sh" check --die-status 2
case "${1:-}" in
  -h | --help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
[[ -x "$PYTHON" ]] || die "$PYTHON missing: run scripts/setup.sh"
PYTHONPATH="$REPO_ROOT/scripts/local${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m deployment check "$@"
