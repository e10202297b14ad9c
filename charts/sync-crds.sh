#!/usr/bin/env bash
# Copy the CRDs (crds/ is the source of truth) into the chart's crds/ directory.
# tests/integration/test_chart.py fails while the copies differ; run this after editing a CRD.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/../crds"
dst="$here/timeout-budget-operator/crds"
mkdir -p "$dst"
rm -f "$dst"/*.yaml
cp "$src"/*.yaml "$dst"/
cp "$src"/peering/kopf-peering.yaml "$dst"/
ls "$dst"
