"""Quantized tensors and the linear algebra on them (C++: ``qext::linalg``).

A :class:`QTensor` holds integer data (``int8``, ``uint8`` or ``int4``, two
values per byte) with a float scale and an integer zero point per tensor or
per slice along one axis: ``real = scale * (q - zero_point)``.

    a = qext.linalg.quantize(x, "uint8")                      # per tensor
    b = qext.linalg.quantize(w.t(), "int8", axis=1, symmetric=True)
    acc = qext.linalg.matmul_int32(a, b)                      # exact int32
    y = a @ b                                                 # float

Products accumulate exactly in int32 (``sum_k (a - za) * (b - zb)``) with
qext's kernels on CPU tensors and cuBLASLt's int8 GEMM (``torch._int_mm``) on
CUDA tensors -- the same integers on both. Element-wise ``+`` and ``*``
dequantize and work in float; quantize the result again with :func:`quantize`
to stay in integers. The operations are ``torch.ops.qext`` ops
(``qmatmul_int32``, ``qmatmul``, ``quantize``, ``dequantize``,
``choose_qparams``, ``pack_int4``, ``unpack_int4``), usable from TorchScript.
"""

from typing import Optional, Tuple

import torch

from . import _C

_L = _C.linalg

#: Integer data with its scale and zero point (see the module docstring).
#: Attributes: ``data``, ``scale``, ``zero_point``, ``axis``, ``dtype``,
#: ``shape``, ``device``; methods ``int_repr()``, ``dequantize()``,
#: ``transpose(d0, d1)``, ``t()`` and the operators ``@``, ``+``, ``*``.
QTensor = _L.QTensor

_DTYPES = {"int8": _L.QDtype.int8, "uint8": _L.QDtype.uint8, "int4": _L.QDtype.int4}


def _qdtype(dtype: str):
    if dtype not in _DTYPES:
        raise ValueError(f"qext.linalg: dtype must be one of {sorted(_DTYPES)}; got {dtype!r}")
    return _DTYPES[dtype]


def quantize(x: torch.Tensor, dtype: str = "int8", axis: Optional[int] = None, symmetric: bool = False,
             *, scale: Optional[torch.Tensor] = None, zero_point: Optional[torch.Tensor] = None) -> QTensor:
    """Quantizes float32 ``x`` to a :class:`QTensor`.

    Without ``scale``/``zero_point`` they come from ``x``'s range (per tensor,
    or per slice along ``axis``) by qext's rule; ``symmetric`` centres the zero
    point. Rounding is half-to-even, values clamp to the dtype's range.
    """
    qd = _qdtype(dtype)
    if (scale is None) != (zero_point is None):
        raise ValueError("qext.linalg.quantize: give both scale and zero_point, or neither")
    if scale is None:
        return _L.quantize(x, qd, axis, symmetric)
    return _L.quantize_with(x, scale, zero_point, qd, axis)


def dequantize(q: QTensor) -> torch.Tensor:
    """``scale * (q - zero_point)`` as float32."""
    return _L.dequantize(q)


def matmul_int32(a: QTensor, b: QTensor) -> torch.Tensor:
    """Exact ``sum_k (a - za) * (b - zb)`` as int32.

    ``a`` is ``[..., M, K]`` (per tensor or per row, ``axis=-2``), ``b`` is
    ``[K, N]`` or ``[..., K, N]`` (per tensor or per column, ``axis=-1``);
    K may be at most 33025, where the int32 result is always exact.
    """
    return _L.matmul_int32(a, b)


def matmul(a: QTensor, b: QTensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The product as float32: ``float(acc) * a_scale * b_scale (+ bias)``."""
    return _L.matmul(a, b, bias)


def add(a: QTensor, b: QTensor) -> torch.Tensor:
    """``dequantize(a) + dequantize(b)`` (broadcasting), float32."""
    return _L.add(a, b)


def mul(a: QTensor, b: QTensor) -> torch.Tensor:
    """``dequantize(a) * dequantize(b)`` (broadcasting), float32."""
    return _L.mul(a, b)


def transpose(q: QTensor, dim0: int, dim1: int) -> QTensor:
    """Swaps two dimensions; a per-axis tensor's axis follows its dimension."""
    return _L.transpose(q, dim0, dim1)


def topk_dot(queries: QTensor, keys: QTensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` keys with the largest dot product with each query.

    ``queries`` is ``[Q, D]``, ``keys`` ``[N, D]`` (per tensor or per key,
    ``axis=0``). Returns ``(scores [Q, k], indices [Q, k])``, best first;
    scores are the exact integer products, scaled.
    """
    return _L.topk_dot(queries, keys, k)


#: The result of :func:`factorize`: ``left`` and ``right`` (:class:`QTensor`),
#: ``rank``, ``energy``, ``relative_error``, ``bytes`` and ``float_bytes``.
Factorization = _L.Factorization


def factorize(matrix: torch.Tensor, rank: Optional[int] = None, energy: Optional[float] = None,
              dtype: str = "int8") -> Factorization:
    """Factors a float32 matrix ``[M, N]`` into quantized low-rank factors:
    ``matrix ~= left @ right``.

    The truncated SVD with the square roots of the kept singular values in
    both factors; ``left`` ``[M, r]`` is quantized per row and ``right``
    ``[r, N]`` per column (symmetric ``int8`` or ``int4``), the forms
    :func:`matmul` multiplies exactly. Give ``rank``, or ``energy`` in
    ``(0, 1]`` for the smallest rank keeping that share of the squared
    singular values. The result reports the rank, the energy kept, the
    relative Frobenius error of ``left @ right`` (as qext computes it) and the
    stored bytes against the float matrix's. A ratings matrix, or a layer's
    weight (``DynamicConfig(low_rank=...)`` does that for every Linear).
    """
    if (rank is None) == (energy is None):
        raise ValueError("qext.linalg.factorize: give exactly one of rank and energy")
    return _L.factorize(matrix, 0 if rank is None else rank, 0.0 if energy is None else energy, _qdtype(dtype))


__all__ = ["QTensor", "Factorization", "quantize", "dequantize", "matmul_int32", "matmul", "add", "mul",
           "transpose", "topk_dot", "factorize"]
