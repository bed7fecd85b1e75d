"""qext.linear_dynamic on CUDA tensors (activations quantized per row on the
GPU, cuBLASLt's int8 GEMM, the CPU op's float epilogue) against float
F.linear in fp32 and bf16 on the same GPU, contenders interleaved, on
LLM-sized layers. Needs a CUDA GPU (scripts/gpu_check.sh runs it).

    python benchmarks/bench_linear_cuda.py [--out benchmarks/results/linear_cuda.json]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import qext
from bench_linalg import _synced
from common import interleaved_median_seconds, write_json

SHAPES_MKN = [(m, 4096, n) for m in (1, 32, 512, 4096) for n in (4096, 11008)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/linear_cuda.json")
    ap.add_argument("--min-time", type=float, default=0.5)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_linear_cuda: no CUDA GPU visible to torch")
    torch.manual_seed(0)
    rows = []
    print(f"GPU: {torch.cuda.get_device_name()}")
    for m, k, n in SHAPES_MKN:
        w, b = torch.randn(n, k) / k**0.5, torch.randn(n)
        packed = qext.quantize_linear_weight(w)
        x, wg, bg = torch.randn(m, k, device="cuda"), w.cuda(), b.cuda()
        x16, w16, b16 = x.bfloat16(), wg.bfloat16(), bg.bfloat16()
        fns = {"fp32": lambda: F.linear(x, wg, bg), "bf16": lambda: F.linear(x16, w16, b16),
               "qext_int8": lambda: qext.linear_dynamic(x, packed, bg, per_row=True)}
        t = interleaved_median_seconds({name: _synced(fn, "cuda") for name, fn in fns.items()},
                                       min_time=args.min_time)
        row = {"M": m, "K": k, "N": n, **{f"{name}_ms": s * 1e3 for name, s in t.items()},
               "qext_vs_fp32": t["fp32"] / t["qext_int8"], "qext_vs_bf16": t["bf16"] / t["qext_int8"]}
        rows.append(row)
        print(f"M={m:<5} {k}x{n}: " + "  ".join(f"{name} {s * 1e3:8.3f} ms" for name, s in t.items())
              + f"  | qext vs fp32 x{row['qext_vs_fp32']:.2f}, vs bf16 x{row['qext_vs_bf16']:.2f}")
    write_json(args.out, {"benchmark": "linear_cuda", "gpu": torch.cuda.get_device_name(), "rows": rows})


if __name__ == "__main__":
    main()
