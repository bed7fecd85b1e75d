"""Which int8 kernel path runs: ``ref`` (scalar, the specification), ``avx2``,
``avx512_vnni`` or ``amx`` (Intel AMX tiles for the GEMM, the AVX-512 VNNI
kernels for the rest). Every path gives bit-identical results."""

from __future__ import annotations

from . import _C


def active_isa() -> str:
    """The kernel path new weights are packed for and activations quantized with.

    It is the best path this CPU supports unless the ``QEXT_ISA`` environment
    variable (read once, at import) or :func:`set_isa` chose another.
    """
    return _C.active_isa()


def set_isa(name: str) -> None:
    """Force a kernel path for the rest of the process.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` when this CPU
    cannot run the path. Weights packed before the call keep their path.
    """
    _C.set_isa(name)


def supported_isas() -> list[str]:
    """The kernel paths this CPU can run, ``"ref"`` first."""
    return list(_C.supported_isas())


def kernels_in_use() -> dict[str, str]:
    """What the active path runs per kernel family (``gemm``, ``depthwise``,
    ``grouped``, ``lowbit_gemm``, ``quantize``, ``elementwise``, ``lut``,
    ``pooling``, ``attention``): each path has one kernel table, chosen once."""
    return dict(_C.kernels_in_use())
