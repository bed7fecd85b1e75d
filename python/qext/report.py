"""What quantization did to each layer, stored inside the quantized module."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import _C


@dataclass(frozen=True)
class LayerReport:
    """One candidate layer: quantized (``status`` "int8", or "int4" / "int2" / "int1" for low-bit
    Linear weights) or kept float (``status == "float"``) and why."""

    name: str
    kind: str
    status: str
    reason: str
    bytes_before: int
    bytes_after: int
    scale: float | None = None  # static int8: the output's scale and zero point
    zero_point: int | None = None
    sqnr_db: float | None = None  # static int8: output vs the float model on the calibration data


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@dataclass
class QuantizationReport:
    """Per-layer outcome of a qext quantization, with totals."""

    mode: str = ""
    layers: list[LayerReport] = field(default_factory=list)

    @property
    def quantized(self) -> int:
        return sum(layer.status != "float" for layer in self.layers)

    @property
    def bytes_before(self) -> int:
        return sum(layer.bytes_before for layer in self.layers)

    @property
    def bytes_after(self) -> int:
        return sum(layer.bytes_after for layer in self.layers)

    def table(self) -> str:
        """A plain-text table: layer, kind, status, bytes before/after, then totals."""
        if not self.mode:
            return "no qext report: this model was not quantized by qext"
        if not self.layers:
            if self.mode == "static":
                return "nothing to quantize: no Conv1d, Conv2d or Linear layer was found"
            return "nothing to quantize: no Linear layer (nn.Linear, F.linear or x @ W) was found"
        head = ("layer", "kind", "status", "bytes before", "bytes after")
        rows = [
            (l.name, l.kind, l.status + (f" ({l.reason})" if l.reason else ""), f"{l.bytes_before:,}", f"{l.bytes_after:,}")
            for l in self.layers
        ]
        if any(l.scale is not None for l in self.layers):
            head += ("out scale", "out zp", "SQNR dB")
            rows = [
                r + (_fmt(l.scale, ".4g"), _fmt(l.zero_point, "d"), _fmt(l.sqnr_db, ".1f"))
                for r, l in zip(rows, self.layers)
            ]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
        lines = [fmt(head), fmt(tuple("-" * w for w in widths))] + [fmt(r) for r in rows]
        ratio = self.bytes_before / self.bytes_after if self.bytes_after else float("nan")
        kinds = "/".join(sorted({l.status for l in self.layers} - {"float"}, reverse=True)) or "int8"
        lines.append(
            f"{self.quantized} of {len(self.layers)} layers {kinds}; weights {self.bytes_before:,} -> "
            f"{self.bytes_after:,} bytes ({ratio:.2f}x smaller)"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def report(module: torch.jit.ScriptModule) -> QuantizationReport:
    """The report a qext-quantized module carries (also after save and load)."""
    if not isinstance(module, torch.jit.ScriptModule):
        raise TypeError(f"report: expected a torch.jit.ScriptModule from qext; got {type(module).__name__}")
    r = _C.report(module._c)
    return QuantizationReport(r.mode, [
        LayerReport(l.name, l.kind, l.status, l.reason, l.bytes_before, l.bytes_after, l.scale, l.zero_point, l.sqnr_db)
        for l in r.layers
    ])
