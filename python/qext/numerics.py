"""Quantization arithmetic, shared by every qext op.

The mapping is affine, ``real = scale * (q - zero_point)``, and quantizing is::

    q = clamp(round_half_to_even(x / scale) + zero_point, qmin, qmax)

Per tensor when ``axis`` is None, else one scale and zero point per slice
along ``axis``. uint8 results when ``qmin >= 0``, int8 otherwise.
"""

from __future__ import annotations

import torch

from . import _C  # noqa: F401  (registers torch.ops.qext)


def choose_qparams(
    x: torch.Tensor,
    axis: int | None = None,
    qmin: int = 0,
    qmax: int = 255,
    symmetric: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale (float32) and zero point (int32) covering the range of ``x``.

    The range is widened to contain 0 so that 0 is exactly representable; a
    zero-width range gets the smallest valid scale instead of a division by
    zero. Symmetric mode centres the zero point (0 for int8, 128 for uint8).
    Raises ``RuntimeError`` for empty tensors and NaN/Inf values.
    """
    return torch.ops.qext.choose_qparams(x, axis, qmin, qmax, symmetric)


def quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    axis: int | None = None,
    qmin: int = 0,
    qmax: int = 255,
) -> torch.Tensor:
    """Quantize float32 ``x`` (round half to even, then clamp; NaN maps to qmin)."""
    return torch.ops.qext.quantize(x, scale, zero_point, axis, qmin, qmax)


def dequantize(
    q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int | None = None
) -> torch.Tensor:
    """``float(q - zero_point) * scale`` for uint8 or int8 ``q``."""
    return torch.ops.qext.dequantize(q, scale, zero_point, axis)


def fake_quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    axis: int | None = None,
    qmin: int = 0,
    qmax: int = 255,
) -> torch.Tensor:
    """``dequantize(quantize(x))`` in one pass, with the same rounding.

    Differentiable in ``x`` with the straight-through estimator: the gradient
    passes where ``round(x / scale) + zero_point`` lies in ``[qmin, qmax]`` and
    is zero where the value was clamped. A ``scale`` or float ``zero_point``
    that requires grad gets the LSQ gradients (inside the range
    ``round(x/s) - x/s`` and 0, clamped ``q_edge - z`` and ``-s``), summed per
    channel; float zero points must hold integers (round them first).
    """
    return torch.ops.qext.fake_quantize(x, scale, zero_point, axis, qmin, qmax)
