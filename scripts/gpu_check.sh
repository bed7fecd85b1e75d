#!/usr/bin/env bash
# The checks that need a CUDA GPU (CI has none): builds qext against the torch
# of the machine's python3 (a CUDA build), runs the linear-algebra tests (their
# CUDA cases run there instead of being skipped) and the GPU benchmark.
#   bash scripts/gpu_check.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/qext_gpu}"
mkdir -p "$out"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
build=/tmp/qext_gpu_build
cmake -S . -B "$build" -G Ninja -DQEXT_BUILD_TESTS=OFF -DQEXT_BUILD_EXAMPLES=OFF \
  -DPython_EXECUTABLE="$(command -v python3)" > "$out/cmake.log" 2>&1 || { tail -40 "$out/cmake.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" > "$out/build.log" 2>&1 || { grep -m20 -B2 -A8 "error" "$out/build.log"; exit 1; }
# An importable package: the sources plus the built modules.
pkg=/tmp/qext_gpu_pkg
rm -rf "$pkg" && mkdir -p "$pkg" && cp -r python/qext "$pkg/"
cp "$build"/_C*.so "$build"/libqext.so "$pkg/qext/"
export PYTHONPATH="$pkg:$PWD/benchmarks"
python3 -m pytest -q -p no:cacheprovider tests/python/test_linalg.py -rs 2>&1 | tee "$out/pytest.log"
python3 benchmarks/bench_linalg.py --device all --min-time 0.5 --out "$out/linalg_gpu.json" 2>&1 | tee "$out/bench.log"
