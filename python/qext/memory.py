"""The memory qext's static int8 ops keep for reuse.

qext's static int8 ops keep the blocks of the tensors they made (64 KB to
32 MB each) when those are freed, and hand them out again. A model loaded in a fresh
process and run again and again then takes no new pages from the system:
without it, glibc returned the blocks between calls, and the first touch of
each page faulted (a third of a loaded MobileNetV2's time). At most
``QEXT_POOL_MB`` megabytes (environment variable, read once; default 256,
``0`` turns pooling off) are held while free.
"""

from __future__ import annotations

from . import _C


def memory_pool_bytes() -> int:
    """Bytes held now in free blocks, ready for the next tensors of their size."""
    return _C.memory_pool_bytes()


def release_memory_pool() -> None:
    """Return every free block to the system (tensors still alive are not touched;
    their blocks come back to the pool when they are freed)."""
    _C.release_memory_pool()
