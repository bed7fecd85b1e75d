"""The int8 GEMM through the op layer: every kernel path equals an int64
reference exactly, over awkward shapes and zero points."""

import pytest
import torch

import qext


def reference(a: torch.Tensor, zp: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return ((a.long() - zp.long()[:, None]) @ w.long().T).to(torch.int32)


@pytest.mark.parametrize("m", [1, 2, 3, 7, 8, 15, 16, 17, 33, 64, 129])
@pytest.mark.parametrize("k,n", [(1, 1), (3, 5), (17, 16), (64, 31), (100, 768), (768, 5)])
def test_every_path_is_exact(m, k, n):
    g = torch.Generator().manual_seed(m * 1000 + k + n)
    a = torch.randint(0, 256, (m, k), dtype=torch.uint8, generator=g)
    w = torch.randint(-128, 128, (n, k), dtype=torch.int8, generator=g)
    for zp_value in (0, 1, 127, 128, 255):
        zp = torch.full((m,), zp_value, dtype=torch.int32)
        want = reference(a, zp, w)
        for isa in qext.supported_isas():
            got = torch.ops.qext._qgemm_int32(a, zp, w, isa)
            assert torch.equal(got, want), f"{isa} M={m} K={k} N={n} zp={zp_value}"


def test_extremes_cannot_saturate():
    a = torch.full((33, 768), 255, dtype=torch.uint8)
    for wv in (-128, 127):
        w = torch.full((31, 768), wv, dtype=torch.int8)
        zp = torch.zeros(33, dtype=torch.int32)
        for isa in qext.supported_isas():
            got = torch.ops.qext._qgemm_int32(a, zp, w, isa)
            assert (got == 255 * wv * 768).all(), isa


def test_unknown_or_unsupported_isa_is_a_clear_error():
    a = torch.zeros(1, 4, dtype=torch.uint8)
    w = torch.zeros(1, 4, dtype=torch.int8)
    with pytest.raises(ValueError, match="unknown ISA 'sse9'"):
        torch.ops.qext._qgemm_int32(a, torch.zeros(1, dtype=torch.int32), w, "sse9")
    with pytest.raises(ValueError, match="unknown ISA"):
        qext.set_isa("sse9")
