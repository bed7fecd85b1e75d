"""qext.linalg (issue 14): quantized tensors, exact int32 products on every
kernel path, float results within stated bounds, int4 storage, transpose,
element-wise ops, top-k search; the CUDA path when a GPU is present."""

import pytest
import torch

import qext
from qext import linalg as ql

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to torch)")

RANGES = {"uint8": (0, 255), "int8": (-128, 127), "int4": (-8, 7)}
SHAPES = [(1, 1, 1), (3, 7, 5), (17, 33, 65), (64, 257, 31), (5, 1030, 2)]


def _reference(a: ql.QTensor, b: ql.QTensor) -> torch.Tensor:
    """sum_k (a - za)(b - zb) in int64 from the integer values."""
    za = a.zero_point.long().reshape(-1, 1) if a.axis is not None else a.zero_point.long()
    zb = b.zero_point.long() if b.axis is not None else b.zero_point.long()
    return (a.int_repr().long() - za) @ (b.int_repr().long() - zb)


def _sqnr(ref, got):
    return 10 * torch.log10(ref.pow(2).mean() / (ref - got).pow(2).mean()).item()


def _operand(dtype, shape, axis, gen, extreme_zp=False):
    """A QTensor with random integer values (ends of the range included) and
    random or extreme zero points."""
    lo, hi = RANGES[dtype]
    values = torch.randint(lo, hi + 1, shape, generator=gen, dtype=torch.int32)
    values.view(-1)[0] = hi
    values.view(-1)[-1] = lo
    n = 1 if axis is None else shape[axis]
    zp = torch.randint(lo, hi + 1, (n,), generator=gen, dtype=torch.int32)
    if extreme_zp:
        zp.fill_(hi)
    scale = torch.rand(n, generator=gen) * 0.1 + 0.01
    if axis is None:
        zp, scale = zp.reshape(()), scale.reshape(())
    # Quantizing the dequantized values with the same parameters gives them back.
    shaped = lambda p: p if axis is None else p.reshape([-1 if d == axis else 1 for d in range(len(shape))])
    x = (values.float() - shaped(zp).float()) * shaped(scale)
    q = ql.quantize(x, dtype, axis, scale=scale, zero_point=zp)
    assert torch.equal(q.int_repr().int(), values)
    return q


@pytest.mark.parametrize("isa", qext.supported_isas())
@pytest.mark.parametrize("adt,bdt", [("uint8", "int8"), ("int8", "uint8"), ("uint8", "uint8"), ("int8", "int4"),
                                     ("int4", "int4")])
def test_matmul_int32_is_exact_on_every_path(isa, adt, bdt):
    gen = torch.Generator().manual_seed(11)
    previous = qext.active_isa()
    qext.set_isa(isa)
    try:
        for m, k, n in SHAPES:
            for per_axis, extreme in ((False, True), (True, False)):
                a = _operand(adt, (m, k), 0 if per_axis else None, gen, extreme)
                b = _operand(bdt, (k, n), 1 if per_axis else None, gen, extreme)
                got = ql.matmul_int32(a, b)
                assert got.dtype == torch.int32
                assert torch.equal(got.long(), _reference(a, b)), (m, k, n, per_axis)
    finally:
        qext.set_isa(previous)


def test_batched_products_and_torchscript():
    gen = torch.Generator().manual_seed(12)
    a = ql.quantize(torch.randn(2, 3, 8, 40, generator=gen), "uint8")
    for b in (ql.quantize(torch.randn(40, 6, generator=gen), "int8", 1, True),
              ql.quantize(torch.randn(2, 3, 40, 6, generator=gen), "int8")):
        got = ql.matmul(a, b)
        assert got.shape == (2, 3, 8, 6)
        assert _sqnr(a.dequantize() @ b.dequantize(), got) > 100  # the same product, up to float rounding

    @torch.jit.script
    def scripted(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        sx, zx = torch.ops.qext.choose_qparams(x)
        sw, zw = torch.ops.qext.choose_qparams(w, 1, -127, 127, True)
        qx = torch.ops.qext.quantize(x, sx, zx)
        qw = torch.ops.qext.quantize(w, sw, zw, 1, -127, 127)
        return torch.ops.qext.qmatmul(qx, sx, zx, qw, sw, zw)

    x, w = torch.randn(5, 40, generator=gen), torch.randn(40, 6, generator=gen)
    assert _sqnr(x @ w, scripted(x, w)) > 30


def test_quantized_products_track_the_float_ones():
    """Error bounds for random Gaussian data (K = 256): int8 activations x
    per-column int8 weights >= 35 dB SQNR, int4 weights >= 15 dB."""
    gen = torch.Generator().manual_seed(13)
    x, w = torch.randn(64, 256, generator=gen), torch.randn(256, 96, generator=gen)
    want = x @ w
    a = ql.quantize(x, "uint8")
    assert _sqnr(want, ql.matmul(a, ql.quantize(w, "int8", 1, True))) > 35
    assert _sqnr(want, ql.matmul(a, ql.quantize(w, "int4", 1, True))) > 15
    bias = torch.randn(96, generator=gen)
    assert torch.allclose(ql.matmul(a, ql.quantize(w, "int8", 1, True), bias),
                          ql.matmul(a, ql.quantize(w, "int8", 1, True)) + bias)


def test_quantize_round_trip_and_int4_storage():
    gen = torch.Generator().manual_seed(14)
    x = torch.randn(6, 11, generator=gen)
    for dtype in ("uint8", "int8", "int4"):
        for axis in (None, 0, 1):
            q = ql.quantize(x, dtype, axis)
            assert q.shape == [6, 11] and q.dtype == dtype and q.axis == axis
            scale = q.scale if axis is None else q.scale.reshape([-1 if d == axis else 1 for d in range(2)])
            assert ((q.dequantize() - x).abs() <= scale / 2 + 1e-6).all()  # no value clipped: range from x
    q4 = ql.quantize(x, "int4")
    assert q4.data.dtype == torch.uint8 and q4.data.shape == (6, 6)  # 11 values in 6 bytes
    values = torch.randint(-8, 8, (4, 9), dtype=torch.int8, generator=gen)
    assert torch.equal(torch.ops.qext.unpack_int4(torch.ops.qext.pack_int4(values), 9), values)
    with pytest.raises(RuntimeError, match=r"values must lie in \[-8, 7\]"):
        torch.ops.qext.pack_int4(torch.tensor([[9]], dtype=torch.int8))
    with pytest.raises(ValueError, match="dtype must be one of"):
        ql.quantize(x, "int3")
    with pytest.raises(ValueError, match="NaN or Inf"):
        ql.quantize(torch.tensor([1.0, float("nan")]))


def test_transpose_add_mul():
    gen = torch.Generator().manual_seed(15)
    x, y = torch.randn(4, 7, generator=gen), torch.randn(4, 7, generator=gen)
    for dtype in ("int8", "int4"):
        q = ql.quantize(x, dtype, axis=1)
        t = q.t()
        assert t.shape == [7, 4] and t.axis == 0
        assert torch.equal(t.int_repr(), q.int_repr().t())
        assert torch.equal(t.dequantize(), q.dequantize().t())
    qx, qy = ql.quantize(x, "uint8"), ql.quantize(y, "int8", 0)
    assert torch.equal(qx + qy, qx.dequantize() + qy.dequantize())
    assert torch.equal(ql.mul(qx, qy), qx.dequantize() * qy.dequantize())
    assert torch.allclose(qx + qy, x + y, atol=0.05)


def test_empty_operands_give_empty_or_zero_products():
    for (m, k, n) in ((0, 4, 3), (2, 0, 3), (2, 4, 0)):
        a = ql.quantize(torch.randn(m, k), "uint8", scale=torch.tensor(0.1), zero_point=torch.tensor(3))
        b = ql.quantize(torch.randn(k, n), "int8", scale=torch.tensor(0.1), zero_point=torch.tensor(-2))
        got = ql.matmul_int32(a, b)
        assert got.shape == (m, n) and not got.any()
    assert ql.matmul_int32(ql.quantize(torch.randn(0, 2, 4), "uint8", scale=torch.tensor(0.1),
                                       zero_point=torch.tensor(3)),
                           ql.quantize(torch.randn(4, 3), "int8", 1, True)).shape == (0, 2, 3)


def test_matmul_refuses_what_it_cannot_do():
    a = ql.quantize(torch.randn(3, 8), "uint8")
    with pytest.raises(ValueError, match="cannot be factored"):
        ql.matmul(a, ql.quantize(torch.randn(8, 4), "int8", axis=0))  # scale along K
    with pytest.raises(ValueError, match="inner dimensions differ"):
        ql.matmul(a, ql.quantize(torch.randn(5, 4), "int8"))
    k = 33026
    with pytest.raises(ValueError, match="longest reduction"):
        ql.matmul_int32(ql.quantize(torch.randn(1, k), "uint8"), ql.quantize(torch.randn(k, 1), "int8"))


def test_topk_dot_finds_the_float_neighbours():
    """Retrieval over 2000 random 64-d keys: the int8 scores' top 10 holds
    >= 90 % of the float top 10 (and the planted duplicate of each query
    comes first)."""
    gen = torch.Generator().manual_seed(16)
    keys = torch.nn.functional.normalize(torch.randn(2000, 64, generator=gen), dim=1)
    planted = torch.arange(0, 2000, 100)
    queries = keys[planted] + 0.01 * torch.randn(20, 64, generator=gen)
    qk = ql.quantize(keys, "int8", axis=0, symmetric=True)
    qq = ql.quantize(queries, "uint8", axis=0)
    scores, idx = ql.topk_dot(qq, qk, 10)
    assert scores.shape == (20, 10) and idx.dtype == torch.int64
    assert torch.equal(idx[:, 0], planted)
    want = (queries @ keys.t()).topk(10).indices
    recall = sum(len(set(i.tolist()) & set(j.tolist())) for i, j in zip(idx, want)) / want.numel()
    assert recall >= 0.9
    assert torch.equal(scores, ql.matmul(qq, qk.t()).topk(10).values)
    with pytest.raises(ValueError, match="k = 3000"):
        ql.topk_dot(qq, qk, 3000)


@CUDA
def test_cuda_path_gives_the_cpu_integers():
    gen = torch.Generator().manual_seed(17)
    for adt, bdt in (("uint8", "int8"), ("int8", "uint8"), ("int4", "int8")):
        for m, k, n in SHAPES:
            a = _operand(adt, (m, k), 0, gen)
            b = _operand(bdt, (k, n), None, gen, extreme_zp=True)
            x_cpu = a.dequantize()
            a_gpu = ql.quantize(x_cpu.cuda(), adt, 0, scale=a.scale.cuda(), zero_point=a.zero_point.cuda())
            b_gpu = ql.quantize(b.dequantize().cuda(), bdt, scale=b.scale.cuda(), zero_point=b.zero_point.cuda())
            assert torch.equal(a_gpu.int_repr().cpu(), a.int_repr())
            got = ql.matmul_int32(a_gpu, b_gpu)
            assert got.is_cuda and torch.equal(got.cpu(), ql.matmul_int32(a, b)), (adt, bdt, m, k, n)
    x = torch.randn(300, 129, generator=gen) * 3
    for axis in (None, 0, 1):
        for dtype in ("uint8", "int8"):
            cpu, gpu = ql.quantize(x, dtype, axis), ql.quantize(x.cuda(), dtype, axis)
            assert torch.equal(gpu.scale.cpu(), cpu.scale) and torch.equal(gpu.zero_point.cpu(), cpu.zero_point)
            assert torch.equal(gpu.data.cpu(), cpu.data)
            assert torch.equal(gpu.dequantize().cpu(), cpu.dequantize())


@CUDA
def test_cuda_topk_and_large_products():
    gen = torch.Generator().manual_seed(18)
    x, w = torch.randn(1024, 4096, generator=gen), torch.randn(4096, 1024, generator=gen)
    a, b = ql.quantize(x, "int8", 0), ql.quantize(w, "int8", 1, True)
    ag, bg = ql.quantize(x.cuda(), "int8", 0), ql.quantize(w.cuda(), "int8", 1, True)
    assert torch.equal(ql.matmul_int32(ag, bg).cpu(), ql.matmul_int32(a, b))
    assert torch.allclose(ql.matmul(ag, bg).cpu(), ql.matmul(a, b), rtol=1e-6, atol=1e-4)
    keys = ql.quantize(torch.randn(5000, 64, generator=gen), "int8", 0, True)
    queries = ql.quantize(torch.randn(8, 64, generator=gen), "uint8", 0)
    keys_g = ql.quantize(keys.dequantize().cuda(), "int8", 0, scale=keys.scale.cuda(), zero_point=keys.zero_point.cuda())
    q_g = ql.quantize(queries.dequantize().cuda(), "uint8", 0, scale=queries.scale.cuda(),
                      zero_point=queries.zero_point.cuda())
    _, idx = ql.topk_dot(queries, keys, 5)
    _, idx_g = ql.topk_dot(q_g, keys_g, 5)
    assert torch.equal(idx_g.cpu(), idx)
