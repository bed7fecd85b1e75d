"""Dynamic quantization: int8 weights, activations quantized on the fly."""

from __future__ import annotations

from typing import Any

import torch

from . import _C
from .config import DynamicConfig
from .model_io import to_script_module


def quantize_dynamic(model: Any, config: DynamicConfig | None = None, *, example_inputs: Any = None) -> torch.jit.ScriptModule:
    """Return an int8 copy of ``model``; ``model`` itself is not changed.

    Every float Linear qext can find (``nn.Linear``, ``F.linear``, and ``x @ W``
    with a constant 2-D weight, + bias) runs as ``qext::linear_dynamic``, and
    every ``nn.LSTM`` / ``nn.GRU`` (any layers and directions, no projections,
    padded rather than packed sequences) as ``qext::lstm_dynamic`` /
    ``qext::gru_dynamic``; everything else is untouched. ``qext.report(result)`` tells what happened to
    each layer.

    Args:
        model: an ``nn.Module`` (scripted, or traced with ``example_inputs`` when
            scripting fails), a ``torch.jit.ScriptModule``, or a path to a
            TorchScript file.
        config: a :class:`qext.DynamicConfig`; defaults to per-channel weights
            and per-row activations.
        example_inputs: a tensor or tuple of tensors for tracing.

    Returns:
        a ``torch.jit.ScriptModule`` in eval mode; save it with :func:`qext.save`.
    """
    config = DynamicConfig() if config is None else config
    if not isinstance(config, DynamicConfig):
        raise TypeError(f"quantize_dynamic: config must be a qext.DynamicConfig; got {type(config).__name__}")
    cpp_config = config._to_cpp()
    script = to_script_module(model, example_inputs, who="qext.quantize_dynamic")
    if example_inputs is not None:
        _check_runs(script, example_inputs)
    quantized = _C.quantize_dynamic(script._c, cpp_config)
    return torch.jit._recursive.wrap_cpp_module(quantized)


def _check_runs(script: torch.jit.ScriptModule, example_inputs: Any) -> None:
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    try:
        with torch.no_grad():
            script(*inputs)
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()
        raise ValueError(
            f"qext.quantize_dynamic: the model does not run on the given example_inputs: {first[-1] if first else type(e).__name__}"
        ) from e
