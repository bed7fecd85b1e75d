"""Dynamically quantized linear layers: int8 weights, activations quantized on
the fly, float in and float out."""

from __future__ import annotations

import torch

from . import _C  # noqa: F401  (registers torch.ops.qext)


def quantize_linear_weight(weight: torch.Tensor, per_channel: bool = True, bits: int = 8, activation_bits: int = 8):
    """Quantize a float ``[out, in]`` weight to symmetric int8 [-127, 127] and pack
    it for this CPU.

    ``bits`` < 8 keeps int8 storage with values in ``[-(2^(bits-1) - 1),
    2^(bits-1) - 1]``. At 7 bits (and fewer) AVX2 CPUs without VNNI multiply
    the weight with an exact ``vpmaddubsw`` kernel, about 1.3x faster than the
    8-bit one; results are the same on every CPU.

    ``activation_bits=7`` packs the weight for :func:`linear_dynamic` calls
    with ``activation_bits=7`` (torch.ao x86's ``reduce_range``): AVX2 CPUs
    then multiply 8-bit weights with ``vpmaddubsw`` too (exact with
    activations <= 127). Calls with 8-bit activations still give the same
    results, more slowly there; other CPUs ignore it.

    Returns a ``torch.classes.qext.PackedLinearWeight``. It can be stored as an
    attribute of a ScriptModule; saving writes the portable int8 weight and
    scales, and loading re-packs them for the CPU that loads the model.
    """
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"quantize_linear_weight: expected a torch.Tensor, got {type(weight).__name__}")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"quantize_linear_weight: bits must be an int in [2, 8]; got {bits!r}")
    if activation_bits not in (8, 7):
        raise ValueError(f"quantize_linear_weight: activation_bits must be 8 or 7; got {activation_bits!r}")
    qmax = (1 << (bits - 1)) - 1
    if activation_bits == 8:  # the schema's default, left out as before
        return torch.ops.qext.quantize_linear_weight(weight.detach(), per_channel, qmax)
    return torch.ops.qext.quantize_linear_weight(weight.detach(), per_channel, qmax, activation_bits)


def linear_dynamic(
    input: torch.Tensor,
    weight,
    bias: torch.Tensor | None = None,
    per_row: bool = False,
    relu: bool = False,
    activation_bits: int = 8,
    gelu: bool = False,
) -> torch.Tensor:
    """``input @ W.T + bias`` with an int8 weight from :func:`quantize_linear_weight`.

    ``input`` is float32 ``[..., in]``; it is quantized to uint8 per tensor, or per
    row (one scale per token) when ``per_row``, which is more accurate for
    activations with outliers; in ``[0, 255]``, or ``[0, 127]`` with
    ``activation_bits=7`` (with a 7-bit weight, AVX2 CPUs without VNNI then run
    a faster exact kernel). ``relu`` or ``gelu`` (erf form, as
    ``F.gelu(approximate="none")``, within 1.2e-6 of the exact function) is applied to the
    float result inside the GEMM's epilogue, not as a pass of its own. Rows
    whose input holds NaN or Inf give NaN rows in the output; the other rows
    are unaffected.
    """
    # Arguments equal to the schema's defaults are left out, as files written
    # before they existed have them.
    if gelu:
        return torch.ops.qext.linear_dynamic(input, weight, bias, per_row, relu, activation_bits, gelu)
    if activation_bits == 8:
        return torch.ops.qext.linear_dynamic(input, weight, bias, per_row, relu)
    return torch.ops.qext.linear_dynamic(input, weight, bias, per_row, relu, activation_bits)


def linear_dynamic_group(
    input: torch.Tensor,
    weights,
    biases=None,
    per_row: bool = False,
    activation_bits: int = 8,
) -> list[torch.Tensor]:
    """:func:`linear_dynamic` of one ``input`` with several weights (a
    Transformer's Q, K and V projections), as a list of outputs.

    The input is quantized once and the GEMMs run in one parallel region; output
    ``i`` is bit for bit ``linear_dynamic(input, weights[i], biases[i], per_row,
    activation_bits=activation_bits)``. ``biases`` holds one tensor or ``None``
    per weight (``None``: no biases). Every weight must take the same number of
    input features. ``quantize_dynamic`` makes these calls itself wherever
    Linears share an input.
    """
    weights = list(weights)
    biases = [None] * len(weights) if biases is None else list(biases)
    return torch.ops.qext.linear_dynamic_group(input, weights, biases, per_row, activation_bits)


def quantize_linear_weight_lowbit(weight: torch.Tensor, bits: int = 4, group_size: int = 128):
    """Quantize a float ``[out, in]`` weight to ``bits`` (4, 2 or 1) per value with
    one float scale per group of ``group_size`` inputs (a multiple of 4; 0: one
    group per row).

    4 and 2 bits are symmetric: each group's largest magnitude lands on the most
    negative level (-8 or -2), so every level is used and a scale may be
    negative. 1 bit is binary: ``sign(w)`` times the group's mean ``|w|``.
    Returns a ``torch.classes.qext.LowBitLinearWeight``; saving stores the codes
    at ``bits`` per weight plus the scales.
    """
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"quantize_linear_weight_lowbit: expected a torch.Tensor, got {type(weight).__name__}")
    return torch.ops.qext.quantize_linear_weight_lowbit(weight.detach(), bits, group_size)


def linear_lowbit(input: torch.Tensor, weight, bias: torch.Tensor | None = None, per_row: bool = True,
                  relu: bool = False) -> torch.Tensor:
    """``input @ W.T + bias`` with a low-bit weight from
    :func:`quantize_linear_weight_lowbit`: ``input`` (float32 ``[..., in]``) is
    quantized to uint8 per row (or per tensor), each weight group's product is
    exact in int32, and the groups are scaled and summed in float. Rows holding
    NaN or Inf give NaN rows."""
    return torch.ops.qext.linear_lowbit(input, weight, bias, per_row, relu)
