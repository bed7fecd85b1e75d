"""qext.linalg products: qext's exact int8 matmul (zero points included)
against the nearest peers in the same run -- torch._int_mm (raw int8 x int8,
no zero points: the cuBLASLt / oneDNN kernel underneath) and float matmul
(fp32; bf16 on CUDA) -- on CPU and, when there is one, on a CUDA GPU.

    python benchmarks/bench_linalg.py [--out benchmarks/results/linalg.json] [--device cpu|cuda|all]

qext's figure includes what a quantized product needs beyond the raw GEMM:
packing b for the kernels (CPU) or padding and the zero-point corrections
(CUDA). Ratios: qext_speedup_vs_this = contender time / qext time.
"""

from __future__ import annotations

import argparse
import time

import torch

import qext
from qext import linalg as ql
from common import interleaved_median_seconds, threads, write_json

CPU_SHAPES = ((1, 4096, 4096), (64, 1024, 1024), (512, 1024, 1024))
CUDA_SHAPES = ((32, 4096, 4096), (1024, 4096, 4096), (4096, 4096, 4096), (8192, 8192, 8192))


def _synced(fn, device):
    if device == "cpu":
        return fn

    def run():
        fn()
        torch.cuda.synchronize()
    return run


def bench(device: str, shapes, min_time: float) -> list[dict]:
    rows = []
    for m, k, n in shapes:
        x = torch.randn(m, k, device=device)
        w = torch.randn(k, n, device=device)
        a, b = ql.quantize(x, "int8", 0), ql.quantize(w, "int8", 1, True)
        a8, b8 = a.int_repr(), b.int_repr()
        fns = {
            "qext_matmul_int32": lambda: ql.matmul_int32(a, b),
            "torch_int_mm_raw": lambda: torch._int_mm(a8, b8),
            "fp32_matmul": lambda: x @ w,
        }
        if device == "cuda":
            xb, wb = x.bfloat16(), w.bfloat16()
            fns["bf16_matmul"] = lambda: xb @ wb
        times = interleaved_median_seconds({name: _synced(fn, device) for name, fn in fns.items()},
                                           min_time=min_time)
        ours = times["qext_matmul_int32"]
        for name, sec in times.items():
            row = {"device": device, "m": m, "k": k, "n": n, "contender": name, "seconds": sec,
                   "tops": 2 * m * k * n / sec / 1e12, "qext_speedup_vs_this": sec / ours}
            rows.append(row)
            print(f"{device} {m}x{k}x{n} {name:20} {sec * 1e3:9.3f} ms {row['tops']:8.2f} T(FL)OP/s "
                  f"qext x{row['qext_speedup_vs_this']:.2f}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/linalg.json")
    ap.add_argument("--device", default="all", choices=("cpu", "cuda", "all"))
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--min-time", type=float, default=1.0)
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    start = time.time()
    if args.device in ("cpu", "all"):
        print(f"cpu: qext kernel path {qext.active_isa()}, {args.threads} threads")
        with threads(args.threads):
            rows += bench("cpu", CPU_SHAPES, args.min_time)
    gpu = None
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name()
        print(f"cuda: {gpu}")
        rows += bench("cuda", CUDA_SHAPES, args.min_time)
    write_json(args.out, {"gpu": gpu, "threads": args.threads, "rows": rows, "wall_s": time.time() - start})


if __name__ == "__main__":
    main()
