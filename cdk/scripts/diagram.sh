#!/usr/bin/env bash
# Regenerates the architecture diagram: docs/architecture.dot from the config and the contract,
# then docs/architecture.svg and docs/architecture.png with Graphviz `dot`
# (Debian: apt-get install graphviz). A jest test fails when the committed .dot is stale.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"
npx --no-install ts-node --transpile-only --project cdk/tsconfig.json cdk/scripts/diagram.ts
command -v dot >/dev/null || { echo "graphviz 'dot' not found: apt-get install graphviz" >&2; exit 1; }
dot -Tsvg docs/architecture.dot -o docs/architecture.svg
dot -Tpng -Gdpi=110 docs/architecture.dot -o docs/architecture.png
echo "rendered docs/architecture.svg and docs/architecture.png" >&2
