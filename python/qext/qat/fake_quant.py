"""Fake-quantization modules: the forward pass rounds and clamps exactly as
the int8 kernels will (torch.ops.qext.fake_quantize, the same C++ rule), the
backward pass uses the straight-through estimator (and LSQ for learnable
ranges)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..numerics import choose_qparams, fake_quantize

ACTIVATION_QMIN, ACTIVATION_QMAX = 0, 255


class ActivationFakeQuantize(nn.Module):
    """uint8 per-tensor fake quantization of an activation.

    While observing (training mode, not frozen) the range is the moving
    average of each batch's min/max and the scale/zero point follow it via
    ``qext.choose_qparams`` (the observers' rule), mapping the range onto
    [0, range_qmax] (255, or 127 for 7-bit activations; values stay clamped
    to uint8's [0, 255] either way, as in the int8 model). With
    ``learnable=True`` the scale and zero point are parameters, trained with
    LSQ gradients once the observer is frozen.
    """

    def __init__(self, averaging_constant: float = 0.01, learnable: bool = False, range_qmax: int = ACTIVATION_QMAX):
        super().__init__()
        self.averaging_constant = averaging_constant
        self.learnable = learnable
        self.range_qmax = range_qmax
        self.steps_until_frozen: int | None = None
        self.register_buffer("min_val", torch.tensor(float("inf")))
        self.register_buffer("max_val", torch.tensor(float("-inf")))
        self.register_buffer("observing", torch.tensor(True))
        self.scale = nn.Parameter(torch.tensor(1.0), requires_grad=learnable)
        self.zero_point = nn.Parameter(torch.tensor(0.0), requires_grad=learnable)

    @property
    def observed(self) -> bool:
        return bool(torch.isfinite(self.min_val))

    def freeze(self) -> None:
        self.observing.fill_(False)

    @torch.no_grad()
    def _observe(self, x: torch.Tensor) -> None:
        # The moving_average observer's rule, in C++ (NaN/Inf values skipped).
        torch.ops.qext.observe_moving_average_(x.detach(), self.min_val, self.max_val, self.averaging_constant)
        if not self.observed:
            return
        scale, zero_point = choose_qparams(torch.stack([self.min_val, self.max_val]), qmin=ACTIVATION_QMIN,
                                           qmax=self.range_qmax)
        self.scale.copy_(scale)
        self.zero_point.copy_(zero_point.float())
        if self.steps_until_frozen is not None:
            self.steps_until_frozen -= 1
            if self.steps_until_frozen <= 0:
                self.freeze()

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (scale, zero point) used now: scale > 0, zero point an integer in [0, range_qmax]."""
        scale = self.scale.abs().clamp_min(torch.finfo(torch.float32).eps)
        zp = self.zero_point.clamp(ACTIVATION_QMIN, self.range_qmax)
        zp = zp + (zp.round() - zp).detach()  # round with a straight-through gradient
        return scale, zp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and bool(self.observing):
            self._observe(x)
        if not self.observed:
            return x  # nothing seen yet (e.g. eval before any training step)
        scale, zp = self.qparams()
        if self.learnable and self.training and not bool(self.observing):
            # LSQ: scale the range gradients by 1 / sqrt(numel * qmax).
            g = 1.0 / math.sqrt(x.numel() * self.range_qmax)
            scale = scale * g + (scale - scale * g).detach()
            zp = zp * g + (zp - zp * g).detach()
        return fake_quantize(x, scale, zp, None, ACTIVATION_QMIN, ACTIVATION_QMAX)

    def extra_repr(self) -> str:
        return f"range=[{float(self.min_val):.4g}, {float(self.max_val):.4g}], learnable={self.learnable}"


def weight_qparams(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(scale, zero point, qmax) static convert will pick for this weight:
    symmetric per output channel, ``qext.choose_qparams`` on axis 0."""
    qmax = (1 << (bits - 1)) - 1
    with torch.no_grad():
        scale, zero_point = choose_qparams(weight.detach(), axis=0, qmin=-qmax, qmax=qmax, symmetric=True)
    return scale, zero_point, qmax


def fake_quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """The weight as the int8 model will hold it, differentiable (STE)."""
    scale, zero_point, qmax = weight_qparams(weight, bits)
    return fake_quantize(weight, scale, zero_point, 0, -qmax, qmax)


class GlobalPoolFakeQuantize(nn.Module):
    """Global average pooling as int8 runs it: the mean of the input's uint8
    codes rounded once (half to even) onto the input's own grid (the range
    of ``source``, the fake-quant before it), so the pooled tensor needs no
    range of its own and convert keeps the pool int8. Exact: the code sum is
    recovered as an integer before the one rounding. Gradient: the pool's.
    """

    def __init__(self, source: ActivationFakeQuantize):
        super().__init__()
        object.__setattr__(self, "_source", source)  # not a submodule: the source lives where it was inserted

    @property
    def observed(self) -> bool:
        return self._source.observed

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._source.qparams()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean((-2, -1), keepdim=True)
        if not self._source.observed:
            return pooled
        scale, zero_point = (t.detach() for t in self.qparams())
        n = x.shape[-2] * x.shape[-1]
        code_sum = torch.round(pooled.detach() * n / scale) + n * zero_point  # exact integers
        exact = (torch.round(code_sum / n) - zero_point) * scale
        return pooled + (exact - pooled).detach()


class FixedFakeQuantize(nn.Module):
    """A learned activation range, frozen for convert: static quantization
    quantizes this tensor with exactly these qparams instead of calibrating."""

    def __init__(self, scale: torch.Tensor, zero_point: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().float().reshape(()))
        self.register_buffer("zero_point", zero_point.detach().round().to(torch.int32).reshape(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.qext.fake_quantize(x, self.scale, self.zero_point, None, 0, 255)
