#!/usr/bin/env bash
# qext as its users consume it, from fresh build folders:
#  1. the project configures without GoogleTest when the C++ tests are off
#     (the default of `pip install .`);
#  2. cpp_examples, built on their own as a user's project, find the installed
#     qext with find_package(qext) (qext.cmake_prefix_path), and the programs
#     quantize and run the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$PWD/.venv/bin/python"
rm -rf build/no_gtest build/consumer
mkdir -p build
if ! cmake -S . -B build/no_gtest -G Ninja -DPython_EXECUTABLE="$PY" -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON \
     > build/no_gtest.log 2>&1; then
  cat build/no_gtest.log
  echo "consumer check: qext does not configure without GoogleTest" >&2
  exit 1
fi
prefix=$("$PY" -c 'import qext; print(qext.cmake_prefix_path)')
cmake -S cpp_examples -B build/consumer -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build build/consumer
build/consumer/quantize_model examples/digits_mlp.pt build/consumer/digits_mlp_int8.pt --input-shape 8,64 \
  --check-max-abs-error 0.5
build/consumer/run_model build/consumer/digits_mlp_int8.pt build/consumer/out.pt --input-shape 8,64
rm -rf build/no_gtest
echo "consumer check: passed (find_package(qext) from $prefix)"
