#!/usr/bin/env bash
# Installs uv (from PyPI) when missing and the locked Python dependencies into .venv.
# Usage: scripts/bootstrap.sh [--no-dev]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -m uv --version >/dev/null 2>&1; then
  python3 -m pip install --quiet "uv>=0.5"
fi
python3 -m uv sync --frozen "$@"
