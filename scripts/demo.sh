#!/usr/bin/env bash
# Install (idempotent) and build the demo dataset on FiftyOne's embedded MongoDB (or the one at
# FIFTYONE_DATABASE_URI). Extra arguments go to `autoscale demo`, e.g. --scenes 500.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
exec "$ROOT/.venv/bin/autoscale" demo "$@"
