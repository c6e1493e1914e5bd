#!/usr/bin/env bash
# Installs the service and starts it on the embedded default (SQLite file under ./var, in-process relay and
# read models). GraphiQL: http://127.0.0.1:8000/graphql (POINTS_HOST / POINTS_PORT change it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec python3 -m uv run --frozen python -m app serve "$@"
