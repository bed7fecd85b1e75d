#!/usr/bin/env bash
# Sets up qext (scripts/setup.sh) and runs every test: pytest, then ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch_data.sh
status=0
.venv/bin/python -m pytest -q "$@" || status=$?
ctest --test-dir build/python --output-on-failure || status=$?
exit $status
