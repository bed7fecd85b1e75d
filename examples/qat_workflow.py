"""Quantization-aware training, end to end, on real data:

    .venv/bin/python examples/qat_workflow.py [--bits 3] [--images 12000]

1. train the FashionCNN of examples/fashion_cnn.py (conv+BN+ReLU blocks, a
   residual add, fc) in float on Fashion-MNIST;
2. post-training quantize it with low-bit weights and see the accuracy drop;
3. qext.qat.prepare, fine-tune with quantization simulated, qext.qat.convert;
4. save the int8 model and run it from the plain LibTorch C++ program
   (build/python/cpp_examples/run_model), which gives the same outputs.

Needs the data from scripts/fetch_data.sh. Takes about a minute on 2 cores.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import qext

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from fashion_cnn import FashionCNN, accuracy, train  # noqa: E402
from real_data import fashion_mnist  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=3, help="weight bits (2..8)")
    parser.add_argument("--images", type=int, default=12000, help="training images per stage")
    args = parser.parse_args()
    (x_train, y_train), (x_test, y_test) = fashion_mnist("train"), fashion_mnist("t10k")
    n = args.images

    torch.manual_seed(0)
    model = train(FashionCNN(), x_train[:n], y_train[:n])
    print(f"fp32:               {accuracy(model, x_test, y_test):.2f} %")

    calibration = list(x_train[-1000:].split(100))
    ptq = qext.quantize_static(model, calibration, qext.StaticConfig(weight_bits=args.bits), example_inputs=(calibration[0],))
    print(f"PTQ, {args.bits}-bit weights: {accuracy(ptq, x_test, y_test):.2f} %")

    qat_model = qext.qat.prepare(model, qext.qat.QatConfig(weight_bits=args.bits))
    train(qat_model, x_train[n : 2 * n], y_train[n : 2 * n], lr=1e-4)  # your usual loop works too
    int8 = qext.qat.convert(qat_model, example_inputs=x_test[:1])
    print(f"QAT, {args.bits}-bit weights: {accuracy(int8, x_test, y_test):.2f} %")
    print(qext.report(int8))

    with tempfile.TemporaryDirectory() as tmp:
        path, batch, out = Path(tmp) / "fashion_qat_int8.pt", Path(tmp) / "x.pt", Path(tmp) / "y.pt"
        qext.save(int8, path)
        torch.save(x_test[:8].contiguous(), batch)
        program = ROOT / "build" / "python" / "cpp_examples" / "run_model"
        if not program.exists():
            print(f"(C++ programs not built: run scripts/setup.sh) saved {path.name}")
            return
        subprocess.run([program, path, out, "--input-shape", "8,1,28,28", "--input", batch], check=True)
        with torch.no_grad():
            same = torch.equal(torch.load(out), int8(x_test[:8]))
        print(f"C++ run_model gives the same outputs as Python: {same}")


if __name__ == "__main__":
    main()
