"""qext::linear_dynamic: exactness against the same quantized math in float,
accuracy against F.linear, serialization, bad inputs and non-finite values."""

import pytest
import torch
import torch.nn.functional as F

import qext
from conftest import on_every_path, run_python, sqnr_db


def quantized_math_reference(x, w, b, per_row, bits=8, activation_bits=8):
    """What linear_dynamic computes, in float64 from the same int8 numbers."""
    qmax = 2 ** (bits - 1) - 1
    scale_w, _ = qext.choose_qparams(w, axis=0, qmin=-qmax, qmax=qmax, symmetric=True)
    wq = qext.quantize(w, scale_w, torch.zeros_like(scale_w, dtype=torch.int32), axis=0, qmin=-qmax, qmax=qmax)
    x2 = x.reshape(-1, x.shape[-1])
    aq = 2**activation_bits - 1
    if per_row:
        scale_x, zp_x = qext.choose_qparams(x2, axis=0, qmax=aq)
        xq = qext.quantize(x2, scale_x, zp_x, axis=0, qmax=aq)
    else:
        scale_x, zp_x = qext.choose_qparams(x2, qmax=aq)
        xq = qext.quantize(x2, scale_x, zp_x, qmax=aq)
        scale_x, zp_x = scale_x.expand(x2.shape[0]), zp_x.expand(x2.shape[0])
    acc = (xq.double() - zp_x.double()[:, None]) @ wq.double().T
    y = acc * scale_x.double()[:, None] * scale_w.double()[None, :]
    if b is not None:
        y = y + b.double()
    return y.reshape(*x.shape[:-1], w.shape[0])


# bits=7: int8 storage with values in [-63, 63], which AVX2 multiplies with
# its vpmaddubsw kernel; one bit less costs ~6 dB of weight SQNR.
@pytest.mark.parametrize("bits,min_sqnr", [(8, 35.0), (7, 31.0)])
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("shape", [(1, 768), (7, 100), (2, 3, 17), (129, 64)])
def test_matches_quantized_math_and_float(isa, per_row, shape, bits, min_sqnr):
    g = torch.Generator().manual_seed(sum(shape))
    k, n = shape[-1], 37
    x = torch.randn(*shape, generator=g)
    w = torch.randn(n, k, generator=g) / k**0.5
    b = torch.randn(n, generator=g)
    packed = qext.quantize_linear_weight(w, bits=bits)
    y = qext.linear_dynamic(x, packed, b, per_row=per_row)
    assert y.shape == (*shape[:-1], n)
    ref = quantized_math_reference(x, w, b, per_row, bits)
    # Only float32 rounding separates the kernel from the float64 reference.
    assert torch.allclose(y.double(), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    assert sqnr_db(F.linear(x, w, b), y) > min_sqnr


# activation_bits=7: activations in [0, 127] (torch.ao's reduce_range); with
# 7-bit weights AVX2 sums two k groups in int16 before widening. Still the
# quantized math exactly, about 6 dB less SQNR than 8-bit activations.
@pytest.mark.parametrize("bits", [8, 7])
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("shape", [(1, 768), (7, 100), (2, 3, 17), (129, 64)])
def test_seven_bit_activations_match_quantized_math(isa, per_row, shape, bits):
    g = torch.Generator().manual_seed(sum(shape) + 1)
    k, n = shape[-1], 37
    x = torch.randn(*shape, generator=g)
    w = torch.randn(n, k, generator=g) / k**0.5
    b = torch.randn(n, generator=g)
    packed = qext.quantize_linear_weight(w, bits=bits)
    y = qext.linear_dynamic(x, packed, b, per_row=per_row, activation_bits=7)
    ref = quantized_math_reference(x, w, b, per_row, bits, activation_bits=7)
    assert torch.allclose(y.double(), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    eight = qext.linear_dynamic(x, packed, b, per_row=per_row)
    assert not torch.equal(y, eight)
    assert sqnr_db(F.linear(x, w, b), y) > 27.0


def test_activation_bits_other_than_8_or_7_are_refused():
    packed = qext.quantize_linear_weight(torch.randn(8, 16))
    for bad in (6, 9, 0):
        with pytest.raises(RuntimeError, match="activation_bits must be 8 or 7"):
            qext.linear_dynamic(torch.randn(2, 16), packed, activation_bits=bad)


def test_sqnr_on_gaussian_data_bert_shape():
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(64, 768, generator=g), torch.randn(3072, 768, generator=g) * 0.02, torch.randn(3072, generator=g)
    packed = qext.quantize_linear_weight(w)
    for per_row in (False, True):
        assert sqnr_db(F.linear(x, w, b), qext.linear_dynamic(x, packed, b, per_row=per_row)) > 35.0


@pytest.mark.parametrize("bits,activation_bits", [(8, 8), (7, 8), (7, 7), (8, 7)])
def test_every_path_gives_bit_identical_outputs(bits, activation_bits):
    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(33, 300, generator=g), torch.randn(70, 300, generator=g)
    outputs = on_every_path(lambda: qext.linear_dynamic(x, qext.quantize_linear_weight(w, bits=bits), None,
                                                        per_row=True, activation_bits=activation_bits))
    assert all(torch.equal(outputs[0], o) for o in outputs[1:])


def test_relu_and_threads_agree():
    g = torch.Generator().manual_seed(4)
    x, w = torch.randn(40, 64, generator=g), torch.randn(300, 64, generator=g)
    packed = qext.quantize_linear_weight(w)
    y = qext.linear_dynamic(x, packed, None)
    assert torch.equal(qext.linear_dynamic(x, packed, None, relu=True), y.clamp_min(0))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        y1 = qext.linear_dynamic(x, packed, None)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(y, y1)


@pytest.mark.parametrize("activation_bits", [7, 8])
def test_weights_packed_for_seven_bit_activations_give_the_same_results(activation_bits):
    """quantize_linear_weight(activation_bits=7) changes the packing only (AVX2:
    bytes for vpmaddubsw), never the result: calls with 7-bit activations, and
    with 8-bit ones (the split chain there), equal the default packing's on
    every path."""
    g = torch.Generator().manual_seed(6)
    x, w, b = torch.randn(37, 300, generator=g), torch.randn(70, 300, generator=g), torch.randn(70, generator=g)

    def one_path():
        default = qext.quantize_linear_weight(w)
        for_7 = qext.quantize_linear_weight(w, activation_bits=7)
        assert torch.equal(for_7.weight(), default.weight())
        got = qext.linear_dynamic(x, for_7, b, activation_bits=activation_bits)
        assert torch.equal(got, qext.linear_dynamic(x, default, b, activation_bits=activation_bits))
        return got

    outputs = on_every_path(one_path)
    assert all(torch.equal(outputs[0], o) for o in outputs[1:])
    with pytest.raises(ValueError, match="activation_bits must be 8 or 7"):
        qext.quantize_linear_weight(w, activation_bits=6)


@pytest.mark.parametrize("activation_bits", [8, 7])
def test_fused_gelu_is_bit_identical_across_paths_and_matches_f_gelu(activation_bits):
    """gelu=True applies GELU (erf form) in the GEMM's epilogue: the same bits
    on every path, and within the two float GELUs' errors (1.2e-6 each of the
    exact function) of F.gelu on the unfused output, which also checks that
    the bias and scales come before it."""
    g = torch.Generator().manual_seed(5)
    x, w, b = torch.randn(37, 300, generator=g) * 3, torch.randn(70, 300, generator=g) * 0.2, torch.randn(70, generator=g)

    def one_path():
        packed = qext.quantize_linear_weight(w)
        fused = qext.linear_dynamic(x, packed, b, per_row=True, activation_bits=activation_bits, gelu=True)
        plain = qext.linear_dynamic(x, packed, b, per_row=True, activation_bits=activation_bits)
        assert plain.abs().max() > 5  # outputs reach well past erf's clamp (3.925 * sqrt(2))
        torch.testing.assert_close(fused, F.gelu(plain), rtol=0, atol=2.5e-6)
        assert not torch.equal(fused, plain.clamp_min(0))
        return fused

    outputs = on_every_path(one_path)
    assert all(torch.equal(outputs[0], o) for o in outputs[1:])


def test_relu_and_gelu_together_are_refused():
    packed = qext.quantize_linear_weight(torch.randn(4, 8))
    with pytest.raises(RuntimeError, match="relu and gelu are exclusive"):
        qext.linear_dynamic(torch.randn(2, 8), packed, None, relu=True, gelu=True)


def test_empty_batch():
    packed = qext.quantize_linear_weight(torch.randn(8, 16))
    y = qext.linear_dynamic(torch.empty(0, 16), packed)
    assert y.shape == (0, 8)
    assert qext.linear_dynamic(torch.empty(3, 0, 16), packed).shape == (3, 0, 8)


def test_non_finite_rows_become_nan_and_other_rows_are_untouched():
    g = torch.Generator().manual_seed(5)
    x, w = torch.randn(6, 32, generator=g), torch.randn(10, 32, generator=g)
    packed = qext.quantize_linear_weight(w)
    for per_row in (False, True):
        clean = qext.linear_dynamic(x, packed, per_row=per_row)
        bad = x.clone()
        bad[1, 3] = float("nan")
        bad[4, 0] = float("inf")
        y = qext.linear_dynamic(bad, packed, per_row=per_row)
        assert torch.isnan(y[1]).all() and torch.isnan(y[4]).all()
        keep = [0, 2, 3, 5]
        # the bad rows do not take part in the activation range
        assert torch.equal(y[keep], clean[keep]) if per_row else torch.isfinite(y[keep]).all()
        if not per_row:
            assert torch.equal(y[keep], qext.linear_dynamic(x[keep], packed))


def test_bad_inputs_name_the_op():
    packed = qext.quantize_linear_weight(torch.randn(8, 16))
    with pytest.raises(RuntimeError, match=r"qext::linear_dynamic: expected a float32 input; got Double"):
        qext.linear_dynamic(torch.randn(2, 16, dtype=torch.float64), packed)
    with pytest.raises(RuntimeError, match=r"qext::linear_dynamic: expected input \[\.\.\., 16\]"):
        qext.linear_dynamic(torch.randn(2, 15), packed)
    with pytest.raises(RuntimeError, match=r"qext::linear_dynamic: expected a float32 bias of shape \[8\]"):
        qext.linear_dynamic(torch.randn(2, 16), packed, torch.randn(7))
    with pytest.raises(RuntimeError, match=r"expected a 2-D \[out, in\] weight; got 1-D"):
        qext.quantize_linear_weight(torch.randn(16))
    with pytest.raises(RuntimeError, match="NaN or Inf"):
        qext.quantize_linear_weight(torch.tensor([[1.0, float("inf")]]))
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        qext.quantize_linear_weight([[1.0]])


class QLinear(torch.nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.packed = qext.quantize_linear_weight(w)
        self.bias = b

    def forward(self, x):
        return torch.ops.qext.linear_dynamic(x, self.packed, self.bias, True, False)


def test_scripted_module_round_trip_in_a_fresh_process(tmp_path):
    g = torch.Generator().manual_seed(6)
    w, b, x = torch.randn(20, 48, generator=g), torch.randn(20, generator=g), torch.randn(4, 48, generator=g)
    module = torch.jit.script(QLinear(w, b))
    want = module(x)
    path, xpath = tmp_path / "qlinear.pt", tmp_path / "x.pt"
    torch.jit.save(module, str(path))
    torch.save({"x": x, "want": want}, xpath)

    loaded = torch.jit.load(str(path))
    assert torch.equal(loaded(x), want)
    assert torch.equal(loaded.packed.weight(), module.packed.weight())

    # A fresh interpreter on another kernel path still reproduces the outputs.
    for isa in qext.supported_isas():
        code = (
            "import torch, qext\n"
            f"m = torch.jit.load({str(path)!r}); d = torch.load({str(xpath)!r})\n"
            "assert torch.equal(m(d['x']), d['want']), 'outputs differ'\n"
            "print('ok', qext.active_isa())\n"
        )
        result = run_python(code, QEXT_ISA=isa)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["ok", isa]


def test_loading_without_qext_names_the_missing_class(tmp_path):
    path = tmp_path / "qlinear.pt"
    torch.jit.save(torch.jit.script(QLinear(torch.randn(4, 8), None)), str(path))
    result = run_python(f"import torch; torch.jit.load({str(path)!r})")
    assert result.returncode != 0
    assert "qext" in result.stderr


def test_bad_qext_isa_fails_at_import():
    result = run_python("import qext", QEXT_ISA="sse9")
    assert result.returncode != 0
    assert "unknown ISA 'sse9'" in result.stderr


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to torch)")


@CUDA
@pytest.mark.parametrize("per_row", [False, True])
def test_cuda_linear_dynamic_gives_the_cpu_floats(per_row):
    """On CUDA tensors linear_dynamic runs ATen ops around cuBLASLt's int8 GEMM
    (the weight copied to the GPU once): the same floats as the CPU kernels,
    bit for bit, NaN rows included. (The same composition runs on CPU tensors
    in ctest, DeviceLinearDynamic.)"""
    torch.manual_seed(0)
    for m, k, n in [(1, 64, 32), (17, 300, 70), (128, 768, 3072)]:
        w = qext.quantize_linear_weight(torch.randn(n, k))
        x, b = torch.randn(m, k) * 2, torch.randn(n)
        if m > 3:
            x[2, 5] = float("nan")
        for relu, gelu in [(True, False), (False, True)]:
            want = qext.linear_dynamic(x, w, b, per_row=per_row, relu=relu, gelu=gelu)
            got = qext.linear_dynamic(x.cuda(), w, b.cuda(), per_row=per_row, relu=relu, gelu=gelu)
            assert got.is_cuda
            assert torch.equal(got.cpu().isnan(), want.isnan())
            assert torch.equal(got.cpu().nan_to_num(0), want.nan_to_num(0)), (m, k, n, gelu)


@CUDA
def test_cuda_quantized_model_moved_to_the_gpu():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).eval()
    q = qext.quantize_dynamic(torch.jit.script(model))
    x = torch.randn(8, 64)
    want = q(x)
    q.cuda()
    got = q(x.cuda())
    assert got.is_cuda and torch.equal(got.cpu(), want)
