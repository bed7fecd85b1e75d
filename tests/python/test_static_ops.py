"""Static int8 ops (uint8 in, uint8 out): exact against the integer math done
here in float64, identical on every kernel path, and close to float."""

import zlib

import pytest
import torch
import torch.nn.functional as F

import qext
from conftest import run_python, sqnr_db


def quantize_input(x):
    scale, zp = qext.choose_qparams(x)
    return qext.quantize(x, scale, zp), scale.item(), int(zp.item())


def requantize_reference(acc, x_scale, w_scales, bias, out_scale, out_zp, relu, channel_dim):
    """The epilogue in float32, in the kernels' order: float(acc) * (sx * sw) + b."""
    shape = [1] * acc.dim()
    shape[channel_dim] = -1
    mult = (torch.tensor(x_scale, dtype=torch.float32) * w_scales).reshape(shape)
    v = acc.to(torch.float32) * mult
    if bias is not None:
        v = v + bias.reshape(shape)
    if relu:
        v = v.clamp_min(0)
    q = torch.round(v / torch.tensor(out_scale, dtype=torch.float32)) + out_zp
    return q.clamp(0, 255).to(torch.uint8)


CONV_CASES = [
    # (N, C, H, W, Cout, k, stride, padding, dilation, groups)
    (2, 3, 9, 11, 8, 3, 1, 1, 1, 1),
    (1, 16, 8, 8, 32, 1, 1, 0, 1, 1),
    (2, 32, 30, 30, 16, 1, 1, 0, 1, 1),  # 1x1 stride 1: the image read as plain GEMM rows, 2 images x 900 pixels
    (2, 24, 9, 7, 40, 1, 1, 0, 1, 1),  # ... 63 pixels per image (a partial tile at each image's end)
    (1, 6, 5, 5, 8, 1, 1, 0, 1, 1),  # 1x1, 6 channels: rows padded to 8 bytes, so a padded copy
    (2, 8, 10, 7, 12, 3, 2, 0, 1, 4),
    (1, 6, 12, 12, 6, 3, 1, 2, 2, 6),  # depthwise, dilated
    (3, 5, 6, 6, 7, 5, 2, 2, 1, 1),
    (1, 16, 30, 30, 64, 3, 1, 1, 1, 1),  # 900 pixels: several row chunks
    (1, 8, 14, 14, 256, 3, 1, 1, 1, 1),  # 3 chunks: output channels split across threads
    (1, 3, 40, 40, 64, 7, 2, 3, 1, 1),  # 3-channel stem
    (2, 5, 9, 8, 12, 3, 2, 1, (2, 1), 1),  # direct, kernel rows padded 15 -> 16 bytes, dilated rows
    (1, 4, 10, 10, 8, 3, 1, 1, (1, 2), 1),  # dilated columns: gathered patches
    (2, 16, 9, 9, 24, 1, 2, 0, 1, 1),  # 1x1 stride 2: read from the image without a padded copy
    (1, 8, 40, 40, 16, 3, 1, 1, 1, 1),  # 267 tiles: 17 chunks, 18 on 2 threads, of 14 or 15 tiles
    # depthwise kernel: channel counts with and without a partial vector block
    (2, 32, 9, 9, 32, 3, 1, 1, 1, 32),
    (1, 80, 10, 9, 80, 5, 2, 2, 1, 80),
    (1, 77, 7, 7, 77, 7, 1, 3, 1, 77),  # ConvNeXt-style 7x7, 77 = 64 + 13 channels
    (2, 144, 8, 8, 144, 3, 2, 1, (2, 1), 144),
    (1, 6, 9, 9, 12, 3, 1, 1, 1, 6),  # channel multiplier 2: grouped GEMM path
    # grouped kernel (Cin/groups == Cout/groups): RegNet/ResNeXt widths, partial lane blocks
    (2, 48, 9, 9, 48, 3, 1, 1, 1, 6),  # 8 channels per group
    (1, 400, 7, 7, 400, 3, 2, 1, 1, 25),  # 16 per group (RegNetX-400MF's last stage)
    (1, 72, 8, 8, 72, 3, 1, 2, 2, 3),  # 24 per group: AVX2 declines (GEMMs), AVX-512 takes it
    (1, 40, 6, 6, 40, 3, 1, 1, 1, 10),  # 4 per group
    (1, 36, 6, 7, 36, 3, 1, 1, 1, 6),  # 6 per group: AVX2 pairs, AVX-512 declines
    (1, 128, 5, 5, 128, 3, 1, 1, 1, 2),  # 64 per group
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_conv2d_int8_is_exact(isa, case, relu):
    n, c, h, w, cout, k, stride, padding, dilation, groups = case
    g = torch.Generator().manual_seed(zlib.crc32(repr(case).encode()))
    x = torch.randn(n, c, h, w, generator=g)
    weight = torch.randn(cout, c // groups, k, k, generator=g) / (c * k) ** 0.5
    bias = torch.randn(cout, generator=g)
    xq, sx, zx = quantize_input(x)
    packed = qext.quantize_conv_weight(weight, stride, padding, dilation, groups)
    wq, sw = packed.weight(), packed.scales()
    ref = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    if relu:
        ref = ref.clamp_min(0)
    # an output range that fits (the exact check holds for any; the SQNR one needs no clipping)
    out_scale = float(ref.max() - ref.min().clamp_max(0)) / 255
    out_zp = int(round(float(-ref.min().clamp_max(0)) / out_scale))
    got = qext.conv2d_int8(xq, sx, zx, packed, bias, out_scale, out_zp, relu)
    acc = F.conv2d(xq.double() - zx, wq.double(), None, stride, padding, dilation, groups)
    want = requantize_reference(acc.round().to(torch.int64), sx, sw, bias, out_scale, out_zp, relu, 1)
    assert got.shape == want.shape
    assert torch.equal(got, want)
    # and close to the float conv
    assert sqnr_db(ref, qext.dequantize(got, torch.tensor(out_scale), torch.tensor(out_zp))) > 20.0


def test_linear_int8_is_exact(isa):
    g = torch.Generator().manual_seed(7)
    x, w, b = torch.randn(2, 9, 70, generator=g), torch.randn(33, 70, generator=g) / 8, torch.randn(33, generator=g)
    xq, sx, zx = quantize_input(x)
    packed = qext.quantize_linear_weight(w)
    got = qext.linear_int8(xq, sx, zx, packed, b, 0.02, 128, True)
    acc = (xq.double() - zx) @ packed.weight().double().T
    want = requantize_reference(acc.round().to(torch.int64), sx, packed.scales(), b, 0.02, 128, True, -1)
    assert torch.equal(got, want)


def pair(v):
    return list(v) if isinstance(v, tuple) else [v, v]


# 7-bit weights: on AVX2 the op measures its input's largest byte (the
# padding, i.e. the zero point, included) and at <= 127 sums two k groups per
# widening. Activations at and past 127, and a zero point past 127 over smaller
# data (only the padding reaches it), on direct, gathered and 1x1 convs, and on
# depthwise and grouped ones (AVX2 multiplies bytes by weights within +-64):
# every path equals the exact integer math.
@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (0, 5, 9, 10, 13, 15, 17, 19)])
@pytest.mark.parametrize("top,zx", [(127, 60), (128, 60), (100, 200), (255, 0)])
def test_7bit_weight_conv_is_exact_for_any_activation_range(isa, case, top, zx):
    n, c, h, w, cout, k, stride, padding, dilation, groups = case
    g = torch.Generator().manual_seed(zlib.crc32(repr((case, top)).encode()))
    xq = torch.randint(0, top + 1, (n, c, h, w), dtype=torch.uint8, generator=g)
    xq.view(-1)[0] = top
    # all near +63: four padding bytes of 200 in one int16 lane would overflow it
    weight = 0.8 + 0.2 * torch.rand(cout, c // groups, k, k, generator=g)
    packed = torch.ops.qext.quantize_conv_weight(weight, pair(stride), pair(padding), pair(dilation), groups, 63)
    wq, sw = packed.weight(), packed.scales()
    assert wq.abs().max() <= 63
    sx, bias = 0.05, torch.randn(cout, generator=g)
    acc = F.conv2d(xq.double() - zx, wq.double(), None, stride, padding, dilation, groups)
    real = acc * sx * sw.double().reshape(1, -1, 1, 1)
    out_scale = float(real.max() - real.min()) / 255
    out_zp = int(min(255, max(0, round(float(-real.min()) / out_scale))))
    got = qext.conv2d_int8(xq, sx, zx, packed, bias, out_scale, out_zp, False)
    assert torch.equal(got, requantize_reference(acc.round().to(torch.int64), sx, sw, bias, out_scale, out_zp, False, 1))


@pytest.mark.parametrize("top", [127, 128, 255])
def test_7bit_weight_linear_is_exact_for_any_activation_range(isa, top):
    g = torch.Generator().manual_seed(top)
    xq = torch.randint(0, top + 1, (3, 11, 200), dtype=torch.uint8, generator=g)
    xq.view(-1)[-1] = top
    w, b = 0.8 + 0.2 * torch.rand(70, 200, generator=g), torch.randn(70, generator=g)
    packed = torch.ops.qext.quantize_linear_weight(w, True, 63)
    got = qext.linear_int8(xq, 0.03, 64, packed, b, 0.5, 128, False)
    acc = (xq.double() - 64) @ packed.weight().double().T
    assert torch.equal(got, requantize_reference(acc.round().to(torch.int64), 0.03, packed.scales(), b, 0.5, 128, False, -1))


def test_conv_weight_pickles_with_its_geometry(tmp_path):
    class Conv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = qext.quantize_conv_weight(torch.randn(4, 2, 3, 3), stride=2, padding=1, groups=2)

        def forward(self, x):
            return torch.ops.qext.conv2d_int8(x, 0.1, 3, self.w, None, 0.2, 5, False)

    m = torch.jit.script(Conv())
    x = torch.randint(0, 255, (1, 4, 9, 9), dtype=torch.uint8)
    path, io = tmp_path / "conv.pt", tmp_path / "io.pt"
    torch.jit.save(m, str(path))
    torch.save({"x": x, "y": m(x)}, io)
    result = run_python(
        "import torch, qext\n"
        f"m = torch.jit.load({str(path)!r}); d = torch.load({str(io)!r})\n"
        "assert torch.equal(m(d['x']), d['y'])\nprint('ok')\n"
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_bad_inputs():
    packed = qext.quantize_conv_weight(torch.randn(4, 3, 3, 3))
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(RuntimeError, match="qext::conv2d_int8: expected uint8 activations"):
        qext.conv2d_int8(x.float(), 0.1, 0, packed, None, 0.1, 0)
    with pytest.raises(RuntimeError, match="input has 4 channels, the weight expects 3"):
        qext.conv2d_int8(torch.zeros(1, 4, 8, 8, dtype=torch.uint8), 0.1, 0, packed, None, 0.1, 0)
    with pytest.raises(RuntimeError, match="smaller than the kernel"):
        qext.conv2d_int8(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), 0.1, 0, packed, None, 0.1, 0)
    with pytest.raises(RuntimeError, match="output zero point must be in"):
        qext.conv2d_int8(x, 0.1, 0, packed, None, 0.1, 300)
    with pytest.raises(RuntimeError, match="input scale must be finite"):
        qext.conv2d_int8(x, float("nan"), 0, packed, None, 0.1, 0)
    with pytest.raises(RuntimeError, match="groups=2 must divide"):
        qext.quantize_conv_weight(torch.randn(3, 3, 3, 3), groups=2)
    assert qext.conv2d_int8(torch.zeros(0, 3, 8, 8, dtype=torch.uint8), 0.1, 0, packed, None, 0.1, 0).shape == (0, 4, 6, 6)


# under 64 bytes; 64-byte blocks and a tail; two parallel chunks
@pytest.mark.parametrize("shape", [(1, 3, 1, 17), (2, 5, 7, 3), (1, 64, 30, 30)])
def test_add_int8_matches_the_rule(isa, shape):
    g = torch.Generator().manual_seed(9)
    a = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g).contiguous(memory_format=torch.channels_last)
    b = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    for relu in (False, True):
        got = qext.add_int8(a, 0.05, 120, b, 0.02, 3, 0.06, 77, relu)
        v = (a.float() - 120) * torch.tensor(0.05) + (b.float() - 3) * torch.tensor(0.02)
        if relu:
            v = v.clamp_min(0)
        want = (torch.round(v / torch.tensor(0.06)) + 77).clamp(0, 255).to(torch.uint8)
        assert torch.equal(got, want)
        assert got.is_contiguous(memory_format=torch.channels_last)
    # broadcasting is correct (through float)
    got = qext.add_int8(a, 0.05, 120, b[:1], 0.02, 3, 0.06, 77)
    v = (a.float() - 120) * 0.05 + (b[:1].float() - 3) * 0.02
    assert (got.float() - (torch.round(v / 0.06) + 77).clamp(0, 255)).abs().max() <= 1


@pytest.mark.parametrize("bias", [True, False])
def test_fold_batch_norm(bias):
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(4, 6, 3, bias=bias)
    bn = torch.nn.BatchNorm2d(6)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(2, 4, 8, 8)
    w, b = qext.fold_batch_norm(conv.weight, conv.bias, bn)
    with torch.no_grad():
        assert torch.allclose(F.conv2d(x, w, b), bn(conv(x)), atol=1e-5)
    linear, bn1 = torch.nn.Linear(5, 6), torch.nn.BatchNorm1d(6).eval()
    bn1.running_var.fill_(4.0)
    w, b = qext.fold_batch_norm(linear.weight, linear.bias, bn1)
    xl = torch.randn(3, 5)
    with torch.no_grad():
        assert torch.allclose(F.linear(xl, w, b), bn1(linear(xl)), atol=1e-5)
    with pytest.raises(RuntimeError, match=r"must have 5 elements .the weight.s output channels.; got shape \[6\]"):
        qext.fold_batch_norm(torch.randn(5, 4, 3, 3), None, bn)


# --- pooling on uint8 (output keeps the input's qparams) -----------------------

def _pair(v):
    return list(v) if isinstance(v, tuple) else [v, v]


def _uint8_images(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


def _round_half_even_avg(q, zp, pool):
    """Reference: zp + round_half_even(pool(q - zp)), pool in float64 (exact ties)."""
    avg = pool((q.double() - zp))
    return (zp + torch.round(avg)).clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("shape", [(1, 3, 7, 7), (2, 17, 12, 9), (1, 130, 5, 6), (1, 64, 112, 112)])  # 130: two 64-channel blocks + a tail
@pytest.mark.parametrize("kernel,stride,padding,dilation,ceil", [
    (3, 2, 1, 1, False), (2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 2, False), ((2, 3), (1, 2), (1, 1), 1, True)])
def test_max_pool2d_int8_is_exact(shape, kernel, stride, padding, dilation, ceil):
    q = _uint8_images(shape)
    got = torch.ops.qext.max_pool2d_int8(q, _pair(kernel), _pair(stride), _pair(padding), _pair(dilation), ceil)
    ref = F.max_pool2d(q.float(), kernel, stride, padding, dilation, ceil_mode=ceil).to(torch.uint8)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, ref)


@pytest.mark.parametrize("zp", [0, 37, 128, 255])
@pytest.mark.parametrize("kernel,stride,padding,ceil,include_pad,divisor", [
    (2, 2, 0, False, True, None), (3, 2, 1, False, True, None), (3, 2, 1, False, False, None),
    (3, 2, 1, True, True, None), (3, 2, 1, True, False, None), (3, 1, 1, False, True, 5), ((3, 2), (2, 1), (1, 0), True, True, None)])
def test_avg_pool2d_int8_rounds_half_to_even(zp, kernel, stride, padding, ceil, include_pad, divisor):
    q = _uint8_images((2, 19, 11, 10), seed=zp)
    got = torch.ops.qext.avg_pool2d_int8(q, zp, _pair(kernel), _pair(stride), _pair(padding), ceil, include_pad, divisor)
    ref = _round_half_even_avg(q, zp, lambda t: F.avg_pool2d(t, kernel, stride, padding, ceil, include_pad, divisor))
    assert torch.equal(got, ref)


@pytest.mark.parametrize("size,out", [((7, 7), (1, 1)), ((10, 9), (3, 4)), ((5, 5), (7, 7)), ((2, 2), (1, 1))])
def test_adaptive_avg_pool2d_int8(size, out):
    q = _uint8_images((3, 33, *size))
    for zp in (0, 100, 255):
        got = torch.ops.qext.adaptive_avg_pool2d_int8(q, zp, list(out))
        ref = _round_half_even_avg(q, zp, lambda t: F.adaptive_avg_pool2d(t, out))
        assert torch.equal(got, ref)


def test_pooling_bad_input():
    with pytest.raises(RuntimeError, match="expected uint8"):
        torch.ops.qext.max_pool2d_int8(torch.zeros(1, 1, 4, 4), [2], [2], [0], [1], False)
    with pytest.raises(RuntimeError, match="smaller than the pooling window"):
        torch.ops.qext.max_pool2d_int8(_uint8_images((1, 1, 2, 2)), [3], [1], [0], [1], False)
    with pytest.raises(RuntimeError, match="zero_point must be in"):
        torch.ops.qext.adaptive_avg_pool2d_int8(_uint8_images((1, 1, 2, 2)), 300, [1])
    with pytest.raises(RuntimeError, match="at most half the kernel"):
        torch.ops.qext.avg_pool2d_int8(_uint8_images((1, 1, 4, 4)), 0, [2], [2], [2], False, True, None)


@pytest.mark.parametrize("layout,dim", [("contiguous", 1), ("channels_last", 1), ("channels_last", 2),
                                        ("contiguous", 0), ("contiguous", -1), ("mixed", 1)])
def test_cat_int8_requantizes_each_input_exactly(isa, layout, dim):
    """Parts written straight into the output (contiguous data, channels-last
    on channels) and the general path give the rule's bytes, in torch.cat's
    layout; a part already in the output qparams is copied."""
    sizes = [3, 5, 2]
    shapes = [[2, 4, 5, 6] for _ in sizes]
    for shape, k in zip(shapes, sizes):
        shape[dim] = k
    parts = [_uint8_images(tuple(s), seed=i + 1) for i, s in enumerate(shapes)]
    if layout == "channels_last":
        parts = [p.contiguous(memory_format=torch.channels_last) for p in parts]
    elif layout == "mixed":
        parts[1] = parts[1].contiguous(memory_format=torch.channels_last)
    so, zo = 0.04, 100
    scales, zps = [0.02, so, 0.05], [10, zo, 200]
    got = torch.ops.qext.cat_int8(parts, scales, zps, dim, so, zo)
    # reference: qext's own dequantize/quantize (the documented rule)
    ref = torch.cat([
        qext.quantize(qext.dequantize(t, torch.tensor(s), torch.tensor(z)), torch.tensor(so), torch.tensor(zo))
        for t, s, z in zip(parts, scales, zps)], dim=dim)
    assert torch.equal(got, ref)
    if layout == "channels_last" and dim == 1:
        assert got.is_contiguous(memory_format=torch.channels_last)
    a, b = parts[0], parts[2]
    same = torch.ops.qext.cat_int8([a, a], [so, so], [zo, zo], 0, so, zo)  # same qparams: copied as is
    assert torch.equal(same, torch.cat([a, a]))
    with pytest.raises(RuntimeError, match="expected 2 scales"):
        torch.ops.qext.cat_int8([a, b], [0.1], [0], 1, so, zo)
    with pytest.raises(RuntimeError, match="is Float, expected uint8"):
        torch.ops.qext.cat_int8([a, b.float()], [0.1, 0.1], [0, 0], 1, so, zo)


@pytest.mark.parametrize("x_zp,w_value", [(0, 127), (128, -127), (255, 127), (0, -127)])
def test_depthwise_extreme_operands_are_exact(isa, x_zp, w_value):
    """Largest accumulators a depthwise window can reach (all taps 255 x +-127,
    7x7) at the extreme zero points, against integer math."""
    c, k = 70, 7
    xq = torch.full((1, c, 9, 9), 255, dtype=torch.uint8)
    xq[0, ::3] = 0
    weight = torch.full((c, 1, k, k), float(w_value))
    weight[::2] *= -1
    packed = qext.quantize_conv_weight(weight, 1, 3, 1, c)
    wq, sw = packed.weight(), packed.scales()
    assert wq.abs().max() == 127
    got = qext.conv2d_int8(xq, 0.02, x_zp, packed, None, 64.0, 128, False)
    acc = F.conv2d(xq.double() - x_zp, wq.double(), None, 1, 3, 1, c)
    assert torch.equal(got, requantize_reference(acc.round().to(torch.int64), 0.02, sw, None, 64.0, 128, False, 1))


@pytest.mark.parametrize("shape,channels_last", [((2, 5, 7, 3), False), ((2, 5, 7, 3), True), ((9, 5), False),
                                                  ((3, 5, 11), False), ((0, 5, 2, 2), False)])
def test_lut_u8_per_channel_reads_each_channels_table(isa, shape, channels_last):
    """A [C, 256] table (unfused BatchNorm) maps channel c (dimension 1) through row c, in any layout."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    table = torch.randint(0, 256, (5, 256), dtype=torch.uint8, generator=g)
    y = torch.ops.qext.lut_u8(x, table)
    channel = torch.arange(5).view(1, 5, *([1] * (len(shape) - 2))).expand(shape)
    assert torch.equal(y, table[channel, x.long()])
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    with pytest.raises(RuntimeError, match="needs 5 channels in dimension 1"):
        torch.ops.qext.lut_u8(torch.zeros(2, 4, dtype=torch.uint8), table)
    with pytest.raises(RuntimeError, match=r"\[256\] or \[C, 256\]"):
        torch.ops.qext.lut_u8(x, table[:, :255])
