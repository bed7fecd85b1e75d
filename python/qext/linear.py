"""Dynamically quantized linear layers: int8 weights, activations quantized on
the fly, float in and float out."""

from __future__ import annotations

import torch

from . import _C  # noqa: F401  (registers torch.ops.qext)


def quantize_linear_weight(weight: torch.Tensor, per_channel: bool = True):
    """Quantize a float ``[out, in]`` weight to symmetric int8 [-127, 127] and pack
    it for this CPU.

    Returns a ``torch.classes.qext.PackedLinearWeight``. It can be stored as an
    attribute of a ScriptModule; saving writes the portable int8 weight and
    scales, and loading re-packs them for the CPU that loads the model.
    """
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"quantize_linear_weight: expected a torch.Tensor, got {type(weight).__name__}")
    return torch.ops.qext.quantize_linear_weight(weight.detach(), per_channel)


def linear_dynamic(
    input: torch.Tensor,
    weight,
    bias: torch.Tensor | None = None,
    per_row: bool = False,
    relu: bool = False,
) -> torch.Tensor:
    """``input @ W.T + bias`` with an int8 weight from :func:`quantize_linear_weight`.

    ``input`` is float32 ``[..., in]``; it is quantized to uint8 per tensor, or per
    row (one scale per token) when ``per_row``, which is more accurate for
    activations with outliers. Rows whose input holds NaN or Inf give NaN rows
    in the output; the other rows are unaffected.
    """
    return torch.ops.qext.linear_dynamic(input, weight, bias, per_row, relu)
