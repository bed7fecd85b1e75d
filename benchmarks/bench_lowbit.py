"""Low-bit Linear weights: qext int4 / int2 / int1 (group-wise scales) vs qext
int8, fp32 F.linear and torch.ao's dynamic int8 Linear, on LLM-style shapes at
the decode batch sizes (M = 1..8) and one prefill size, contenders interleaved
in one run. Also the bytes per weight of each format (with llama.cpp's Q4_0
and Q8_0 for reference: 4.5 and 8.5 bits per weight).

    python benchmarks/bench_lowbit.py [--out benchmarks/results/lowbit.json] [--threads 1,2] [--group-size 128]

(torchao's int4 weight-only CPU path and bitsandbytes are not installed here:
torchao targets bf16 activations and needs a matching torch build.)
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import qext
from common import interleaved_median_seconds, quiet_peers, threads, write_json
from bench_linear import torch_ao_linear

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
        bits_per_weight = {"fp32": 32.0, "qext_int8": 8 + 32 / k}
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
                    with quiet_peers():
                        t = interleaved_median_seconds(fns, min_time=args.min_time)
                    row = {"threads": nthreads, "M": m, "K": k, "N": n,
                           **{f"{name}_us": sec * 1e6 for name, sec in t.items()},
                           **{f"{name}_vs_fp32": t["fp32"] / sec for name, sec in t.items()},
                           "qext_int4_vs_qext_int8": t["qext_int8"] / t["qext_int4"],
                           "qext_int4_vs_torch_ao_int8": t["torch_ao_int8"] / t["qext_int4"],
                           "bits_per_weight": bits_per_weight}
                    rows.append(row)
                    print(f"thr={nthreads} M={m:<3} {k}x{n}: " + "  ".join(f"{name} {sec * 1e6:8.1f} us" for name, sec in t.items())
                          + f"  | int4 vs int8 x{row['qext_int4_vs_qext_int8']:.2f}, vs torch.ao x{row['qext_int4_vs_torch_ao_int8']:.2f}")
    write_json(args.out, {"benchmark": "lowbit", "group_size": args.group_size, "rows": rows})


if __name__ == "__main__":
    main()
