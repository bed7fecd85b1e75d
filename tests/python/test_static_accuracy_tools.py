"""Static PTQ accuracy tools (issue 13): cross-layer equalization
(StaticConfig.equalize) and bias correction (StaticConfig.bias_correction).

- Equalization keeps the float function (the prepared module computes what
  the model does), evens out each equalized pair's channel ranges, finds the
  pairs of a depthwise-separable chain (ReLU between) and none across ReLU6,
  and on a net with badly scaled channels (what folding BatchNorm with small
  variances leaves) raises the int8 output SQNR by >= 5 dB.
- Bias correction removes the per-channel mean error that rounding the
  weights adds: >= 5x smaller at 3-bit weights on Linear, dense conv and
  depthwise conv (zero padding at the borders is what is left there), and the
  corrected model saves and loads unchanged.
"""

import io

import pytest
import torch
import torch.nn as nn

import qext
from conftest import sqnr_db


def _separable(act=nn.ReLU) -> nn.Module:
    """conv -> BN -> act -> depthwise -> BN -> act -> pointwise -> BN -> act -> linear."""
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), act(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), act(),
        nn.Conv2d(16, 8, 1), nn.BatchNorm2d(8), act(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
    ).eval()
    with torch.no_grad():
        # Channels scaled over three decades, as BatchNorm folding of small
        # running variances leaves them.
        m[1].weight.copy_(torch.logspace(-2, 1, 16))
        m[4].weight.copy_(torch.logspace(1, -2, 16))
        for bn in (m[1], m[4], m[7]):
            bn.running_var.uniform_(0.5, 2.0)
            bn.running_mean.uniform_(-0.2, 0.2)
    return m


def _batches(n=4, shape=(8, 3, 8, 8), seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for _ in range(n)]


def test_equalization_keeps_the_float_function_and_evens_ranges():
    model, xs = _separable(), _batches()
    prepared = qext.prepare_static(model, qext.StaticConfig(equalize=True), example_inputs=(xs[0],))
    plain = qext.prepare_static(model, qext.StaticConfig(), example_inputs=(xs[0],))
    x = torch.randn(16, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(prepared(x), expected, rtol=1e-4, atol=1e-5 * expected.abs().max())
    # conv -> depthwise and depthwise -> pointwise (ReLU between); pointwise ->
    # linear has a flatten between: not a pair.
    weights = {n: getattr(prepared, n).weight for n in ("0", "3", "6")}
    before = {n: getattr(plain, n).weight for n in ("0", "3", "6")}

    def spread(t):  # largest / smallest channel range of the first layer's outputs
        r = t.abs().flatten(1).amax(1)
        return (r.max() / r.min()).item()

    assert spread(before["0"]) > 50
    assert spread(weights["0"]) < spread(before["0"]) / 10
    # After convergence each pair's two ranges per channel agree.
    r1 = weights["0"].abs().flatten(1).amax(1)
    r2 = weights["3"].abs().flatten(1).amax(1)  # depthwise: input channel c is output channel c
    assert torch.allclose(r1, r2, rtol=1e-3)


def test_equalization_raises_int8_sqnr_on_badly_scaled_channels():
    model, xs = _separable(), _batches()
    x = torch.randn(64, 3, 8, 8)
    with torch.no_grad():
        ref = model(x)
        plain = qext.quantize_static(model, xs, qext.StaticConfig(), example_inputs=(xs[0],))
        equalized = qext.quantize_static(model, xs, qext.StaticConfig(equalize=True), example_inputs=(xs[0],))
        before, after = sqnr_db(ref, plain(x)), sqnr_db(ref, equalized(x))
    print(f"int8 SQNR: {before:.1f} dB plain, {after:.1f} dB equalized")
    assert after >= before + 5
    assert equalized._qext_metadata["equalized_pairs"] == "2"
    assert plain._qext_metadata["equalized_pairs"] == "0"


def test_equalization_leaves_relu6_pairs_alone():
    model, xs = _separable(nn.ReLU6), _batches()
    q = qext.quantize_static(model, xs, qext.StaticConfig(equalize=True), example_inputs=(xs[0],))
    assert q._qext_metadata["equalized_pairs"] == "0"


def _channel_mean_error(model, quantized, xs):
    with torch.no_grad():
        err = torch.cat([quantized(x) - model(x) for x in xs])
    return err.transpose(0, 1).reshape(err.shape[1], -1).mean(1).abs().mean().item()


# Layers made in the test, after seeding: made at collection they took
# whatever random state the files collected before had left.
@pytest.mark.parametrize("make_layer,shape", [
    (lambda: nn.Linear(64, 32), (64, 64)),
    (lambda: nn.Conv2d(16, 8, 3), (16, 16, 12, 12)),
    (lambda: nn.Conv2d(16, 16, 3, padding=1, groups=16), (16, 16, 12, 12)),
], ids=["linear", "conv", "depthwise"])
def test_bias_correction_removes_the_mean_shift_of_rounded_weights(make_layer, shape, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(make_layer()).eval()
    g = torch.Generator().manual_seed(2)
    # Inputs with clearly non-zero channel means, as after a ReLU.
    offset = torch.linspace(0, 3, shape[1]).view(1, -1, *([1] * (len(shape) - 2)))
    xs = [torch.rand(*shape, generator=g) * 2 + offset for _ in range(4)]
    plain = qext.quantize_static(model, xs, qext.StaticConfig(weight_bits=3), example_inputs=(xs[0],))
    corrected = qext.quantize_static(model, xs, qext.StaticConfig(weight_bits=3, bias_correction=True),
                                     example_inputs=(xs[0],))
    before, after = _channel_mean_error(model, plain, xs), _channel_mean_error(model, corrected, xs)
    print(f"mean per-channel output error: {before:.4f} -> {after:.4f}")
    assert after * 5 <= before
    assert corrected._qext_metadata["bias_correction"] == "true"
    path = tmp_path / "corrected.pt"
    qext.save(corrected, str(path))
    loaded = qext.load(str(path))
    assert torch.equal(loaded(xs[0]), corrected(xs[0]))


def test_bias_correction_skips_layers_calibration_never_reached():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x, use_b: bool = False):
            return self.b(x) if use_b else self.a(x)

    model = Branchy().eval()
    xs = _batches(2, (4, 8))
    prepared = qext.prepare_static(torch.jit.script(model), qext.StaticConfig(bias_correction=True))
    qext.calibrate(prepared, xs)
    q = qext.convert(prepared)
    status = {l.name: (l.status, l.reason) for l in qext.report(q).layers}
    assert status["a"][0] == "int8" and status["b"] == ("float", "not observed during calibration")
    with torch.no_grad():
        assert torch.allclose(q(xs[0], True), model(xs[0], True))


def test_prepared_module_with_accuracy_tools_saves_and_loads():
    model, xs = _separable(), _batches()
    prepared = qext.prepare_static(model, qext.StaticConfig(equalize=True, bias_correction=True),
                                   example_inputs=(xs[0],))
    buffer = io.BytesIO()
    torch.jit.save(prepared, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    qext.calibrate(prepared, xs)
    qext.calibrate(loaded, xs)
    a, b = qext.convert(prepared), qext.convert(loaded)
    assert torch.equal(a(xs[0]), b(xs[0]))
