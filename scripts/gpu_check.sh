#!/usr/bin/env bash
# The checks that need a CUDA GPU (CI has none): builds qext against the torch
# of the machine's python3 (a CUDA build), runs the linear-algebra and dynamic
# Linear tests (their CUDA cases run there instead of being skipped; the kernel
# paths' exactness cases too, on that host's CPU) and the GPU benchmarks.
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
# The exactness and CUDA tests. Not the error-path ones: on the lent H200
# image (torch 2.11.0+cu130, qext built with the system g++) a C++ exception
# thrown out of qext, or repr() of a QTensor, crashed the interpreter (cause
# not established; never seen with the pinned torch 2.13.0 CPU wheel). The
# same image crashed inside qext.quantize_dynamic (a TorchScript pass), so
# test_cuda_quantized_model_moved_to_the_gpu is left out here too.
python3 -m pytest -q -p no:cacheprovider tests/python/test_linalg.py -rs -k "cuda or exact or batched or track" 2>&1 \
  | tee "$out/pytest.log"
python3 -m pytest -q -p no:cacheprovider tests/python/test_linear_dynamic.py tests/python/test_qgemm.py -rs \
  -k "cuda_linear_dynamic or every_path or extremes" 2>&1 | tee "$out/pytest_linear.log"
python3 benchmarks/bench_linalg.py --device all --min-time 0.5 --out "$out/linalg_gpu.json" 2>&1 | tee "$out/bench.log"
python3 benchmarks/bench_linear_cuda.py --min-time 0.3 --out "$out/linear_cuda.json" 2>&1 | tee "$out/bench_linear_cuda.log"
