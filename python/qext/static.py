"""Static (post-training) quantization: fold, observe, calibrate, convert."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import torch

from . import _C
from .config import HistogramMethod, Observer, enum_option
from .model_io import to_script_module


@dataclass
class StaticConfig:
    """Options of static quantization (mirrors ``qext::StaticConfig``).

    Activations become asymmetric uint8 per tensor with ranges from calibration;
    weights symmetric int8 per output channel.

    Attributes:
        exclude: layer names kept in float (wildcards), e.g. ``["fc"]``; adds are
            named ``add@0``, ``add@1``, ... in graph order.
        observer: ``"min_max"`` (default), ``"moving_average"`` or ``"histogram"``
            (or the :class:`qext.Observer` member of that name).
        histogram_method: ``"percentile"``, ``"entropy"`` or ``"mse"`` (or the
            :class:`qext.HistogramMethod` member).
        percentile: share of values kept by the percentile method, in %.
        fold_batch_norm: fold eval-mode BatchNorm into the conv/linear before it,
            and a constant per-channel scale of its output (a layer scale:
            ``gamma * linear(x)``, ConvNeXt's ``layer_scale * linear(x).permute(0, 3, 1, 2)``).
        weight_bits: weight precision, 2..8 (default 8): symmetric per-channel
            values in ``[-(2**(b-1) - 1), 2**(b-1) - 1]``, stored and run as int8.
            Fewer bits lose accuracy; :mod:`qext.qat` can train it back. At 7
            bits or fewer, AVX2 CPUs without VNNI run conv / linear GEMMs with
            an exact ``vpmaddubsw`` kernel, about 1.3x faster than at 8 bits.
        activation_bits: 8 (default: calibrated ranges onto [0, 255]) or 7
            (onto [0, 127], torch.ao's x86 ``reduce_range``; stored as uint8,
            so values past the calibrated range keep headroom). With
            ``weight_bits`` <= 7 too, AVX2 CPUs without VNNI sum two k groups
            in int16 before widening in conv / linear: exact, and about 1.2x
            faster again, for one bit of activation precision.
        check_finite: int8 cannot hold NaN or Inf. When True (default) the
            quantized model raises ``RuntimeError`` if one reaches a float ->
            int8 boundary (the model input, or the output of a layer kept
            float); when False such values clamp to the calibrated range and
            the output is finite. (Dynamic quantization lets them propagate
            to the output, as float does.)
        equalize: cross-layer equalization at prepare: where a conv/linear
            feeds another through a ReLU or nothing (depthwise included), output
            channel c of the first is divided and input channel c of the second
            multiplied by sqrt(r1_c / r2_c), the ratio of their weight ranges.
            The float model computes the same; per-channel weight and
            activation ranges even out (depthwise nets, low-bit weights). Pairs
            joined by ReLU6/hardtanh are left alone. The report's metadata
            counts the pairs (``equalized_pairs``).
        bias_correction: calibration also records each conv/linear input's
            per-channel mean E[x], and convert subtracts (Wq - W) E[x] from the
            bias: the mean output shift that rounding the weights causes
            (largest with few weights per output: depthwise, low bits).
    """

    exclude: list[str] = field(default_factory=list)
    observer: Union[Observer, Literal["min_max", "moving_average", "histogram"]] = "min_max"
    histogram_method: Union[HistogramMethod, Literal["percentile", "entropy", "mse"]] = "percentile"
    percentile: float = 99.99
    fold_batch_norm: bool = True
    weight_bits: int = 8
    activation_bits: int = 8
    check_finite: bool = True
    equalize: bool = False
    bias_correction: bool = False

    def _to_cpp(self) -> "_C.StaticConfig":
        if isinstance(self.exclude, str) or not all(isinstance(p, str) for p in self.exclude):
            raise TypeError(f"StaticConfig.exclude must be a list of strings; got {self.exclude!r}")
        cfg = _C.StaticConfig()
        cfg.exclude = list(self.exclude)
        cfg.observer = enum_option("StaticConfig", "observer", self.observer, Observer)
        cfg.histogram_method = enum_option("StaticConfig", "histogram_method", self.histogram_method, HistogramMethod)
        cfg.percentile = float(self.percentile)
        cfg.fold_batch_norm = bool(self.fold_batch_norm)
        if isinstance(self.weight_bits, bool) or not isinstance(self.weight_bits, int) or not 2 <= self.weight_bits <= 8:
            raise ValueError(f"StaticConfig.weight_bits must be an integer in [2, 8]; got {self.weight_bits!r}")
        cfg.weight_bits = self.weight_bits
        if isinstance(self.activation_bits, bool) or self.activation_bits not in (8, 7):
            raise ValueError(f"StaticConfig.activation_bits must be 8 or 7; got {self.activation_bits!r}")
        cfg.activation_bits = self.activation_bits
        cfg.check_finite = bool(self.check_finite)
        cfg.equalize = bool(self.equalize)
        cfg.bias_correction = bool(self.bias_correction)
        return cfg


def prepare_static(model: Any, config: StaticConfig | None = None, *, example_inputs: Any = None) -> torch.jit.ScriptModule:
    """A copy of ``model`` with BatchNorm folded and observers on every tensor that
    will become int8. Run it on sample inputs (:func:`calibrate`), then
    :func:`convert`. ``model`` is not changed."""
    config = StaticConfig() if config is None else config
    if not isinstance(config, StaticConfig):
        raise TypeError(f"prepare_static: config must be a qext.StaticConfig; got {type(config).__name__}")
    cpp_config = config._to_cpp()
    script = to_script_module(model, example_inputs, who="qext.prepare_static")
    return torch.jit._recursive.wrap_cpp_module(_C.prepare_static(script._c, cpp_config))


def _as_batch(item: Any, index: int) -> list[torch.Tensor]:
    batch = list(item) if isinstance(item, (tuple, list)) else [item]
    for t in batch:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"calibrate: item {index} holds a {type(t).__name__}; items must be a tensor or a tuple of tensors")
    return batch


def calibrate(prepared: torch.jit.ScriptModule, data: Iterable[Any]) -> int:
    """Run calibration inputs through a module from :func:`prepare_static`.

    ``data``: any iterable of model inputs, each a tensor or a tuple of tensors
    (for a DataLoader of ``(x, y)`` pairs pass ``(x for x, _ in loader)``). A
    progress count is shown on a terminal. Returns the number of batches.
    Raises ``ValueError`` for empty data or a batch the model cannot run, and
    for NaN/Inf values.
    """
    return _feed(_calibrator(prepared, "calibrate"), data).batches


def _calibrator(prepared: torch.jit.ScriptModule, who: str) -> "_C.Calibrator":
    if not isinstance(prepared, torch.jit.ScriptModule):
        raise TypeError(f"{who}: expected the ScriptModule returned by qext.prepare_static")
    return _C.Calibrator(prepared._c)


def _feed(calibrator: "_C.Calibrator", data: Iterable[Any]) -> "_C.Calibrator":
    """Streams ``data`` into the C++ calibrator, a batch at a time (the
    iteration, and the progress line on a terminal, are all Python does)."""
    show = sys.stderr.isatty()
    for index, item in enumerate(data):
        calibrator.add(_as_batch(item, index))
        if show:
            print(f"\rqext: calibrating, batch {index + 1}", end="", file=sys.stderr, flush=True)
    if show and calibrator.batches:
        print(file=sys.stderr)
    if calibrator.batches == 0:
        raise ValueError("qext.calibrate: the calibration data is empty; pass at least one input batch")
    return calibrator


def convert(prepared: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """The int8 module from a calibrated :func:`prepare_static` module: conv2d,
    linear and add (+ ReLU) run as qext int8 ops with int8 tensors flowing
    between them; everything else stays float. ``qext.report`` tells which."""
    if not isinstance(prepared, torch.jit.ScriptModule):
        raise TypeError("convert: expected the ScriptModule returned by qext.prepare_static")
    return torch.jit._recursive.wrap_cpp_module(_C.convert(prepared._c))


def quantize_static(model: Any, calibration_data: Iterable[Any], config: StaticConfig | None = None, *,
                    example_inputs: Any = None) -> torch.jit.ScriptModule:
    """prepare_static + calibrate + convert in one call; ``model`` is not changed.
    The report holds each int8 layer's SQNR, measured on the first calibration
    batches (up to 16 batches and 32 samples)."""
    prepared = prepare_static(model, config, example_inputs=example_inputs)
    calibrator = _feed(_calibrator(prepared, "quantize_static"), calibration_data)
    return torch.jit._recursive.wrap_cpp_module(calibrator.convert())


def measure_sqnr(prepared: torch.jit.ScriptModule, quantized: torch.jit.ScriptModule, data: Iterable[Any]) -> None:
    """Store in ``quantized``'s report each int8 layer's SQNR (dB): its output
    vs the float model's (``prepared`` with observers ignored) over ``data``
    (inputs as for :func:`calibrate`). :func:`quantize_static` does this on
    (up to 16 of) its calibration batches."""
    batches = [_as_batch(item, i) for i, item in enumerate(data)]
    _C.measure_sqnr(prepared._c, quantized._c, batches)


def quantize_static_accuracy_aware(model: Any, calibration_data: Iterable[Any], metric: Any, max_drop: float,
                                   config: StaticConfig | None = None, *, example_inputs: Any = None,
                                   max_float_layers: int | None = None) -> torch.jit.ScriptModule:
    """:func:`quantize_static` within an accuracy budget.

    ``metric(module) -> float`` scores a model, higher is better (accuracy on a
    held-out set, or minus an error against the float outputs). While the int8
    model scores more than ``max_drop`` below the float one, the int8 layer
    with the lowest SQNR (the most sensitive, by the report) is kept float and
    the model converted again; calibration runs once. Stops at
    ``max_float_layers`` (default: no limit) or when no int8 layer is left.
    The report names the layers kept float (excluded by their own name).
    """
    if not callable(metric):
        raise TypeError("quantize_static_accuracy_aware: metric must be a callable taking a module and returning a float")
    if not isinstance(max_drop, (int, float)) or isinstance(max_drop, bool) or not max_drop >= 0:
        raise ValueError(f"quantize_static_accuracy_aware: max_drop must be a number >= 0; got {max_drop!r}")
    if max_float_layers is not None and (isinstance(max_float_layers, bool) or not isinstance(max_float_layers, int)
                                         or max_float_layers < 0):
        raise ValueError(f"quantize_static_accuracy_aware: max_float_layers must be an int >= 0 or None; "
                         f"got {max_float_layers!r}")
    float_model = to_script_module(model, example_inputs, who="qext.quantize_static_accuracy_aware")
    prepared = prepare_static(float_model, config)
    calibrator = _feed(_calibrator(prepared, "quantize_static_accuracy_aware"), calibration_data)
    float_score = float(metric(float_model))

    def score(module: torch._C.ScriptModule) -> float:
        return float(metric(torch.jit._recursive.wrap_cpp_module(module)))

    return torch.jit._recursive.wrap_cpp_module(calibrator.convert_within(
        score, float_score, float(max_drop), -1 if max_float_layers is None else max_float_layers))
