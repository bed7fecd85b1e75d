"""Models as they are deployed: each contender loaded from its file in a fresh
process that does nothing else, then run forward after forward. The in-process
benchmarks (bench_resnet.py) quantize and run in one process whose heap the
calibration already grew, which hides what a fresh process pays: page faults
on memory the allocator hands back to the system between forwards.

    python benchmarks/bench_deployed.py [--models mobilenet_v2,efficientnet_b0] [--threads 1,2] [--rounds 5]

Contenders: the fp32 model (TorchScript, frozen), qext's static int8 model,
the same int8 model with qext's memory pool off (QEXT_POOL_MB=0), and ONNX
Runtime's QDQ int8 model (as bench_resnet.py makes it; if onnxruntime is
installed). Each
round starts one process per contender, in turn, so a noisy neighbour hits
all alike; a process times forwards for --min-time seconds after a warm-up
and reports its median and its page faults per forward. Quoted: the median
over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

import torch

import qext
from bench_resnet import MODELS, onnxruntime_static, randomize_batch_norm
from common import write_json

CHILD = textwrap.dedent("""
    import json, resource, sys, time, torch
    path, loader, nthreads, min_time = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    torch.set_num_threads(nthreads)
    x = torch.load(path + ".input.pt")
    if loader == "qext":
        import qext
        model = qext.load(path)
    elif loader == "onnxruntime":
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = nthreads, 1
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        model = lambda _: session.run(None, feed)
    else:
        model = torch.jit.load(path)
    with torch.no_grad():
        for _ in range(10):
            model(x)
        times, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        end = time.perf_counter() + min_time
        while time.perf_counter() < end or len(times) < 5:
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({"seconds": sorted(times)[len(times) // 2], "faults_per_forward": faults / len(times)}))
""")


def run_child(path: str, loader: str, nthreads: int, min_time: float, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, path, loader, str(nthreads), str(min_time)],
                         capture_output=True, text=True, check=True, env={**os.environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mobilenet_v2,mobilenet_v3_large,efficientnet_b0,resnet18")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of forwards per process")
    ap.add_argument("--out", default="benchmarks/results/deployed.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            torch.manual_seed(0)
            model = randomize_batch_norm(MODELS[name]()).eval()
            g = torch.Generator().manual_seed(1)
            calib = [torch.randn(1, 3, 224, 224, generator=g) for _ in range(8)]
            x = torch.randn(1, 3, 224, 224, generator=g)
            fp32_path, int8_path = os.path.join(tmp, f"{name}_fp32.pt"), os.path.join(tmp, f"{name}_int8.pt")
            with torch.no_grad():
                torch.jit.save(torch.jit.freeze(torch.jit.script(model)), fp32_path)
            qext.save(qext.quantize_static(model, calib), int8_path)
            contenders = {"fp32_torchscript": (fp32_path, "torch", {}), "qext_static": (int8_path, "qext", {}),
                          "qext_static_no_pool": (int8_path, "qext", {"QEXT_POOL_MB": "0"})}
            ort_dir = os.path.join(tmp, f"{name}_ort")
            os.makedirs(ort_dir)
            if onnxruntime_static(model, x, calib, 1, ort_dir) is not None:
                contenders["onnxruntime_qdq"] = (os.path.join(ort_dir, "m_int8.onnx"), "onnxruntime", {})
            for path, _, _ in contenders.values():
                torch.save(x, path + ".input.pt")
            for nthreads in (int(t) for t in args.threads.split(",")):
                runs = {c: [] for c in contenders}
                for _ in range(args.rounds):
                    for c, (path, loader, env) in contenders.items():
                        runs[c].append(run_child(path, loader, nthreads, args.min_time, env))
                fp32 = statistics.median(r["seconds"] for r in runs["fp32_torchscript"])
                line = []
                for c, results in runs.items():
                    seconds = statistics.median(r["seconds"] for r in results)
                    faults = statistics.median(r["faults_per_forward"] for r in results)
                    rows.append({"model": name, "threads": nthreads, "contender": c, "seconds": seconds,
                                 "faults_per_forward": faults, "speedup_vs_fp32": fp32 / seconds})
                    line.append(f"{c} {seconds * 1e3:.2f} ms ({fp32 / seconds:.2f}x fp32, {faults:.0f} faults)")
                print(f"{name:20} {nthreads}t  " + " | ".join(line), flush=True)
    write_json(args.out, {"isa": qext.active_isa(), "rows": rows})


if __name__ == "__main__":
    main()
