#!/usr/bin/env bash
# Installs what the tests need, then runs every check and every test: ruff, mypy, import-linter, pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
uv() { python3 -m uv run --frozen "$@"; }
echo "== ruff";          uv ruff check app tests scripts
echo "== ruff format";   uv ruff format --check app tests scripts
echo "== mypy";          uv mypy app
echo "== import-linter"; uv lint-imports
echo "== pytest";        uv pytest "$@"
