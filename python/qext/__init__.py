"""qext: int8 quantization for PyTorch models on CPUs.

Importing qext loads its C++ library, which registers the ``torch.ops.qext``
operators and the ``torch.classes.qext`` classes; do it before loading a model
that qext quantized.

    import qext
    q = qext.quantize_dynamic(model)          # nn.Module, ScriptModule or path
    print(qext.report(q))
    qext.save(q, "model_int8.pt")
"""

import os as _os

import torch  # noqa: F401  (libqext links libtorch; load torch's Python side first)

from . import _C
from . import fake_ops  # noqa: F401  (shape-only kernels for FakeTensorMode / torch.compile)
from .benchmark import BenchmarkResult, BenchmarkRow, benchmark
from .config import DynamicConfig, Granularity, HistogramMethod, Observer
from .dynamic import quantize_dynamic
from .isa import active_isa, kernels_in_use, set_isa, supported_isas
from .memory import memory_pool_bytes, release_memory_pool
from .linear import linear_dynamic, linear_dynamic_group, linear_lowbit, quantize_linear_weight, quantize_linear_weight_lowbit
from .model_io import load, save
from .numerics import choose_qparams, dequantize, fake_quantize, quantize
from .observers import make_observer
from .static_ops import add_int8, conv2d_int8, fold_batch_norm, linear_int8, quantize_conv_weight
from .report import LayerReport, QuantizationReport, report
from .static import (StaticConfig, calibrate, convert, measure_sqnr, prepare_static, quantize_static,
                     quantize_static_accuracy_aware)
from . import qat
from . import linalg

__version__ = _C.version()

#: For C++ programs: ``find_package(qext)`` finds qext's CMake package (the
#: ``qext::qext`` target, libqext next to ``_C``) with this on CMAKE_PREFIX_PATH.
cmake_prefix_path = _os.path.join(_os.path.dirname(_C.__file__), "share", "cmake")

# Resolve the kernel path and the memory pool's limit now, so a bad QEXT_ISA or
# QEXT_POOL_MB fails at import with its reason.
_C.active_isa()
_C.memory_pool_bytes()

__all__ = [
    "__version__",
    "cmake_prefix_path",
    "BenchmarkResult",
    "BenchmarkRow",
    "DynamicConfig",
    "Granularity",
    "HistogramMethod",
    "LayerReport",
    "Observer",
    "QuantizationReport",
    "StaticConfig",
    "active_isa",
    "benchmark",
    "kernels_in_use",
    "linalg",
    "calibrate",
    "convert",
    "add_int8",
    "choose_qparams",
    "conv2d_int8",
    "dequantize",
    "fake_quantize",
    "fold_batch_norm",
    "linear_dynamic",
    "linear_dynamic_group",
    "linear_lowbit",
    "linear_int8",
    "load",
    "prepare_static",
    "qat",
    "make_observer",
    "measure_sqnr",
    "memory_pool_bytes",
    "quantize",
    "quantize_conv_weight",
    "quantize_dynamic",
    "quantize_static",
    "quantize_static_accuracy_aware",
    "quantize_linear_weight",
    "quantize_linear_weight_lowbit",
    "release_memory_pool",
    "report",
    "save",
    "set_isa",
    "supported_isas",
]
