"""qext.linear_dynamic vs fp32 F.linear vs torch.ao's dynamic int8 Linear on
BERT-base and MiniLM shapes, measured in one run (contenders interleaved).

    python benchmarks/bench_linear.py [--out benchmarks/results/linear.json] [--isa avx2] [--bits 7 [--activation-bits 7]]

Reports GOP/s (2*M*K*N / median time; qext's time includes quantizing the
activations) and ratios against the peers, per shape and thread count. A
second qext column, "gemm", times the same product on activations already
quantized (qext::linear_int8, what a static model runs: uint8 in, requantized
uint8 out), so the share of the peak the GEMM itself reaches is shown apart
from the activation quantization a dynamic Linear adds.

An AVX2-only machine, emulated on an AVX-512 one (qext, fbgemm and fp32 all
limited to AVX2):

    QEXT_ISA=avx2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_linear.py --out benchmarks/results/linear_avx2.json
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import torch
import torch.nn.functional as F

import qext
from common import interleaved_median_seconds, quiet_peers, threads, write_json

BERT_KN = ((768, 768), (768, 3072), (3072, 768))
MINILM_KN = ((384, 384), (384, 1536), (1536, 384))
SHAPES_MKN = [(m, k, n) for m in (1, 4, 8, 32, 128, 512, 1024) for (k, n) in BERT_KN + MINILM_KN]


def torch_ao_linear(weight: torch.Tensor, bias: torch.Tensor):
    with quiet_peers():
        from torch.ao.nn.quantized.dynamic import Linear as DynLinear
        from torch.ao.quantization import quantize_dynamic

        lin = torch.nn.Linear(weight.shape[1], weight.shape[0])
        lin.weight.data.copy_(weight)
        lin.bias.data.copy_(bias)
        q = quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
        assert isinstance(q[0], DynLinear)
        return q


# The gemm contender's requantization scale (the work is the same for any).
OUT_SCALE = 0.05


def quantized_activations(x: torch.Tensor, activation_bits: int) -> tuple[torch.Tensor, float, int]:
    """x as a static model hands it to qext::linear_int8: uint8 over
    [0, 2**activation_bits - 1], one scale and zero point for the tensor."""
    qmax = (1 << activation_bits) - 1
    scale, zp = qext.choose_qparams(x, qmax=qmax)
    return qext.quantize(x, scale, zp, qmax=qmax), float(scale), int(zp)


def measured_peak(isa: str, bits: int, activation_bits: int = 8) -> float | None:
    """One core's peak for the instruction chain of the path's GEMM, from the
    probe built beside qext (qext_amx_peak: tdpbusd; qext_vnni_peak: vpdpbusd;
    qext_avx2_peak: vpmaddwd + vpaddd for 8-bit weights and activations;
    vpmaddubsw + vpmaddwd + vpaddd where one operand is 7-bit (weights packed
    as bytes); two vpmaddubsw + vpaddw + vpmaddwd + vpaddd where both are)."""
    if bits < 8 and activation_bits == 7:
        avx2_key = "avx2_paired_peak_gops_1core"
    elif bits < 8 or activation_bits == 7:
        avx2_key = "avx2_narrow_peak_gops_1core"
    else:
        avx2_key = "avx2_peak_gops_1core"
    probe, key = {"amx": ("qext_amx_peak", "amx_peak_gops_1core"),
                  "avx512_vnni": ("qext_vnni_peak", "vnni_peak_gops_1core"),
                  "avx2": ("qext_avx2_peak", avx2_key)}.get(isa, (None, None))
    exe = next(Path("build").glob(f"*/{probe}"), None) if probe else None
    if exe is None:
        return None
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=False).stdout
    import json

    return json.loads(out).get(key) if out.strip() else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/linear.json")
    ap.add_argument("--isa", default=None, help="force a qext kernel path (ref, avx2, avx512_vnni, amx)")
    ap.add_argument("--compare-isa", default=None,
                    help="also time qext with weights packed for this path, in the same rounds (e.g. avx512_vnni "
                         "next to amx)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--bits", type=int, default=8,
                    help="qext weight bits (7: int8 storage in [-63, 63], AVX2's vpmaddubsw kernel)")
    ap.add_argument("--activation-bits", type=int, default=8,
                    help="qext activation bits (7: [0, 127], torch.ao's reduce_range; with --bits 7, AVX2 sums two "
                         "k groups per widening)")
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per contender and shape")
    args = ap.parse_args()
    if args.isa:
        qext.set_isa(args.isa)
    torch.manual_seed(0)
    rows = []
    active, other = qext.active_isa(), args.compare_isa
    print(f"qext kernel path: {active}" + (f" (and {other} in the same rounds)" if other else ""))
    print(f"{'thr':>3} {'M':>4} {'K':>5} {'N':>5} | {'fp32':>7} {'torch.ao':>8} {'qext':>7} {'gemm':>7} GOP/s"
          f" | qext/fp32 qext/ao"
          + (f" qext/{other}" if other else ""))
    for nthreads in [int(t) for t in args.threads.split(",")]:
        with threads(nthreads):
            for m, k, n in SHAPES_MKN:
                w, b = torch.randn(n, k) / k**0.5, torch.randn(n)
                x = torch.randn(m, k)
                packed = qext.quantize_linear_weight(w, bits=args.bits, activation_bits=args.activation_bits)
                ao = torch_ao_linear(w, b)
                ops = 2.0 * m * k * n
                xq, x_scale, x_zp = quantized_activations(x, args.activation_bits)
                contenders = {"fp32": lambda: F.linear(x, w, b), "ao": lambda: ao(x),
                              "qext": lambda: qext.linear_dynamic(x, packed, b, activation_bits=args.activation_bits),
                              "gemm": lambda: qext.linear_int8(xq, x_scale, x_zp, packed, b, OUT_SCALE, 128)}
                if other:  # weights keep the path they were packed for
                    qext.set_isa(other)
                    packed_other = qext.quantize_linear_weight(w, bits=args.bits, activation_bits=args.activation_bits)
                    qext.set_isa(active)
                    contenders["other"] = lambda: qext.linear_dynamic(x, packed_other, b,
                                                                      activation_bits=args.activation_bits)
                with quiet_peers():
                    t = interleaved_median_seconds(contenders, min_time=args.min_time)
                t_fp32, t_ao, t_q = t["fp32"], t["ao"], t["qext"]
                row = {
                    "threads": nthreads, "M": m, "K": k, "N": n,
                    "fp32_gops": ops / t_fp32 / 1e9, "torch_ao_gops": ops / t_ao / 1e9,
                    "qext_gops": ops / t_q / 1e9, "qext_gemm_gops": ops / t["gemm"] / 1e9,
                    "qext_vs_fp32": t_fp32 / t_q, "qext_vs_torch_ao": t_ao / t_q,
                }
                if other:
                    row[f"qext_{other}_gops"] = ops / t["other"] / 1e9
                    row[f"qext_vs_qext_{other}"] = t["other"] / t_q
                rows.append(row)
                print(f"{nthreads:>3} {m:>4} {k:>5} {n:>5} | {row['fp32_gops']:7.1f} {row['torch_ao_gops']:8.1f} "
                      f"{row['qext_gops']:7.1f} {row['qext_gemm_gops']:7.1f}       | {row['qext_vs_fp32']:9.2f} "
                      f"{row['qext_vs_torch_ao']:7.2f}"
                      + (f" {row[f'qext_vs_qext_{other}']:9.2f}" if other else ""))
    peak = measured_peak(qext.active_isa(), args.bits, args.activation_bits)
    if peak:
        print(f"{qext.active_isa()} GEMM instruction peak, one core: {peak:.0f} GOP/s")
        for r in rows:
            r["qext_fraction_of_peak"] = r["qext_gops"] / (peak * r["threads"])
            r["qext_gemm_fraction_of_peak"] = r["qext_gemm_gops"] / (peak * r["threads"])
            print(f"  {r['threads']} thr M={r['M']:<4} {r['K']}x{r['N']}: {100 * r['qext_fraction_of_peak']:.0f} % of peak"
                  f" (gemm on quantized activations: {100 * r['qext_gemm_fraction_of_peak']:.0f} %)")
    write_json(args.out, {"isa": qext.active_isa(), "weight_bits": args.bits,
                          "activation_bits": args.activation_bits, "compare_isa": other, "peak_gops_1core": peak, "rows": rows})


if __name__ == "__main__":
    main()
