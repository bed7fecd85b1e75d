"""Dynamic int8 nn.LSTM / nn.GRU: fp32 eager, torch.ao dynamic (qint8) and qext,
interleaved in one run, per shape and thread count.

    python benchmarks/bench_rnn.py [--threads 1,2] [--out benchmarks/results/rnn.json]

Shapes (T steps, B batch, I inputs, H hidden): a speech/keyword-spotting
style single layer, a batched one, and a 2-layer bidirectional encoder. Error
columns: cosine of the output sequence with fp32 (per batch row). Medians of
interleaved rounds; the JSON records the kernel path (qext.active_isa()).
"""

from __future__ import annotations

import argparse
import functools

import torch
import torch.nn as nn

import qext
from common import add_ratios_and_print, interleaved_median_seconds, quiet_peers, threads, write_json

SHAPES = [  # (cell, T, B, I, H, layers, bidirectional)
    ("LSTM", 50, 1, 256, 512, 1, False),
    ("GRU", 50, 1, 256, 512, 1, False),
    ("LSTM", 50, 16, 256, 512, 1, False),
    ("GRU", 100, 8, 128, 256, 1, False),
    ("LSTM", 64, 4, 128, 256, 2, True),
]


class Rnn(nn.Module):
    def __init__(self, cell: str, inputs: int, hidden: int, layers: int, bidirectional: bool):
        super().__init__()
        self.rnn = getattr(nn, cell)(inputs, hidden, num_layers=layers, bidirectional=bidirectional)

    def forward(self, x):
        return self.rnn(x)[0]


def torch_ao(model: nn.Module, cell: str):
    with quiet_peers():
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {getattr(nn, cell)}, dtype=torch.qint8)


def cosine(ref, out):
    c = torch.nn.functional.cosine_similarity(ref.transpose(0, 1).flatten(1), out.transpose(0, 1).flatten(1))
    return c.mean().item(), c.min().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per contender, over all rounds")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/rnn.json")
    args = ap.parse_args()
    rows = []
    for cell, t, b, i, h, layers, bidir in SHAPES:
        torch.manual_seed(0)
        model = Rnn(cell, i, h, layers, bidir).eval()
        x = torch.randn(t, b, i)
        contenders = {"fp32_eager": model, "torch_ao_dynamic": torch_ao(model, cell), "qext_dynamic": qext.quantize_dynamic(model)}
        label = f"{cell} T={t} B={b} I={i} H={h} L={layers}{' bidir' if bidir else ''}"
        with torch.no_grad():
            ref = model(x)
            for nthreads in [int(n) for n in args.threads.split(",")]:
                with threads(nthreads), quiet_peers():
                    times = interleaved_median_seconds({k: functools.partial(f, x) for k, f in contenders.items()},
                                                       rounds=args.rounds, min_time=args.min_time)
                    group = []
                    for name, fn in contenders.items():
                        cm, cmin = cosine(ref, fn(x))
                        group.append({"shape": label, "threads": nthreads, "contender": name, "seconds": times[name],
                                      "cos_mean": cm, "cos_min": cmin})
                add_ratios_and_print(group, times, f"{label:36}")
                rows += group
    write_json(args.out, {"benchmark": "rnn", "qext_isa": qext.active_isa(), "rows": rows})


if __name__ == "__main__":
    main()
