#!/usr/bin/env bash
# Destroys the pipeline without manual steps: disables and deletes the consumer's event source
# mappings, detaches the consumer function from its VPC, waits (bounded, with progress) until their
# Lambda network interfaces are released (20-40 minutes on AWS; until then they block deleting the
# security group and subnets), then runs `cdk destroy` for consumer-stack in the consumer account
# and for the producer stacks, top down, in the producer account. Prints what is kept on purpose.
#
#   scripts/teardown.sh --dry-run                    the plan, with the resources found now
#   scripts/teardown.sh --yes                        one account, default credentials
#   scripts/teardown.sh --producer-profile producer --consumer-profile consumer --region eu-west-1 \
#     --config-file deploy/prod.json --yes           two accounts, as deployed
#   --eni-timeout SECONDS                            give up waiting for the interfaces (default 3600)
#
# Every step is idempotent: after an interruption or a timeout, run it again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prologue.sh" teardown --die-status 2
case "${1:-}" in
  -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
[[ -x "$PYTHON" ]] || die "$PYTHON missing: run scripts/setup.sh"
PYTHONPATH="$REPO_ROOT/scripts/local${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m deployment teardown "$@"
