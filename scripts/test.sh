#!/usr/bin/env bash
# Installs what the tests need, then runs every check and every test: ruff, mypy, import-linter, then pytest
# against the full stack, which scripts/stack.sh brings up first (installing it on a fresh machine) and takes down
# at the end, also when a check or a test fails. A stack that was already running before this script is left
# running. If a server cannot start, the run fails and says which. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
uv() { python3 -m uv run --frozen "$@"; }
echo "== ruff";          uv ruff check app tests scripts
echo "== ruff format";   uv ruff format --check app tests scripts
echo "== mypy";          uv mypy app
echo "== import-linter"; uv lint-imports

echo "== stack up"
if scripts/stack.sh status >/dev/null 2>&1; then
  echo "(the stack was already running: it is left running)"
else
  stack_down() {
    local rc=$?
    echo "== stack down"
    scripts/stack.sh down || true
    exit "$rc"
  }
  trap stack_down EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
fi
if ! scripts/stack.sh up; then
  echo "== the stack did not come up (the server that failed is named above); no test ran" >&2
  exit 1
fi
set -a
. "${POINTS_STACK_DIR:-.stack}/env"
set +a

echo "== pytest"
uv pytest "$@"
