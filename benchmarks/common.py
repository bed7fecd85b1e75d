"""Shared helpers for qext's benchmarks: timing with medians, JSON output,
thread control and quiet peers."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch


def median_seconds(fn, *, warmup: int = 3, min_reps: int = 7, min_time: float = 0.3) -> float:
    """Median wall time of fn() over at least min_reps runs and min_time seconds."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return statistics.median(times)


def interleaved_median_seconds(fns: dict, *, rounds: int = 5, warmup: int = 2, min_reps: int = 5,
                               min_time: float = 1.0) -> dict[str, float]:
    """Median wall time of each of fns' callables, measured in `rounds` turns
    that cycle through them (each turn at least min_time / rounds seconds), so a
    burst of load from a neighbour on a shared machine hits every contender
    alike instead of whichever happened to be running."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    per_turn_reps = max(1, -(-min_reps // rounds))
    for _ in range(rounds):
        for name, fn in fns.items():
            start, reps = time.perf_counter(), 0
            while reps < per_turn_reps or time.perf_counter() - start < min_time / rounds:
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
                reps += 1
                if reps >= 200 // rounds:
                    break
    return {name: statistics.median(s) for name, s in samples.items()}


@contextlib.contextmanager
def threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def quiet_peers():
    """torch.ao prints deprecation warnings on every use; peers only, never qext."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# Environment variables that limit an instruction set, per library: qext,
# fbgemm (torch.ao), oneDNN, MKL, ATen. ONNX Runtime's MLAS has none.
ISA_LIMITS = ("QEXT_ISA", "FBGEMM_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
              "ATEN_CPU_CAPABILITY")


def machine() -> dict:
    """What the figures were measured on: CPU, torch, qext's kernel path and
    the ISA limits in force (an AVX2 machine emulated on an AVX-512 one)."""
    import qext

    return {
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "qext_isa": qext.active_isa(),
        "isa_limits": {k: os.environ[k] for k in ISA_LIMITS if k in os.environ},
    }


def write_json(path: str | Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")


def add_ratios_and_print(rows: list[dict], times: dict[str, float], label: str) -> None:
    """Adds speedup_vs_fp32_eager and qext_speedup_vs_this to the rows of one
    measurement group (same shape and threads) and prints them."""
    ours = next(name for name in times if name.startswith("qext"))
    for row in rows:
        row["speedup_vs_fp32_eager"] = times["fp32_eager"] / row["seconds"]
        row["qext_speedup_vs_this"] = row["seconds"] / times[ours]
        print(f"{label} thr={row['threads']} {row['contender']:24} {row['seconds'] * 1e3:9.1f} ms  "
              f"x{row['speedup_vs_fp32_eager']:.2f} vs fp32  qext x{row['qext_speedup_vs_this']:.2f}  "
              f"cos mean {row['cos_mean']:.4f} min {row['cos_min']:.4f}")
