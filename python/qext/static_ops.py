"""int8-in, int8-out ops for static quantization (uint8 activations with one
scale and zero point per tensor, from calibration). Building blocks of the
static quantization flow; bias, ReLU and requantization are fused."""

from __future__ import annotations

from typing import Sequence

import torch

from . import _C  # noqa: F401  (registers torch.ops.qext)


def _pair(v: int | Sequence[int]) -> list[int]:
    return [v, v] if isinstance(v, int) else list(v)


def quantize_conv_weight(weight: torch.Tensor, stride=1, padding=0, dilation=1, groups: int = 1):
    """Quantize a float Conv2d weight ``[Cout, Cin/groups, KH, KW]`` to symmetric
    int8 per output channel and pack it, with the conv's geometry, for this CPU.
    Returns a ``torch.classes.qext.PackedConvWeight`` (pickles portably)."""
    return torch.ops.qext.quantize_conv_weight(weight.detach(), _pair(stride), _pair(padding), _pair(dilation), groups)


def conv2d_int8(x: torch.Tensor, x_scale: float, x_zero_point: int, weight, bias: torch.Tensor | None,
                out_scale: float, out_zero_point: int, relu: bool = False,
                clamp_min: float | None = None, clamp_max: float | None = None) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` -> uint8 ``[N, Cout, OH, OW]`` (channels-last memory).

    ``out = quantize(clamp(conv(dequantize(x), W) + bias), out_scale, out_zero_point)``
    with exact int32 accumulation and qext's rounding rule; the clamp is ReLU
    (``relu``) and/or ``[clamp_min, clamp_max]`` (ReLU6, Hardtanh, clamp).
    """
    return torch.ops.qext.conv2d_int8(x, x_scale, x_zero_point, weight, bias, out_scale, out_zero_point, relu,
                                      clamp_min, clamp_max)


def linear_int8(x: torch.Tensor, x_scale: float, x_zero_point: int, weight, bias: torch.Tensor | None,
                out_scale: float, out_zero_point: int, relu: bool = False,
                clamp_min: float | None = None, clamp_max: float | None = None) -> torch.Tensor:
    """uint8 ``[..., K]`` -> uint8 ``[..., N]`` with a weight from
    :func:`qext.quantize_linear_weight`, clamped like :func:`conv2d_int8` and
    requantized to (out_scale, out_zero_point)."""
    return torch.ops.qext.linear_int8(x, x_scale, x_zero_point, weight, bias, out_scale, out_zero_point, relu,
                                      clamp_min, clamp_max)


def add_int8(a: torch.Tensor, a_scale: float, a_zero_point: int, b: torch.Tensor, b_scale: float,
             b_zero_point: int, out_scale: float, out_zero_point: int, relu: bool = False) -> torch.Tensor:
    """Sum of two uint8 tensors of one shape with their own qparams (a residual
    add), requantized to (out_scale, out_zero_point); optional fused ReLU."""
    return torch.ops.qext.add_int8(a, a_scale, a_zero_point, b, b_scale, b_zero_point, out_scale, out_zero_point, relu)


def fold_batch_norm(weight: torch.Tensor, bias: torch.Tensor | None, bn: torch.nn.modules.batchnorm._BatchNorm):
    """(weight, bias) of a conv/linear with the eval-mode BatchNorm ``bn`` that
    follows it folded in: ``w * gamma / sqrt(var + eps)``, ``(b - mean) * gamma /
    sqrt(var + eps) + beta`` (computed in float64)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_batch_norm: the BatchNorm tracks no running statistics (track_running_stats=False)")
    gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
    return torch.ops.qext.fold_batch_norm(weight.detach(), None if bias is None else bias.detach(), gamma.detach(),
                                          beta.detach(), bn.running_mean, bn.running_var, bn.eps)
