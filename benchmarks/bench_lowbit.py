"""Low-bit Linear weights: qext int4 / int2 / int1 (group-wise scales) vs qext
int8, fp32 F.linear and torch.ao's dynamic int8 Linear, on LLM-style shapes at
the decode batch sizes (M = 1..8) and one prefill size, contenders interleaved
in one run. Also the bytes per weight of each format (with llama.cpp's Q4_0
and Q8_0 for reference: 4.5 and 8.5 bits per weight).

    python benchmarks/bench_lowbit.py [--out benchmarks/results/lowbit.json] [--threads 1,2] [--group-size 128]

4-bit peers, when present:
- ``aten_int4_bf16``: PyTorch's CPU int4 weight-only kernel
  (``aten._weight_int4pack_mm_for_cpu``, bf16 activations, a bf16 scale and
  zero per group), the kernel torchao's CPU int4 layout runs. (torchao 0.18
  itself no longer quantizes for CPU without its ``mslk`` package.)
- ``bnb_nf4``: bitsandbytes ``Linear4bit`` (NF4, blocks of 64, float32
  compute) on the CPU: ``pip install --no-deps bitsandbytes``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import qext
from common import interleaved_median_seconds, quiet_peers, threads, write_json
from bench_linear import torch_ao_linear

def aten_int4(w: torch.Tensor, b: torch.Tensor, group_size: int):
    """w as torchao's CPU int4 weight-only layout (asymmetric per group,
    levels 0..15) and the function running it on bf16 activations."""
    n, k = w.shape
    g = w.reshape(n, k // group_size, group_size)
    lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    scale = (hi - lo).clamp(min=1e-8) / 15
    q = ((g - lo) / scale).round().clamp(0, 15).to(torch.int32).reshape(n, k)
    packed = torch._convert_weight_to_int4pack_for_cpu(q, 1)
    # The kernel computes (q - 8) * scale + zero: zero = lo + 8 * scale.
    scales_zeros = torch.stack([scale.squeeze(-1).t(), (lo + 8 * scale).squeeze(-1).t()], -1)
    scales_zeros = scales_zeros.contiguous().to(torch.bfloat16)
    b16 = b.to(torch.bfloat16)
    return lambda x: torch._weight_int4pack_mm_for_cpu(x.to(torch.bfloat16), packed, group_size, scales_zeros) + b16


def bnb_nf4(w: torch.Tensor, b: torch.Tensor):
    """bitsandbytes' NF4 Linear on the CPU, or None when it is not installed."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return None
    with quiet_peers():
        layer = bnb.nn.Linear4bit(w.shape[1], w.shape[0], quant_type="nf4", compute_dtype=torch.float32)
        layer.load_state_dict({"weight": w, "bias": b})
        layer = layer.to("cpu")  # quantizes the weight (a move to a device does)
    return layer


# (4096, 11008): a LLaMA-7B MLP projection, whose weights (45 MB int8) exceed the L3 cache.
SHAPES_KN = ((2048, 2048), (2048, 5632), (4096, 11008))
BATCHES = (1, 4, 8, 64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/lowbit.json")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--group-size", type=int, default=128)
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per contender and shape")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"qext kernel path: {qext.active_isa()}; group size {args.group_size}")
    rows = []
    for k, n in SHAPES_KN:
        w, b = torch.randn(n, k) / k**0.5, torch.randn(n)
        packed = {"qext_int8": qext.quantize_linear_weight(w)}
        for bits in (4, 2, 1):
            packed[f"qext_int{bits}"] = qext.quantize_linear_weight_lowbit(w, bits, args.group_size)
        ao = torch_ao_linear(w, b)
        int4_aten = aten_int4(w, b, args.group_size) if k % args.group_size == 0 else None
        nf4 = bnb_nf4(w, b)
        bits_per_weight = {"fp32": 32.0, "qext_int8": 8 + 32 / k, "aten_int4_bf16": 4 + 32 / args.group_size,
                           "bnb_nf4": 4 + 32 / 64, "llama_cpp_q4_0": 4.5, "llama_cpp_q8_0": 8.5}
        for bits in (4, 2, 1):
            bits_per_weight[f"qext_int{bits}"] = bits + 32 / args.group_size
        for nthreads in [int(t) for t in args.threads.split(",")]:
            with threads(nthreads):
                for m in BATCHES:
                    x = torch.randn(m, k)
                    fns = {"fp32": lambda: F.linear(x, w, b), "torch_ao_int8": lambda: ao(x),
                           "qext_int8": lambda: qext.linear_dynamic(x, packed["qext_int8"], b, per_row=True)}
                    for bits in (4, 2, 1):
                        fns[f"qext_int{bits}"] = (lambda p: lambda: qext.linear_lowbit(x, p, b))(packed[f"qext_int{bits}"])
                    if int4_aten:
                        fns["aten_int4_bf16"] = lambda: int4_aten(x)
                    if nf4 is not None:
                        fns["bnb_nf4"] = lambda: nf4(x)
                    with quiet_peers():
                        t = interleaved_median_seconds(fns, min_time=args.min_time)
                    row = {"threads": nthreads, "M": m, "K": k, "N": n,
                           **{f"{name}_us": sec * 1e6 for name, sec in t.items()},
                           **{f"{name}_vs_fp32": t["fp32"] / sec for name, sec in t.items()},
                           "qext_int4_vs_qext_int8": t["qext_int8"] / t["qext_int4"],
                           "qext_int4_vs_torch_ao_int8": t["torch_ao_int8"] / t["qext_int4"],
                           **{f"qext_int4_vs_{peer}": t[peer] / t["qext_int4"] for peer in ("aten_int4_bf16", "bnb_nf4")
                              if peer in t},
                           "bits_per_weight": bits_per_weight}
                    rows.append(row)
                    print(f"thr={nthreads} M={m:<3} {k}x{n}: " + "  ".join(f"{name} {sec * 1e6:8.1f} us" for name, sec in t.items())
                          + f"  | int4 vs int8 x{row['qext_int4_vs_qext_int8']:.2f}, vs torch.ao x{row['qext_int4_vs_torch_ao_int8']:.2f}"
                          + "".join(f", vs {peer} x{row[f'qext_int4_vs_{peer}']:.2f}" for peer in ("aten_int4_bf16", "bnb_nf4")
                                    if f"qext_int4_vs_{peer}" in row))
    write_json(args.out, {"benchmark": "lowbit", "group_size": args.group_size, "rows": rows})


if __name__ == "__main__":
    main()
