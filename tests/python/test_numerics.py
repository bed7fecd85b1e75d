"""qparams, quantize, dequantize and fake-quantize against a pure-Python
reference written here, per tensor and per channel on every axis."""

import math

import numpy as np

import pytest
import torch

import qext


def ref_qparams(lo: float, hi: float, qmin: int, qmax: int, symmetric: bool):
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    f32 = lambda v: float(torch.tensor(v, dtype=torch.float32))  # noqa: E731
    eps = float(torch.finfo(torch.float32).eps)
    if symmetric:
        scale = max(f32(f32(max(-lo, hi)) / f32((qmax - qmin) / 2)), eps)
        return scale, (qmin + qmax + 1) // 2
    scale = max(f32(f32(hi - lo) / f32(qmax - qmin)), eps)
    zp = qmin - round(f32(lo / scale))  # Python's round() is half-to-even
    return scale, int(min(max(zp, qmin), qmax))


def ref_quantize(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, qmin: int, qmax: int):
    q = torch.round(x / scale) + zp.to(torch.float32)  # torch.round is half-to-even
    return q.clamp(qmin, qmax)


def test_classic_worked_example():
    x = torch.tensor([-6.0, 0.0, 6.0])
    scale, zp = qext.choose_qparams(x)
    assert scale.item() == pytest.approx(12 / 255)
    assert round(scale.item(), 3) == 0.047
    assert zp.item() == 128
    q = qext.quantize(x, scale, zp)
    assert q.dtype == torch.uint8
    assert q.tolist() == [0, 128, 255]
    assert torch.allclose(qext.dequantize(q, scale, zp), x, atol=scale.item() / 2)


@pytest.mark.parametrize("symmetric,qmin,qmax", [(False, 0, 255), (True, -127, 127), (True, -128, 127), (True, 0, 255)])
def test_qparams_match_reference_on_random_tensors(symmetric, qmin, qmax):
    g = torch.Generator().manual_seed(0)
    for trial in range(20):
        x = torch.randn(50, generator=g) * (trial + 1) + (trial - 10) * 0.3
        scale, zp = qext.choose_qparams(x, qmin=qmin, qmax=qmax, symmetric=symmetric)
        want_scale, want_zp = ref_qparams(x.min().item(), x.max().item(), qmin, qmax, symmetric)
        assert scale.item() == want_scale
        assert zp.item() == want_zp


def test_range_always_contains_zero_and_zero_width_is_valid():
    scale, zp = qext.choose_qparams(torch.tensor([2.0, 5.0]))
    assert zp.item() == 0 and scale.item() == pytest.approx(5 / 255)
    scale, zp = qext.choose_qparams(torch.tensor([-5.0, -2.0]))
    assert zp.item() == 255
    scale, zp = qext.choose_qparams(torch.zeros(8))
    assert scale.item() > 0 and math.isfinite(1 / scale.item())
    assert qext.quantize(torch.zeros(8), scale, zp).tolist() == [zp.item()] * 8


@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1])
@pytest.mark.parametrize("qmin,qmax,symmetric", [(0, 255, False), (-127, 127, True), (-8, 7, True)])
def test_quantize_dequantize_match_reference(isa, axis, qmin, qmax, symmetric):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 7, 33, generator=g) * torch.linspace(0.1, 3, 33)
    scale, zp = qext.choose_qparams(x, axis=axis, qmin=qmin, qmax=qmax, symmetric=symmetric)
    if axis is not None:
        assert scale.shape == (x.shape[axis],)
    q = qext.quantize(x, scale, zp, axis=axis, qmin=qmin, qmax=qmax)
    assert q.dtype == (torch.uint8 if qmin >= 0 else torch.int8)
    shape = [1] * x.dim()
    if axis is not None:
        shape[axis] = -1
    s, z = scale.reshape(shape), zp.reshape(shape)
    want = ref_quantize(x, s, z, qmin, qmax)
    assert torch.equal(q.to(torch.float32), want)
    deq = qext.dequantize(q, scale, zp, axis=axis)
    assert torch.equal(deq, (q.to(torch.float32) - z.to(torch.float32)) * s)
    # inside the range the error is at most half a step
    assert ((deq - x).abs() <= s / 2 + 1e-6).all()
    fq = qext.fake_quantize(x, scale, zp, axis=axis, qmin=qmin, qmax=qmax)
    assert torch.equal(fq, deq)


def test_round_half_to_even_and_clamp(isa):
    x = torch.tensor([0.25, 0.75, -0.25, -0.75, 1.25, 1000.0, -1000.0, float("nan")])
    q = qext.quantize(x, torch.tensor(0.5), torch.tensor(10, dtype=torch.int32))
    assert q.tolist() == [10, 12, 10, 8, 12, 255, 0, 0]


def test_bad_inputs_give_clear_errors():
    with pytest.raises(RuntimeError, match="NaN or Inf"):
        qext.choose_qparams(torch.tensor([1.0, float("nan")]))
    with pytest.raises(RuntimeError, match="empty"):
        qext.choose_qparams(torch.empty(0))
    with pytest.raises(RuntimeError, match="float32"):
        qext.quantize(torch.ones(3, dtype=torch.float64), torch.tensor(1.0), torch.tensor(0))
    with pytest.raises(RuntimeError, match="scale must be finite and > 0"):
        qext.quantize(torch.ones(3), torch.tensor(0.0), torch.tensor(0))
    with pytest.raises(RuntimeError, match="expected 3 scale"):
        qext.quantize(torch.ones(3, 4), torch.ones(4), torch.zeros(4, dtype=torch.int32), axis=0)
    with pytest.raises(RuntimeError, match="out of range"):
        qext.choose_qparams(torch.ones(3, 4), axis=2)
    with pytest.raises(RuntimeError, match="fits neither"):
        qext.quantize(torch.ones(3), torch.tensor(1.0), torch.tensor(0), qmin=-1, qmax=300)


def test_fake_quantize_straight_through_gradient():
    # scale 0.5, zero point 10, range [0, 255]: representable reals are [-5, 122.5]
    x = torch.tensor([-6.0, -5.0, -4.9, 0.3, 122.5, 122.8, 130.0], requires_grad=True)
    y = qext.fake_quantize(x, torch.tensor(0.5), torch.tensor(10, dtype=torch.int32))
    assert torch.equal(y.detach(), qext.fake_quantize(x.detach(), torch.tensor(0.5), torch.tensor(10, dtype=torch.int32)))
    y.backward(torch.arange(1.0, 8.0))
    # hand-derived: round(x/0.5)+10 = 2, 0, 0(-9.8->-10), 11, 255, 256, 270 -> inside for 0 <= t <= 255
    assert x.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0]


def test_fake_quantize_gradient_per_channel():
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(3, 4, generator=g) * 3).requires_grad_()
    scale = torch.tensor([0.01, 0.05, 1.0])
    zp = torch.zeros(3, dtype=torch.int32)
    qext.fake_quantize(x, scale, zp, axis=0, qmin=-127, qmax=127).sum().backward()
    t = torch.round(x.detach() / scale[:, None])
    assert torch.equal(x.grad, ((t >= -127) & (t <= 127)).float())


def test_fake_quantize_learnable_scale_and_zero_point_gradients():
    # scale 0.5, zero point 10, range [0, 255]; hand-derived LSQ gradients:
    #   inside: d/ds = round(x/s) - x/s, d/dz = 0; clamped: d/ds = q_edge - z, d/dz = -s
    x = torch.tensor([-6.0, -4.9, 0.3, 1.1, 130.0])
    scale = torch.tensor(0.5, requires_grad=True)
    zp = torch.tensor(10.0, requires_grad=True)
    qext.fake_quantize(x, scale, zp).backward(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))
    # x/s = -12 (clamped low), -9.8 (inside: -10 - -9.8 = -0.2), 0.6 (1 - 0.6 = 0.4),
    # 2.2 (2 - 2.2 = -0.2), 260 (clamped high)
    expected_scale = 1 * (0 - 10) + 2 * -0.2 + 3 * 0.4 + 4 * -0.2 + 5 * (255 - 10)
    assert scale.grad.item() == pytest.approx(expected_scale, abs=1e-3)
    assert zp.grad.item() == pytest.approx((1 + 5) * -0.5)


def test_fake_quantize_per_channel_scale_gradient_is_summed_per_channel():
    x = torch.tensor([[0.26, 9.0], [-0.4, 0.1]])
    scale = torch.tensor([0.1, 0.2], requires_grad=True)
    zp = torch.zeros(2, requires_grad=True)
    qext.fake_quantize(x, scale, zp, axis=0, qmin=-8, qmax=7).sum().backward()
    # row 0: 2.6 -> 3 - 2.6 = 0.4; 90 -> clamped high: 7.  row 1: -2 -> 0; 0.5 -> 0 - 0.5 = -0.5
    assert scale.grad.tolist() == pytest.approx([0.4 + 7, -0.5], abs=1e-5)
    assert zp.grad.tolist() == pytest.approx([-0.1, 0.0])


@pytest.mark.filterwarnings("ignore:Input #")
def test_fake_quantize_gradcheck_where_the_gradient_is_defined():
    # Outside the range y = (q_edge - z) * s is smooth in x and s; gradcheck
    # the analytic gradients there (inside, round() has no true derivative).
    x = torch.tensor([-40.0, -30.0, 50.0, 70.0], requires_grad=True)
    zp = torch.tensor(3, dtype=torch.int32)

    def f(x, s):
        return qext.fake_quantize(x, s, zp, qmin=0, qmax=15)

    scale = torch.tensor(0.7, requires_grad=True)
    assert torch.autograd.gradcheck(f, (x, scale), eps=1e-2, atol=1e-3, rtol=1e-3)


def test_fake_quantize_rejects_fractional_float_zero_point():
    with pytest.raises(RuntimeError, match="integer-valued"):
        qext.fake_quantize(torch.ones(3), torch.tensor(1.0), torch.tensor(0.5))


def test_quantize_matches_float32_division_at_and_near_ties(isa):
    # The AVX-512 path divides with a reciprocal and one FMA correction; it
    # must round exactly like x / scale, including values at .5 boundaries
    # and one or two ulps either side, for scales of every magnitude.
    rng = np.random.default_rng(0)
    for _ in range(40):
        scale = np.float32(rng.uniform(1, 2) * 2.0 ** rng.integers(-24, 8))
        k = rng.integers(-300, 300, size=4096).astype(np.float64) + 0.5
        ties = (k * np.float64(scale)).astype(np.float32)
        x = np.concatenate([ties] + [np.nextafter(ties, np.float32(d * np.inf)) for d in (-1, 1)]
                           + [rng.standard_normal(4096).astype(np.float32) * scale * 200])
        zp = int(rng.integers(0, 256))
        expected = np.clip(np.round(x / scale) + zp, 0, 255).astype(np.uint8)  # float32 division
        got = qext.quantize(torch.from_numpy(x), torch.tensor(float(scale)), torch.tensor(zp, dtype=torch.int32))
        assert np.array_equal(got.numpy(), expected), (isa, scale)
