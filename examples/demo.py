"""qext's main job on the bundled example: quantize examples/digits_mlp.pt with
the qext CLI, then compare the float and int8 models on size, speed and
accuracy (real handwritten digits from scikit-learn).

    .venv/bin/python examples/demo.py
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import qext

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_digits_mlp import digits_split  # noqa: E402


def median_ms(fn, reps: int = 50) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    src = HERE / "digits_mlp.pt"
    out_dir = HERE.parent / "build" / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / "digits_mlp_int8.pt"
    cli = [sys.executable, "-m", "qext.cli", "quantize", str(src), str(dst), "--mode", "dynamic"]
    print("$ qext quantize", src.relative_to(HERE.parent), dst.relative_to(HERE.parent), "--mode dynamic")
    subprocess.run(cli, check=True)

    fp32, int8 = torch.jit.load(str(src)), qext.load(dst)
    _, (x, y) = digits_split()
    torch.set_num_threads(1)
    with torch.no_grad():
        logits_f, logits_q = fp32(x), int8(x)
        batch = x.repeat(4, 1)  # 1440 digits per call
        t_f = median_ms(lambda: fp32(batch))
        t_q = median_ms(lambda: int8(batch))
    acc_f = (logits_f.argmax(1) == y).float().mean().item()
    acc_q = (logits_q.argmax(1) == y).float().mean().item()
    agree = (logits_f.argmax(1) == logits_q.argmax(1)).float().mean().item()
    cos = torch.nn.functional.cosine_similarity(logits_f, logits_q).mean().item()
    size_f, size_q = os.path.getsize(src), os.path.getsize(dst)

    print()
    print(f"{'':28}{'fp32':>12}{'qext int8':>12}")
    print(f"{'file size (bytes)':28}{size_f:>12,}{size_q:>12,}   {size_f / size_q:.2f}x smaller")
    print(f"{'latency, 1440 digits, 1 thr':28}{t_f:>10.2f}ms{t_q:>10.2f}ms   {t_f / t_q:.2f}x faster")
    print(f"{'top-1 accuracy (360 digits)':28}{acc_f:>12.2%}{acc_q:>12.2%}")
    print(f"int8 vs fp32: argmax agreement {agree:.2%}, mean logit cosine {cos:.5f}, "
          f"max |logit diff| {(logits_f - logits_q).abs().max().item():.4f}")
    print(f"(kernel path: {qext.active_isa()})")


if __name__ == "__main__":
    main()
