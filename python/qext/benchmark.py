"""Inference time of a float model and its quantized copy, side by side:
``qext.benchmark`` and ``qext bench``.

Latency is the median of repeated runs, measured in rounds that alternate
between the two models (a burst of load on a shared machine hits both alike),
per input shape and thread count. The result prints as a table with a bar per
row and converts to JSON and to an SVG bar chart (no plotting library needed).
"""

from __future__ import annotations

import html
import io
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence

import torch


@dataclass
class BenchmarkRow:
    """One input shape at one thread count."""

    shape: list[int]
    threads: int
    float_ms: float
    quantized_ms: float
    max_abs_error: float  # between the two models' outputs on the timed input

    @property
    def speedup(self) -> float:
        return self.float_ms / self.quantized_ms


@dataclass
class BenchmarkResult:
    """What :func:`benchmark` measured, plus the machine it ran on."""

    rows: list[BenchmarkRow] = field(default_factory=list)
    kernel_path: str = ""
    float_bytes: int = 0      # parameters and buffers of the float model
    quantized_bytes: int = 0  # of the quantized model (packed weights as saved)

    def table(self) -> str:
        head = ("input shape", "threads", "float ms", "quantized ms", "speedup", "max |diff|", "")
        widest = max((r.speedup for r in self.rows), default=1.0)
        body = [(
            "x".join(map(str, r.shape)), str(r.threads), f"{r.float_ms:.3f}", f"{r.quantized_ms:.3f}",
            f"{r.speedup:.2f}x", f"{r.max_abs_error:.3g}", "#" * max(1, round(24 * r.speedup / widest)),
        ) for r in self.rows]
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        fmt = lambda row: "  ".join(c.ljust(w) if i in (0, 6) else c.rjust(w)  # noqa: E731
                                    for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        lines = [f"kernel path: {self.kernel_path}", fmt(head), fmt(tuple("-" * w for w in widths))]
        lines += [fmt(row) for row in body]
        if self.float_bytes and self.quantized_bytes:
            lines.append(f"model size: {self.float_bytes:,} -> {self.quantized_bytes:,} bytes "
                         f"({self.float_bytes / self.quantized_bytes:.2f}x smaller)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_json(self) -> str:
        rows = [{**asdict(r), "speedup": r.speedup} for r in self.rows]
        return json.dumps({"kernel_path": self.kernel_path, "float_bytes": self.float_bytes,
                           "quantized_bytes": self.quantized_bytes, "rows": rows}, indent=2)

    def to_svg(self) -> str:
        """A horizontal bar chart: per row (shape, threads) the float and the
        quantized latency on one scale, with the speedup; as SVG text."""
        bar_h, gap, left, right, top = 16, 14, 210, 170, 46
        plot_w = 360
        longest = max((max(r.float_ms, r.quantized_ms) for r in self.rows), default=1.0) or 1.0
        height = top + len(self.rows) * (2 * bar_h + gap) + 30
        width = left + plot_w + right
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="12">',
            f'<text x="10" y="20" font-size="14" font-weight="bold">qext bench: latency, float vs quantized '
            f'(median; kernel path {html.escape(self.kernel_path)})</text>',
            f'<rect x="{left}" y="28" width="12" height="10" fill="#9e9e9e"/>'
            f'<text x="{left + 16}" y="37">float</text>'
            f'<rect x="{left + 70}" y="28" width="12" height="10" fill="#1f77b4"/>'
            f'<text x="{left + 86}" y="37">quantized</text>',
        ]
        y = top
        for r in self.rows:
            label = f'{"x".join(map(str, r.shape))}, {r.threads} thread{"s" if r.threads > 1 else ""}'
            parts.append(f'<text x="{left - 8}" y="{y + bar_h + 4}" text-anchor="end">{html.escape(label)}</text>')
            for i, (ms, color, kind) in enumerate(((r.float_ms, "#9e9e9e", "float"),
                                                   (r.quantized_ms, "#1f77b4", "quantized"))):
                w = max(1.0, plot_w * ms / longest)
                by = y + i * bar_h
                parts.append(f'<rect class="{kind}" x="{left}" y="{by}" width="{w:.1f}" height="{bar_h - 2}" '
                             f'fill="{color}"><title>{kind}: {ms:.3f} ms</title></rect>')
                parts.append(f'<text x="{left + w + 4:.1f}" y="{by + bar_h - 4}">{ms:.3f} ms</text>')
            parts.append(f'<text x="{left + plot_w + 100}" y="{y + bar_h + 4}" font-weight="bold">'
                         f'{r.speedup:.2f}x</text>')
            y += 2 * bar_h + gap
        if self.float_bytes and self.quantized_bytes:
            parts.append(f'<text x="10" y="{y + 14}">model size: {self.float_bytes:,} -> {self.quantized_bytes:,} '
                         f'bytes ({self.float_bytes / self.quantized_bytes:.2f}x smaller)</text>')
        parts.append("</svg>")
        return "\n".join(parts) + "\n"


def _median_ms(fns: dict[str, Callable[[], object]], min_time: float, rounds: int = 5) -> dict[str, float]:
    for fn in fns.values():  # warm-up: first calls allocate and (TorchScript) optimise
        fn()
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
                if time.perf_counter() - start >= min_time / rounds / len(fns) and len(samples[name]) >= 3:
                    break
    return {name: statistics.median(s) * 1e3 for name, s in samples.items()}


def _model_bytes(module: torch.nn.Module) -> int:
    if isinstance(module, torch.jit.ScriptModule):  # packed qext weights are attributes, not parameters
        buffer = io.BytesIO()
        torch.jit.save(module, buffer)
        return buffer.getbuffer().nbytes
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def _progress(done: int, total: int, label: str, stream) -> None:
    if stream is None:
        return
    width = 30
    filled = width * done // total
    stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<32}")
    if done == total:
        stream.write("\n")
    stream.flush()


def benchmark(
    model: torch.nn.Module,
    quantized: torch.nn.Module | None = None,
    *,
    shapes: Sequence[Sequence[int]] | None = None,
    inputs: Iterable[tuple] | None = None,
    threads: Sequence[int] = (1,),
    min_time: float = 1.0,
    progress: bool = True,
) -> BenchmarkResult:
    """Latency of ``model`` (float) against ``quantized`` (default:
    ``qext.quantize_dynamic(model)``), per input and thread count.

    Args:
        model: the float model (``nn.Module`` or ``ScriptModule``).
        quantized: its quantized copy (e.g. from ``quantize_static``).
        shapes: input shapes, each run with one float32 ``torch.randn`` input;
            or give ``inputs``: tuples of input tensors, one per measurement.
        threads: torch thread counts to measure at.
        min_time: seconds per model, shape and thread count (in 5 rounds).
        progress: draw a progress bar on stderr.
    Returns a :class:`BenchmarkResult` (``print`` it for the table).
    """
    if (shapes is None) == (inputs is None):
        raise ValueError("benchmark: give exactly one of shapes= or inputs=")
    if inputs is None:
        shapes = [list(s) for s in shapes]
        if not shapes or any(not s or any(not isinstance(d, int) or d <= 0 for d in s) for s in shapes):
            raise ValueError(f"benchmark: shapes must be non-empty lists of positive ints; got {shapes!r}")
        generator = torch.Generator().manual_seed(0)
        inputs = [(torch.randn(*s, generator=generator),) for s in shapes]
    inputs = [tuple(x) if isinstance(x, (tuple, list)) else (x,) for x in inputs]
    threads = list(threads)
    if not threads or any(not isinstance(t, int) or t < 1 for t in threads):
        raise ValueError(f"benchmark: threads must be positive ints; got {threads!r}")
    from . import _C
    from .dynamic import quantize_dynamic

    model = model.eval() if hasattr(model, "eval") else model
    if quantized is None:
        quantized = quantize_dynamic(model)
    result = BenchmarkResult(kernel_path=_C.active_isa(), float_bytes=_model_bytes(model),
                             quantized_bytes=_model_bytes(quantized))
    stream = sys.stderr if progress else None
    total, done = len(inputs) * len(threads), 0
    before = torch.get_num_threads()
    try:
        with torch.inference_mode():
            for nthreads in threads:
                torch.set_num_threads(nthreads)
                for args in inputs:
                    shape = list(args[0].shape) if args and isinstance(args[0], torch.Tensor) else []
                    _progress(done, total, f"{'x'.join(map(str, shape))}, {nthreads} thread(s)", stream)
                    ms = _median_ms({"float": lambda: model(*args), "quantized": lambda: quantized(*args)}, min_time)
                    want, got = model(*args), quantized(*args)
                    error = (got - want).abs().max().item() if isinstance(want, torch.Tensor) else float("nan")
                    result.rows.append(BenchmarkRow(shape, nthreads, ms["float"], ms["quantized"], error))
                    done += 1
        _progress(done, total, "done", stream)
    finally:
        torch.set_num_threads(before)
    return result
