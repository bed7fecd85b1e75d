#!/usr/bin/env bash
# Sets up qext on a fresh Debian/Ubuntu x86_64 machine: system packages, a
# virtual environment in .venv with torch 2.13.0 (CPU), and the build of the
# C++ library, the Python module and the C++ tests/examples (build/python).
# Safe to re-run: every step is skipped or incremental when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v ninja >/dev/null || need_apt+=(ninja-build)
command -v g++ >/dev/null || need_apt+=(g++)
[ -f /usr/include/gtest/gtest.h ] || need_apt+=(libgtest-dev)
python3 -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "qext setup: installing system packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch pinned everywhere: an unpinned torch resolves to a multi-GB CUDA build.
"${PIP[@]}" -c scripts/constraints.txt -r scripts/requirements-dev.txt
# No build isolation: build against the torch installed above (an isolated
# build would fetch another torch from PyPI, a multi-GB CUDA one).
# The C++ tests (GoogleTest) are built here, for the test command; a plain
# `pip install .` leaves them out.
"${PIP[@]}" -c scripts/constraints.txt --no-build-isolation -C cmake.define.QEXT_BUILD_TESTS=ON -e .
echo "qext setup: done ($(.venv/bin/python -c 'import qext; print("qext", qext.__version__, "kernel path", qext.active_isa())'))"
