import os
import subprocess
import sys

import pytest
import torch

import qext


@pytest.fixture(params=qext.supported_isas())
def isa(request):
    """Runs a test once per kernel path this CPU supports, restoring the default."""
    before = qext.active_isa()
    qext.set_isa(request.param)
    yield request.param
    qext.set_isa(before)


def on_every_path(make):
    """[make() with each kernel path this CPU supports active], restoring the default."""
    before = qext.active_isa()
    try:
        results = []
        for path in qext.supported_isas():
            qext.set_isa(path)
            results.append(make())
        return results
    finally:
        qext.set_isa(before)


def sqnr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB."""
    noise = (reference - approx).double().pow(2).mean()
    return float(10 * torch.log10(reference.double().pow(2).mean() / noise))


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter (nothing imported, nothing registered)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
