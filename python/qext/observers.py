"""Observers for calibration (static quantization): they watch float tensors
and choose the range to quantize them with."""

from __future__ import annotations

from typing import Literal, Union

import torch

from . import _C  # noqa: F401  (registers torch.classes.qext)
from .config import HistogramMethod, Observer, enum_option


def make_observer(
    kind: Union[Observer, Literal["min_max", "moving_average", "histogram"]] = "min_max",
    *,
    method: Union[HistogramMethod, Literal["percentile", "entropy", "mse"]] = "percentile",
    percentile: float = 99.99,
    averaging_constant: float = 0.01,
    bins: int = 2048,
    axis: int | None = None,
    qmin: int = 0,
    qmax: int = 255,
    symmetric: bool = False,
):
    """A ``torch.classes.qext.Observer``.

    Kinds: ``min_max`` (running min/max), ``moving_average`` (exponential
    moving average of batch min/max, weight ``averaging_constant``) and
    ``histogram`` (range chosen by ``method``: ``percentile`` keeps
    ``percentile`` % of the values, ``entropy`` minimises the KL divergence of
    the quantized distribution, ``mse`` minimises the expected squared
    quantization error). ``axis`` makes min_max/moving_average per channel.

    Use ``obs.observe(x)`` for each batch, then ``obs.calculate_qparams()`` for
    (scale, zero_point) and ``obs.min_max()`` for the chosen range. Observers
    pickle with their state, inside saved ScriptModules too.
    """
    kind = enum_option("make_observer", "kind", kind, Observer).name
    method = enum_option("make_observer", "method", method, HistogramMethod).name
    return torch.classes.qext.Observer(kind, method, float(percentile), float(averaging_constant), bins, axis, qmin, qmax, symmetric)
