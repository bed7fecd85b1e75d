"""Quantization-aware training: train with int8 simulated, convert to int8.

    qat_model = qext.qat.prepare(model)              # nn.Module, torch.fx-traceable
    train(qat_model)                                 # your loop; observers follow the data
    qext.qat.freeze_observers(qat_model)             # optional: fix the ranges
    int8 = qext.qat.convert(qat_model, example_inputs=x[:1])

The fake-quant op (``qext.fake_quantize``) rounds exactly like the int8
kernels and convert goes through the same C++ path as static quantization,
so the int8 model computes what the QAT model computes in eval mode.
"""

from .config import QatConfig
from .convert import convert, freeze_batch_norm, freeze_observers
from .prepare import prepare

__all__ = ["QatConfig", "convert", "freeze_batch_norm", "freeze_observers", "prepare"]
