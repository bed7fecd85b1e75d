"""qext.qat.convert: the trained model -> an int8 ScriptModule through the
same C++ path as static quantization, carrying the learned ranges."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import fx, nn

from ..model_io import _as_tuple, to_script_module
from ..static import StaticConfig, calibrate
from ..static import convert as static_convert
from ..static import prepare_static
from .fake_quant import ActivationFakeQuantize, FixedFakeQuantize, GlobalPoolFakeQuantize
from .modules import QatConv2d, QatConvBn2d, QatLinear
from .prepare import FLOAT_LAYERS, PREPARED_MARK


def _qat_config(model: Any, who: str):
    config = getattr(model, PREPARED_MARK, None)
    if not isinstance(model, fx.GraphModule) or config is None:
        raise TypeError(f"{who}: expected a model from qext.qat.prepare; got {type(model).__name__}")
    return config


def _modules(model: nn.Module, kind: type) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kind)]


def freeze_observers(model: nn.Module) -> None:
    """Stop updating activation ranges: training goes on with them fixed (and,
    with ``learnable_ranges``, learns them)."""
    _qat_config(model, "qext.qat.freeze_observers")
    for _, fq in _modules(model, ActivationFakeQuantize):
        fq.freeze()


def freeze_batch_norm(model: nn.Module) -> None:
    """BatchNorm layers folded into convs use their running statistics from now on."""
    _qat_config(model, "qext.qat.freeze_batch_norm")
    for _, layer in _modules(model, QatConvBn2d):
        layer.freeze_batch_norm()


def to_float_with_ranges(model: fx.GraphModule) -> fx.GraphModule:
    """The float model convert quantizes: folded conv/linear layers, and each
    learned activation range as a FixedFakeQuantize."""
    out = copy.deepcopy(model)
    unobserved = [name for name, fq in _modules(out, ActivationFakeQuantize) if not fq.observed]
    if unobserved:
        raise ValueError(
            f"qext.qat.convert: {len(unobserved)} activation range(s) never saw data (e.g. {unobserved[0]}); "
            "run at least one training step (model.train(), forward) before converting"
        )
    for name, m in _modules(out, (QatConv2d, QatLinear, ActivationFakeQuantize, GlobalPoolFakeQuantize)):
        if isinstance(m, GlobalPoolFakeQuantize):  # the pool convert makes int8, on the input's grid
            new = nn.Sequential(nn.AdaptiveAvgPool2d(1), FixedFakeQuantize(*m.qparams()))
        elif isinstance(m, ActivationFakeQuantize):
            scale, zero_point = m.qparams()
            new = FixedFakeQuantize(scale, zero_point)
        else:
            new = m.to_float()
        parent, _, attr = name.rpartition(".")
        setattr(out.get_submodule(parent) if parent else out, attr, new)
    for mark in (PREPARED_MARK, FLOAT_LAYERS):
        if hasattr(out, mark):
            delattr(out, mark)
    out.recompile()
    return out.eval()


def convert(model: fx.GraphModule, example_inputs: Any) -> torch.jit.ScriptModule:
    """The int8 ScriptModule of a model trained after :func:`qext.qat.prepare`.

    Uses the same C++ prepare/convert as :func:`qext.quantize_static`; every
    tensor that had a fake-quant during training is quantized with the range
    learned there, and weights with the (folded) values the training forward
    fake-quantized, so the int8 model computes what the QAT model computed in
    eval mode (to float rounding). ``example_inputs`` (a tensor or tuple)
    script or trace the model and calibrate any tensor QAT did not cover.
    """
    config = _qat_config(model, "qext.qat.convert")
    if example_inputs is None:
        raise TypeError("qext.qat.convert: example_inputs are required (a tensor or a tuple of tensors)")
    float_model = to_float_with_ranges(model)
    inputs = _as_tuple(example_inputs)
    with warnings.catch_warnings():
        # torch.fx.GraphModule.__init__ annotates instance attributes; scripting
        # it always warns about that, harmlessly.
        warnings.filterwarnings("ignore", message="The TorchScript type system doesn't support instance-level annotations")
        script = to_script_module(float_model, inputs, who="qext.qat.convert")
    keep_float = list(getattr(model, FLOAT_LAYERS, []))
    prepared = prepare_static(script, StaticConfig(exclude=keep_float, weight_bits=config.weight_bits,
                                                   activation_bits=config.activation_bits))
    calibrate(prepared, [inputs])
    return static_convert(prepared)
