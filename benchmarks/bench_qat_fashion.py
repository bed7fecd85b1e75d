"""Fashion-MNIST: fp32 vs post-training int8 vs quantization-aware training,
full epochs (the test suite runs a 12k-image version).

    .venv/bin/python benchmarks/bench_qat_fashion.py [--bits 8,3] [--threads 2]

Steps: train the FashionCNN of examples/fashion_cnn.py one epoch (60k images);
quantize it statically (calibration: 1000 training images) at each weight
bit-width; then fine-tune one more epoch three ways from the same float
weights: fp32 (the fair baseline for "one more epoch"), and QAT at each
bit-width, converted to int8. Reports test accuracy (10k images) and the
training time per epoch with and without fake-quant. Writes JSON.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import qext  # noqa: E402
from common import write_json  # noqa: E402
from fashion_cnn import FashionCNN, accuracy, train  # noqa: E402
from real_data import fashion_mnist  # noqa: E402

FINE_TUNE_LR = 1e-4


def timed_train(model, x, y, lr):
    start = time.perf_counter()
    train(model, x, y, lr=lr, seed=1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", default="8,3", help="weight bit-widths, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "qat_fashion.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bits = [int(b) for b in args.bits.split(",")]

    (x_train, y_train), (x_test, y_test) = fashion_mnist("train"), fashion_mnist("t10k")
    calibration = list(x_train[:1000].split(100))
    torch.manual_seed(0)
    base = FashionCNN()
    fp32_epoch_s = timed_train(base, x_train, y_train, lr=1e-3)
    rows = {"fp32 (1 epoch)": accuracy(base, x_test, y_test)}
    print(f"fp32, 1 epoch: {rows['fp32 (1 epoch)']:.2f} % ({fp32_epoch_s:.1f} s/epoch)")

    tuned = copy.deepcopy(base)
    fp32_tune_s = timed_train(tuned, x_train, y_train, lr=FINE_TUNE_LR)
    rows["fp32 (+1 epoch)"] = accuracy(tuned, x_test, y_test)
    print(f"fp32, +1 epoch: {rows['fp32 (+1 epoch)']:.2f} % ({fp32_tune_s:.1f} s/epoch)")

    qat_epoch_s = {}
    for b in bits:
        ptq = qext.quantize_static(base, calibration, qext.StaticConfig(weight_bits=b), example_inputs=(calibration[0],))
        rows[f"PTQ int8, {b}-bit weights"] = accuracy(ptq, x_test, y_test)
        qat_model = qext.qat.prepare(base, qext.qat.QatConfig(weight_bits=b))
        qat_epoch_s[b] = timed_train(qat_model, x_train, y_train, lr=FINE_TUNE_LR)
        int8 = qext.qat.convert(qat_model, x_test[:1])
        rows[f"QAT int8, {b}-bit weights (+1 epoch)"] = accuracy(int8, x_test, y_test)
        print(f"{b}-bit: PTQ {rows[f'PTQ int8, {b}-bit weights']:.2f} %, "
              f"QAT {rows[f'QAT int8, {b}-bit weights (+1 epoch)']:.2f} % ({qat_epoch_s[b]:.1f} s/epoch)")

    write_json(args.out, {
        "benchmark": "qat_fashion",
        "threads": args.threads,
        "accuracy_percent": rows,
        "seconds_per_epoch": {"fp32": fp32_epoch_s, "fp32 fine-tune": fp32_tune_s,
                              **{f"QAT {b}-bit": s for b, s in qat_epoch_s.items()}},
    })


if __name__ == "__main__":
    main()
