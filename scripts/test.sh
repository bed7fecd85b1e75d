#!/usr/bin/env bash
# Sets up qext (scripts/setup.sh) and runs every test: pytest, then ctest, then
# the memory-safety job (scripts/sanitize.sh: ASan + UBSan build, C++ tests and
# hostile model files), then the portability check (scripts/cross_check.sh:
# the kernels and their tests built for aarch64, run under qemu), then the
# consumer check (scripts/consumer_check.sh: configuring without GoogleTest,
# and find_package(qext) from a C++ project of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch_data.sh
status=0
.venv/bin/python -m pytest -q "$@" || status=$?
ctest --test-dir build/python --output-on-failure --no-tests=error || status=$?
bash scripts/sanitize.sh || status=$?
bash scripts/cross_check.sh || status=$?
bash scripts/consumer_check.sh || status=$?
exit $status
