#!/usr/bin/env bash
# Memory-safety job: builds libqext, the C++ tests and the example programs with
# AddressSanitizer + UndefinedBehaviorSanitizer (build/asan), runs the C++
# tests, then feeds the hostile-file corpus of tests/python/test_hostile_files.py
# to the sanitized run_model. Any report fails the job. Needs scripts/setup.sh
# first (it uses .venv's torch). Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DQEXT_SANITIZE=ON -DQEXT_BUILD_TESTS=ON \
  -DQEXT_BUILD_PYTHON=OFF -DQEXT_BUILD_BENCHMARKS=OFF -DPython_EXECUTABLE="$PWD/.venv/bin/python" >/dev/null
cmake --build build/asan

# LibTorch is not instrumented and keeps global state alive at exit: no leak
# checking; operator new/delete pairs may cross into it uninstrumented.
export ASAN_OPTIONS=detect_leaks=0:alloc_dealloc_mismatch=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build/asan --output-on-failure --no-tests=error
QEXT_RUN_MODEL="$PWD/build/asan/cpp_examples/run_model" QEXT_FUZZ_FILES=12 \
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/python/test_hostile_files.py -k "run_model or random"
