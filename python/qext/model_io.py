"""Getting a TorchScript module from what users hold, and saving/loading."""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from typing import Any

import torch

from . import _C


@contextmanager
def _torchscript_quietly():
    # TorchScript is deprecated in torch 2.13; qext calls it on the user's behalf.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.[a-z_]+` is deprecated", category=DeprecationWarning)
        yield


def load(path: str | os.PathLike) -> torch.jit.ScriptModule:
    """Load a TorchScript model (qext-quantized or not).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file
    that is not a readable TorchScript archive (corrupt or truncated).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"qext.load: no such file: {path!r}")
    try:
        cpp = _C.load(path)
    except RuntimeError as e:
        raise ValueError(str(e)) from None
    return torch.jit._recursive.wrap_cpp_module(cpp)


def save(module: torch.jit.ScriptModule, path: str | os.PathLike) -> None:
    """Save a ScriptModule atomically.

    The bytes go to an exclusively created temporary file beside ``path``, are
    flushed to disk and renamed into place, so readers never see a partial file
    and concurrent saves to one path each leave a whole one. A failure raises
    ``OSError`` with its errno (``FileNotFoundError`` for a missing folder,
    ``PermissionError``, ``errno.ENOSPC`` for a full disk...) and leaves neither
    a partial nor a temporary file. qext's metadata (version, config, report)
    travels inside."""
    if not isinstance(module, torch.jit.ScriptModule):
        raise TypeError(f"qext.save: expected a torch.jit.ScriptModule; got {type(module).__name__}")
    try:
        _C.save(module._c, os.fspath(path))
    except RuntimeError as e:
        raise OSError(str(e)) from None


def _as_tuple(example_inputs: Any) -> tuple:
    return example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)


def to_script_module(model: Any, example_inputs: Any = None, *, who: str = "qext") -> torch.jit.ScriptModule:
    """A ScriptModule for ``model``: loaded from a path, used as is, scripted, or
    (when scripting fails and ``example_inputs`` are given) traced in eval mode."""
    if isinstance(model, (str, os.PathLike)):
        return load(model)
    if isinstance(model, torch.jit.ScriptModule):
        return model
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{who}: expected an nn.Module, a ScriptModule or a path to a TorchScript file; got {type(model).__name__}")
    with _torchscript_quietly():
        try:
            return torch.jit.script(model)
        except Exception as script_error:  # noqa: BLE001 - any scripting failure falls back to tracing
            if example_inputs is None:
                first_line = str(script_error).strip().splitlines()[0] if str(script_error).strip() else type(script_error).__name__
                raise ValueError(
                    f"{who}: torch.jit.script failed on {type(model).__name__} ({first_line}); "
                    "pass example_inputs=... so qext can trace it instead"
                ) from script_error
        was_training = model.training
        model.eval()
        try:
            return torch.jit.trace(model, _as_tuple(example_inputs), strict=False, check_trace=False)
        except Exception as trace_error:  # noqa: BLE001
            raise ValueError(
                f"{who}: tracing {type(model).__name__} with the given example_inputs failed: "
                f"{str(trace_error).strip().splitlines()[0] if str(trace_error).strip() else type(trace_error).__name__}"
            ) from trace_error
        finally:
            model.train(was_training)

