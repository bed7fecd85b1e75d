"""Static post-training quantization end to end: folding, observers,
calibration, int8 conv/linear/add with int8 tensors flowing between them,
float where needed; accuracy against fp32 (stated bounds) and on real data."""

import math
import sys
from pathlib import Path
from typing import Optional

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import qext
from conftest import run_python, sqnr_db
from models import DenseNetish, LeNet, MobileNetV2ish, RegNetXish, ResNet18ish, randomize_batch_norm

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from train_digits_mlp import fit  # noqa: E402


def calibration(shape, batches=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for _ in range(batches)]


def graph_ops(module):
    return [n.kind() for n in module.graph.nodes()]


def test_lenet_int8_flows_between_layers():
    torch.manual_seed(0)
    model = LeNet().eval()
    q = qext.quantize_static(model, calibration((4, 3, 32, 32)))
    report = qext.report(q)
    assert report.mode == "static"
    assert [(l.name, l.status) for l in report.layers] == [
        ("conv1", "int8"), ("conv2", "int8"), ("fc1", "int8"), ("fc2", "int8"), ("fc3", "int8")]
    ops = graph_ops(q)
    assert ops.count("qext::conv2d_int8") == 2 and ops.count("qext::linear_int8") == 3
    # uint8 flows through max_pool2d and flatten too: float only at the two ends
    assert ops.count("qext::quantize_per_tensor") == 1 and ops.count("qext::dequantize_per_tensor") == 1
    assert "aten::linear" not in ops and "aten::conv2d" not in ops and "aten::relu" not in ops
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        # Bound: output SQNR > 25 dB on held-out inputs from the calibration distribution.
        assert sqnr_db(model(x), q(x)) > 25.0


def test_report_has_output_qparams_and_per_layer_sqnr(tmp_path):
    torch.manual_seed(0)
    model = LeNet().eval()
    data = calibration((4, 3, 32, 32))
    q = qext.quantize_static(model, data)
    layers = qext.report(q).layers
    for layer in layers:
        assert layer.scale > 0 and 0 <= layer.zero_point <= 255
        assert 20.0 < layer.sqnr_db < 60.0  # int8 is neither exact nor broken
    # fc3's output is the model output: its SQNR is the model's on the calibration data.
    with torch.no_grad():
        ref, out = torch.cat([model(x) for x in data]), torch.cat([q(x) for x in data])
    assert layers[-1].sqnr_db == pytest.approx(sqnr_db(ref, out), abs=0.01)
    # the probes used to measure are not left in the model
    assert not any("_probe" in k for k in graph_ops(q))
    qext.save(q, tmp_path / "q.pt")
    assert qext.report(qext.load(tmp_path / "q.pt")).layers == layers
    assert "SQNR dB" in str(qext.report(q))


class ClampedActivations(nn.Module):
    """conv -> ReLU6, conv -> clamp(0.5, 2), conv -> clamp(min=0.2), linear -> hardtanh(-1, 1)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.act1 = nn.ReLU6()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        x = self.act1(self.conv1(x))
        x = torch.clamp(self.conv2(x), 0.5, 2.0)
        x = torch.clamp(self.conv3(x), min=0.2)
        return F.hardtanh(self.fc(torch.flatten(x, 1)), -1.0, 1.0)


def test_relu6_hardtanh_and_clamp_fuse_into_the_layer():
    torch.manual_seed(0)
    model = ClampedActivations().eval()
    q = qext.quantize_static(model, calibration((4, 3, 8, 8)))
    assert qext.report(q).quantized == 4
    ops = graph_ops(q)
    assert "aten::hardtanh" not in ops and "aten::clamp" not in ops
    assert ops.count("qext::quantize_per_tensor") == 1  # int8 from the first conv to the fc
    x = torch.randn(32, 3, 8, 8)
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert sqnr_db(ref, out) > 25.0
    assert out.min() >= -1.0 and out.max() <= 1.0
    # A lower bound above 0 needs the epilogue's clamp: the int8 range always
    # contains 0, so saturation alone would let values in [0, 0.5) through.
    clamped = nn.Sequential(model.conv1, nn.Hardtanh(0.5, 2.0)).eval()
    q = qext.quantize_static(clamped, calibration((4, 3, 8, 8)))
    step = qext.report(q).layers[0].scale
    with torch.no_grad():
        out = q(x)
    assert out.min() >= 0.5 - step and out.max() <= 2.0 + step
    assert sqnr_db(clamped(x).detach(), out) > 25.0


class PoolsAndView(nn.Module):
    """conv -> avg_pool2d -> conv -> max_pool2d -> view -> linear: int8 throughout."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = F.avg_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.view(x.size(0), -1))


class PoolThenRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        y = F.max_pool2d(self.conv1(x), 2)
        return self.conv2(F.relu(y)) + y  # this ReLU follows a pool: not fused, still int8


def test_standalone_relu_runs_on_uint8():
    torch.manual_seed(0)
    model = PoolThenRelu().eval()
    q = qext.quantize_static(model, calibration((4, 3, 16, 16)))
    ops = graph_ops(q)
    assert "aten::relu" not in ops and ops.count("qext::quantize_per_tensor") == 1
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        assert sqnr_db(model(x), q(x)) > 25.0


def test_pools_and_view_run_on_uint8():
    torch.manual_seed(0)
    model = PoolsAndView().eval()
    q = qext.quantize_static(model, calibration((4, 3, 16, 16)))
    ops = graph_ops(q)
    assert "qext::avg_pool2d_int8" in ops and "qext::max_pool2d_int8" in ops
    assert ops.count("qext::quantize_per_tensor") == 1 and ops.count("qext::dequantize_per_tensor") == 1
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        assert sqnr_db(model(x), q(x)) > 25.0


class CatAndPermute(nn.Module):
    """Two conv branches concatenated on channels, a permute, a conv."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 6, 1)
        self.c = nn.Conv2d(10, 8, 3, padding=1)

    def forward(self, x):
        y = torch.cat([F.relu(self.a(x)), self.b(x) * 1.0], dim=1)  # b's output goes through a float op
        return self.c(y.permute(0, 1, 3, 2))


def test_cat_requantizes_inputs_and_permute_passes_int8():
    torch.manual_seed(0)
    model = CatAndPermute().eval()
    q = qext.quantize_static(model, calibration((4, 3, 8, 8)))
    report = qext.report(q)
    assert [(l.name, l.status) for l in report.layers if l.kind == "cat"] == [("cat@0", "int8")]
    # the float op in between is reported, with why
    assert [(l.name, l.status, l.reason) for l in report.layers if l.kind == "mul"] == [
        ("mul@0", "float", "no int8 version: runs in float on dequantized int8 data")]
    ops = graph_ops(q)
    assert "qext::cat_int8" in ops and "aten::cat" not in ops
    x = torch.randn(8, 3, 8, 8)
    with torch.no_grad():
        assert sqnr_db(model(x), q(x)) > 25.0


class Conv1dNet(nn.Module):
    """Conv1d + BatchNorm1d + ReLU, a strided dilated depthwise Conv1d, linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(4, 16, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm1d(16)
        self.conv2 = nn.Conv1d(16, 16, 3, stride=2, padding=2, dilation=2, groups=16)
        self.fc = nn.Linear(16 * 16, 5)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return self.fc(torch.flatten(self.conv2(x), 1))


def test_conv1d_with_batch_norm_runs_int8():
    torch.manual_seed(0)
    model = Conv1dNet().eval()
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.2, 0.2)
        model.bn1.running_var.uniform_(0.5, 1.5)
    q = qext.quantize_static(model, calibration((4, 4, 32)))
    assert [(l.name, l.kind, l.status) for l in qext.report(q).layers] == [
        ("conv1", "conv1d", "int8"), ("conv2", "conv1d", "int8"), ("fc", "linear", "int8")]
    ops = graph_ops(q)
    assert "aten::batch_norm" not in ops and "aten::conv1d" not in ops
    assert ops.count("qext::quantize_per_tensor") == 1
    x = torch.randn(8, 4, 32)
    with torch.no_grad():
        assert sqnr_db(model(x), q(x)) > 25.0


def test_resnet18ish_folds_bn_and_quantizes_residual_adds():
    torch.manual_seed(1)
    model = randomize_batch_norm(ResNet18ish())
    q = qext.quantize_static(model, calibration((2, 3, 64, 64), batches=6))
    report = qext.report(q)
    kinds = {}
    for l in report.layers:
        kinds.setdefault(l.kind, []).append(l.status)
    assert kinds["conv2d"] == ["int8"] * 20  # stem + 16 block convs + 3 downsample
    assert kinds["add"] == ["int8"] * 8
    assert kinds["linear"] == ["int8"]
    ops = graph_ops(q)
    assert "aten::batch_norm" not in ops
    # uint8 all the way: stem ReLU fused (despite BatchNorm's shape check on
    # the conv output), int8 max-pool and global average pool
    assert ops.count("qext::quantize_per_tensor") == 1 and ops.count("qext::dequantize_per_tensor") == 1
    assert "qext::max_pool2d_int8" in ops and "qext::adaptive_avg_pool2d_int8" in ops
    assert "aten::relu" not in ops and "aten::max_pool2d" not in ops
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        # Bound: SQNR > 15 dB through 21 int8 layers with random weights.
        assert sqnr_db(model(x), q(x)) > 15.0
    # the float model is untouched
    assert isinstance(model.layers[0].bn1, nn.BatchNorm2d) and model.layers[0].conv1.weight.numel() > 0


@pytest.mark.parametrize("make_model", [ResNet18ish, lambda: MobileNetV2ish(classes=10), lambda: RegNetXish(classes=10)],
                         ids=["resnet18", "mobilenet_v2", "regnet_x"])
def test_7bit_activations_calibrate_onto_0_127_and_every_path_agrees(make_model):
    """activation_bits=7 (torch.ao x86's reduce_range): every calibrated range
    maps onto [0, 127]; with 7-bit weights AVX2 sums two k groups per
    widening wherever an input's bytes stay <= 127, and its depthwise and
    grouped kernels multiply bytes (vpmaddubsw). Inputs 4x past the calibrated range
    reach 255: the same bits on every path either way."""
    torch.manual_seed(1)
    model = randomize_batch_norm(make_model())
    data = calibration((2, 3, 64, 64), batches=6)
    x = torch.randn(2, 3, 64, 64)
    config = qext.StaticConfig(weight_bits=7, activation_bits=7)
    before = qext.active_isa()
    outputs = {}
    try:
        for isa in qext.supported_isas():
            qext.set_isa(isa)
            q = qext.quantize_static(model, data, config)
            with torch.no_grad():
                outputs[isa] = (q(x), q(4 * x))
    finally:
        qext.set_isa(before)
    report = qext.report(q)
    assert q._qext_metadata["activation_bits"] == "7" and q._qext_metadata["weight_bits"] == "7"
    assert all(0 <= l.zero_point <= 127 for l in report.layers)
    first = outputs[qext.supported_isas()[0]]
    for isa, (out, out_far) in outputs.items():
        assert torch.equal(out, first[0]) and torch.equal(out_far, first[1]), isa
    with torch.no_grad():
        # Bound: as at 8 bits (SQNR > 15 dB through 21 int8 layers, random weights).
        assert sqnr_db(model(x), first[0]) > 15.0
    with pytest.raises(ValueError, match="activation_bits must be 8 or 7"):
        qext.StaticConfig(activation_bits=6)._to_cpp()


def test_mobilenet_v2_depthwise_layers_run_int8(isa):
    """MobileNetV2's 17 depthwise convs take the depthwise kernel of each path;
    everything stays int8 and close to float."""
    torch.manual_seed(2)
    model = randomize_batch_norm(MobileNetV2ish(classes=10))
    q = qext.quantize_static(model, calibration((2, 3, 64, 64), batches=4))
    report = qext.report(q)
    assert all(l.status == "int8" for l in report.layers), [(l.name, l.reason) for l in report.layers if l.status != "int8"]
    assert sum(l.kind == "conv2d" for l in report.layers) == 52
    ops = graph_ops(q)
    assert ops.count("qext::quantize_per_tensor") == 1 and ops.count("qext::dequantize_per_tensor") == 1
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        # Bound: SQNR > 15 dB through 53 int8 layers with random weights.
        assert sqnr_db(model(x), q(x)) > 15.0


def test_regnet_grouped_convs_run_int8(isa):
    """RegNetX-200MF's layout (groups of 8 channels): its grouped convs take the
    grouped kernel where the path packs them; all int8 and close to float."""
    torch.manual_seed(3)
    model = randomize_batch_norm(RegNetXish(classes=10, group_width=8, depths=(1, 1, 4, 7), widths=(24, 56, 152, 368)))
    q = qext.quantize_static(model, calibration((2, 3, 64, 64), batches=4))
    report = qext.report(q)
    assert all(l.status == "int8" for l in report.layers), [(l.name, l.reason) for l in report.layers if l.status != "int8"]
    ops = graph_ops(q)
    assert ops.count("qext::quantize_per_tensor") == 1 and ops.count("qext::dequantize_per_tensor") == 1
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        # Bound: SQNR > 15 dB through 13 residual blocks with random weights.
        assert sqnr_db(model(x), q(x)) > 15.0


def test_three_steps_equal_one_and_survive_save_load(tmp_path):
    torch.manual_seed(2)
    model = LeNet().eval()
    data = calibration((4, 3, 32, 32))
    prepared = qext.prepare_static(model, qext.StaticConfig(observer="histogram", histogram_method="percentile"))
    assert sum(k == "qext::observe" for k in graph_ops(prepared)) > 0
    # a prepared module saves and loads with its observers
    path = tmp_path / "prepared.pt"
    qext.save(prepared, path)
    prepared = qext.load(path)
    assert qext.calibrate(prepared, data) == len(data)
    q = qext.convert(prepared)
    one_shot = qext.quantize_static(model, data, qext.StaticConfig(observer="histogram"))
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(q(x), one_shot(x))
    out = tmp_path / "q.pt"
    qext.save(q, out)
    torch.save({"x": x, "y": q(x)}, tmp_path / "io.pt")
    result = run_python(
        "import torch, qext\n"
        f"m = qext.load({str(out)!r}); d = torch.load({str(tmp_path / 'io.pt')!r})\n"
        "assert torch.equal(m(d['x']), d['y']); print(qext.report(m).quantized)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "5"


def test_exclude_keeps_layers_float():
    torch.manual_seed(3)
    model = LeNet().eval()
    q = qext.quantize_static(model, calibration((2, 3, 32, 32)), qext.StaticConfig(exclude=["fc3", "conv1"]))
    status = {l.name: (l.status, l.reason) for l in qext.report(q).layers}
    assert status["fc3"] == ("float", "excluded by pattern 'fc3'")
    assert status["conv1"][0] == "float" and status["conv2"][0] == "int8"
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert sqnr_db(model(x), q(x)) > 25.0


def test_bad_calibration_inputs():
    model = LeNet().eval()
    prepared = qext.prepare_static(model)
    with pytest.raises(ValueError, match="never calibrated"):
        qext.convert(prepared)
    with pytest.raises(ValueError, match="calibration data is empty"):
        qext.calibrate(prepared, [])
    with pytest.raises(ValueError, match="NaN or Inf"):
        qext.calibrate(prepared, [torch.full((1, 3, 32, 32), float("nan"))])
    with pytest.raises(ValueError, match="calibration batch 1 failed"):
        qext.calibrate(prepared, [torch.randn(1, 3, 32, 32), torch.randn(1, 3, 31, 31)])
    with pytest.raises(TypeError, match="tensor or a tuple of tensors"):
        qext.calibrate(prepared, ["not a tensor"])
    with pytest.raises(ValueError, match="not prepared"):
        qext.convert(torch.jit.script(model))
    with pytest.raises(ValueError, match="calibration data is empty"):
        qext.quantize_static(model, [])


def test_model_without_quantizable_layers_converts():
    model = nn.Sequential(nn.Conv3d(2, 2, 1), nn.Tanh()).eval()  # no int8 Conv3d
    q = qext.quantize_static(model, [torch.randn(1, 2, 2, 4, 4)])
    (row,) = qext.report(q).layers  # the tanh: a table op is only worth it on int8 input
    assert row.kind == "tanh" and row.status == "float" and "input is float" in row.reason
    x = torch.randn(1, 2, 2, 4, 4)
    with torch.no_grad():
        assert torch.equal(q(x), model(x))


def test_real_digits_accuracy_within_half_a_point():
    """A small CNN trained here on scikit-learn's real 8x8 digits; int8 top-1
    must stay within 0.5 points of fp32 on the held-out 360 digits."""
    datasets = pytest.importorskip("sklearn.datasets", reason="pip install scikit-learn (scripts/setup.sh does)")
    digits = datasets.load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    xtr, ytr, xte, yte = x[:1437], y[:1437], x[1437:], y[1437:]
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    fit(model, xtr, ytr, epochs=8, lr=3e-3)
    q = qext.quantize_static(model, [xtr[i : i + 100] for i in range(0, 500, 100)])
    assert qext.report(q).quantized == 4
    with torch.no_grad():
        acc_f = (model(xte).argmax(1) == yte).float().mean().item()
        acc_q = (q(xte).argmax(1) == yte).float().mean().item()
    print(f"digits CNN: fp32 {acc_f:.2%}, int8 {acc_q:.2%}")
    assert acc_f > 0.85
    assert acc_q >= acc_f - 0.005


class HelperMethod(nn.Module):
    """torchvision's layout: forward calls a scripted helper method."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def _forward_impl(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    def forward(self, x):
        return self._forward_impl(x)


class UntakenBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.small = nn.Conv2d(3, 8, 3)
        self.large = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        if x.shape[0] > 100:
            return self.large(x)
        return self.small(x)


class LoopCarried(nn.Module):
    """A quantizable layer inside a loop, its input carried across iterations."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        for _ in range(3):
            x = torch.relu(self.fc(x))
        return x


class IntegerAdds(nn.Module):
    """Index arithmetic (Long + Long) and a float64 0-dim constant next to
    float layers: Hugging Face models are full of both."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(40, 8)
        self.fc = nn.Linear(8, 8)

    def forward(self, ids):
        positions = ids + ids
        h = self.fc(self.emb(positions) + self.emb(ids))
        return h + torch.tensor(0.5, dtype=torch.float64)


def test_helper_methods_and_untaken_branches_stay_float_with_a_reason():
    torch.manual_seed(4)
    model = HelperMethod().eval()
    data = calibration((2, 3, 8, 8))
    q = qext.quantize_static(model, data)
    rows = {l.name: l for l in qext.report(q).layers}
    assert rows["conv"].status == "int8" and rows["fc"].status == "int8"  # forward runs them int8
    with torch.no_grad():
        assert sqnr_db(model(data[0]), q(data[0])) > 25.0
        assert sqnr_db(model(data[0]), q._forward_impl(data[0])) > 60.0  # the helper on its own: float
    branch = UntakenBranch().eval()
    q = qext.quantize_static(branch, data)
    rows = {l.name: l for l in qext.report(q).layers}
    assert rows["small"].status == "int8"
    assert rows["large"].status == "float" and rows["large"].reason == "not observed during calibration"
    big = torch.randn(101, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(q(big), branch(big), atol=1e-5)  # the float branch still runs


def test_layers_inside_loops(isa):
    torch.manual_seed(5)
    model = LoopCarried().eval()
    data = [torch.randn(4, 8) for _ in range(4)]
    for example in (None, (data[0],)):
        q = qext.quantize_static(model, data, example_inputs=example)
        assert qext.report(q).layers[0].status == "int8"
        with torch.no_grad():
            assert sqnr_db(model(data[0]), q(data[0])) > 25.0


def test_integer_and_float64_values_are_not_quantized():
    torch.manual_seed(6)
    model = IntegerAdds().eval()
    data = [torch.randint(0, 19, (2, 5)) for _ in range(3)]
    for example in (None, (data[0],)):
        q = qext.quantize_static(model, data, example_inputs=example)
        rows = qext.report(q).layers
        adds = [l for l in rows if l.kind == "add"]
        reasons = {l.reason for l in adds if l.status == "float"}
        assert any("Long at run time" in r for r in reasons), reasons
        assert any("Double at run time" in r for r in reasons), reasons
        assert [l.status for l in rows if l.name == "fc"] == ["int8"]
        with torch.no_grad():
            out = q(data[0])
            assert out.dtype == model(data[0]).dtype
            assert sqnr_db(model(data[0]).float(), out.float()) > 25.0


def test_calibration_that_reaches_no_observer_is_an_error():
    prepared = qext.prepare_static(UntakenBranch().eval())
    with pytest.raises((RuntimeError, ValueError), match="never calibrated"):
        qext.convert(prepared)


def test_empty_tensors_during_calibration_are_skipped():
    class EmptySide(nn.Module):
        """The second layer sees an empty batch (an empty cache, say)."""

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.side = nn.Linear(8, 8)

        def forward(self, x):
            return self.fc(x), self.side(x[:0])

    torch.manual_seed(7)
    model = EmptySide().eval()
    q = qext.quantize_static(model, [torch.randn(4, 8) for _ in range(3)])
    rows = {l.name: l for l in qext.report(q).layers}
    assert rows["fc"].status == "int8"
    assert rows["side"].status == "float" and rows["side"].reason == "not observed during calibration"
    x = torch.randn(2, 8)
    with torch.no_grad():
        assert q(x)[1].shape == (0, 8) and sqnr_db(model(x)[0], q(x)[0]) > 25.0


class ModernActivations(nn.Module):
    """MobileNetV3 / EfficientNet / transformer activations after convs."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.c3 = nn.Conv2d(16, 16, 1)
        self.c4 = nn.Conv2d(16, 16, 1)
        self.c5 = nn.Conv2d(16, 8, 1)
        self.hardswish = nn.Hardswish()

    def forward(self, x):
        x = self.hardswish(F.max_pool2d(self.c1(x), 3, 1, 1))  # a table after a pass-through op
        x = F.silu(self.c2(x))
        x = torch.sigmoid(self.c3(x))
        x = F.hardsigmoid(self.c4(x)) + torch.tanh(x)
        return F.gelu(self.c5(x), approximate="tanh")


def test_elementwise_activations_run_as_int8_tables(isa):
    torch.manual_seed(8)
    model = randomize_batch_norm(ModernActivations())
    q = qext.quantize_static(model, calibration((2, 3, 16, 16), batches=4))
    rows = {l.name: l for l in qext.report(q).layers}
    for name in ("hardswish@0", "silu@0", "sigmoid@0", "hardsigmoid@0", "tanh@0", "gelu@0"):
        assert rows[name].status == "int8", rows
    ops = graph_ops(q)
    # uint8 flows from the first conv to the last activation
    assert ops.count("qext::lut_u8") == 6
    assert ops.count("qext::quantize_per_tensor") == 1 and ops.count("qext::dequantize_per_tensor") == 1
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        # Bound: one uint8 step per table plus the convs' rounding: SQNR > 25 dB.
        assert sqnr_db(model(x), q(x)) > 25.0


def _layer_norm_int8_rule(q, s, z, shape, weight, bias, eps, so, zo):
    """The documented rule: exact integer row sums, float64 statistics, float per value."""
    d = math.prod(shape)
    v = (q.long() - z).reshape(-1, d)
    mean = v.sum(1).double() / d
    var = ((v * v).sum(1).double() / d - mean * mean).clamp_min(0)
    rstd = (1.0 / torch.sqrt(var + eps / (s * s))).float()
    y = (v.float() - mean.float().unsqueeze(1)) * rstd.unsqueeze(1)
    if weight is not None:
        y = y * weight.reshape(1, d)
    if bias is not None:
        y = y + bias.reshape(1, d)
    return qext.quantize(y, torch.tensor(so), torch.tensor(zo)).reshape(q.shape)


@pytest.mark.parametrize("shape,norm,affine", [((3, 7, 64), [64], True), ((2, 5, 3, 8), [3, 8], True),
                                               ((4, 1), [1], False), ((6, 768), [768], True)])
def test_layer_norm_int8_follows_its_rule_and_float_layer_norm(shape, norm, affine):
    g = torch.Generator().manual_seed(3)
    q = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    s, z, so, zo, eps = 0.04, 131, 0.02, 120, 1e-5
    weight = torch.randn(norm, generator=g) if affine else None
    bias = torch.randn(norm, generator=g) if affine else None
    got = torch.ops.qext.layer_norm_int8(q, s, z, norm, weight, bias, eps, so, zo)
    assert torch.equal(got, _layer_norm_int8_rule(q, s, z, norm, weight, bias, eps, so, zo))
    # Against float LayerNorm of the dequantized input: at most one step, rarely.
    real = qext.dequantize(q, torch.tensor(s), torch.tensor(z))
    ref = qext.quantize(F.layer_norm(real, norm, weight, bias, eps), torch.tensor(so), torch.tensor(zo))
    diff = (got.int() - ref.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01
    with pytest.raises(RuntimeError, match="must be the last dimensions"):
        torch.ops.qext.layer_norm_int8(q, s, z, [5], None, None, eps, so, zo)
    with pytest.raises(RuntimeError, match="expected uint8"):
        torch.ops.qext.layer_norm_int8(real, s, z, norm, None, None, eps, so, zo)


def test_lut_op_is_a_table_lookup_keeping_the_layout(isa):
    g = torch.Generator().manual_seed(9)
    table = torch.randint(0, 256, (256,), dtype=torch.uint8, generator=g)
    x = torch.randint(0, 256, (2, 5, 7, 3), dtype=torch.uint8, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.ops.qext.lut_u8(x, table)
    assert torch.equal(y, table[x.long()]) and y.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(RuntimeError, match=r"a uint8 table \[256\] or \[C, 256\]"):
        torch.ops.qext.lut_u8(x, table[:10])


class SqueezeExcite(nn.Module):
    """MobileNetV3 / EfficientNet's SE block: x * hardsigmoid(fc(pool(x)))."""

    def __init__(self, c=16):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.reduce = nn.Conv2d(c, c // 4, 1)
        self.expand = nn.Conv2d(c // 4, c, 1)
        self.out = nn.Conv2d(c, 8, 1)

    def forward(self, x):
        x = F.hardswish(self.conv(x))
        gate = F.hardsigmoid(self.expand(F.relu(self.reduce(F.adaptive_avg_pool2d(x, 1)))))
        return self.out(x * gate)


def test_squeeze_excite_multiplies_in_int8(isa):
    torch.manual_seed(10)
    model = SqueezeExcite().eval()
    q = qext.quantize_static(model, calibration((2, 3, 12, 12), batches=4))
    rows = {l.name: l for l in qext.report(q).layers}
    assert rows["mul@0"].status == "int8" and all(l.status == "int8" for l in rows.values()), rows
    ops = graph_ops(q)
    assert ops.count("qext::mul_int8") == 1
    assert ops.count("qext::quantize_per_tensor") == 1 and ops.count("qext::dequantize_per_tensor") == 1
    x = torch.randn(3, 3, 12, 12)
    with torch.no_grad():
        assert sqnr_db(model(x), q(x)) > 25.0


def _mul_rule(a, sa, za, b, sb, zb, so, zo):
    """qext::mul_int8's rule: one float product of the dequantized operands, quantized."""
    return torch.ops.qext.quantize_per_tensor(
        (torch.ops.qext.dequantize_per_tensor(a, sa, za) * torch.ops.qext.dequantize_per_tensor(b, sb, zb)).contiguous(),
        so, zo)


CL = torch.channels_last
MUL_SHAPES = [  # (a's shape, a channels-last?, b's shape): SE gates, either order, any broadcast
    ((2, 72, 9, 7), True, (2, 72, 1, 1)),
    ((2, 40, 5, 5), True, (1, 40, 1, 1)),
    ((3, 24, 6, 5), False, (3, 24, 1, 1)),
    ((1, 17, 3, 3), False, (1, 17, 1, 1)),
    ((2, 33, 1, 1), False, (2, 33, 4, 5)),  # the gate first
    ((2, 16, 5, 6), True, (16, 1, 1)),  # ConvNeXt's layer scale
    ((2, 16, 5, 6), False, (16, 1, 1)),
    ((2, 3, 5, 6), True, (5, 1)),  # not a gate
    ((2, 6, 5, 5), True, (2, 6, 5, 5)),
    ((2, 1, 5, 5), False, (1, 6, 1, 1)),  # both broadcast
    ((4, 70), False, (70,)),
    ((3, 5, 7), False, (3, 5, 7)),
    ((0, 8, 2, 2), False, (1, 8, 1, 1)),
]


@pytest.mark.parametrize("a_shape,channels_last,b_shape", MUL_SHAPES)
def test_mul_op_broadcasts_and_follows_the_scalar_rules(isa, a_shape, channels_last, b_shape):
    g = torch.Generator().manual_seed(11)
    a = torch.randint(0, 256, a_shape, dtype=torch.uint8, generator=g)
    b = torch.randint(0, 256, b_shape, dtype=torch.uint8, generator=g)
    if channels_last:
        a = a.contiguous(memory_format=CL)
    for sa, za, sb, zb, so, zo in [(0.02, 7, 0.01, 128, 0.005, 100), (0.5, 0, 1.0, 255, 1.0, 128),
                                   (0.013, 255, 0.0041, 0, 0.0007, 0)]:
        got = torch.ops.qext.mul_int8(a, sa, za, b, sb, zb, so, zo)
        want = _mul_rule(a, sa, za, b, sb, zb, so, zo)
        assert got.shape == want.shape and torch.equal(got, want), (sa, za, sb, zb, so, zo)
    if channels_last:
        assert got.is_contiguous(memory_format=CL)


class SamePadding(nn.Module):
    """Convs with padding='same' / 'valid' (F.conv2d's string overload)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding="same", dilation=2)
        self.b = nn.Conv2d(8, 8, 5, padding="same")
        self.c = nn.Conv2d(8, 8, 3, padding="valid")
        self.d = nn.Conv1d(8, 4, 5, padding="same")
        self.even = nn.Conv2d(8, 8, 4, padding="same")  # needs uneven padding

    def forward(self, x):
        y = self.c(F.relu(self.b(F.relu(self.a(x)))))
        return self.d(y.mean(2)).sum(), self.even(y)


def test_same_and_valid_padding_run_int8():
    torch.manual_seed(0)
    model = SamePadding().eval()
    data = [torch.randn(2, 3, 16, 16) for _ in range(3)]
    q = qext.quantize_static(model, data)
    rows = {layer.name: layer for layer in qext.report(q).layers}
    for name in ("a", "b", "c", "d"):
        assert rows[name].status == "int8", (name, rows[name].reason)
    assert rows["even"].status == "float" and "uneven padding" in rows["even"].reason
    with torch.no_grad():
        for got, want in zip(q(data[0]), model(data[0])):
            assert got.shape == want.shape
            assert sqnr_db(want, got) > 25


def test_observer_options_are_the_cpp_enums_or_their_names():
    model = LeNet().eval()
    with pytest.raises(ValueError, match=r"StaticConfig.observer must be a qext.Observer or one of "
                                         r"\['histogram', 'min_max', 'moving_average'\]"):
        qext.prepare_static(model, qext.StaticConfig(observer="median"))
    with pytest.raises(ValueError, match="StaticConfig.histogram_method must be a qext.HistogramMethod or one of"):
        qext.prepare_static(model, qext.StaticConfig(observer="histogram", histogram_method="kl"))
    with pytest.raises(ValueError, match="StaticConfig.observer must be"):  # a member of another enum
        qext.prepare_static(model, qext.StaticConfig(observer=qext.HistogramMethod.mse))
    by_name = qext.StaticConfig(observer="histogram", histogram_method="mse")._to_cpp()
    by_enum = qext.StaticConfig(observer=qext.Observer.histogram, histogram_method=qext.HistogramMethod.mse)._to_cpp()
    for cfg in (by_name, by_enum):
        assert cfg.observer == qext.Observer.histogram and cfg.histogram_method == qext.HistogramMethod.mse
    assert qext.Observer is qext._C.Observer  # the bound C++ enum itself
    dyn = qext.DynamicConfig(weight_granularity=qext.Granularity.per_tensor)._to_cpp()
    assert dyn.weight_granularity == qext.Granularity.per_tensor
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0)) ** 3
    ranges = []
    for kind, method in ((qext.Observer.histogram, qext.HistogramMethod.entropy), ("histogram", "entropy"),
                         ("histogram", "percentile")):
        obs = qext.make_observer(kind, method=method, bins=256)
        obs.observe(x)
        ranges.append(obs.min_max())
    assert ranges[0] == ranges[1] != ranges[2]


class OutlierMlp(nn.Module):
    """fc2's input has one feature 300x the others: one activation scale for
    that tensor crushes the rest, so fc2 is the layer to keep float."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 8)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        h = h * torch.cat([torch.full((1,), 300.0), torch.ones(31)])
        return self.fc3(torch.relu(self.fc2(h)))


def test_accuracy_aware_mode_keeps_the_most_sensitive_layer_float():
    torch.manual_seed(0)
    model = OutlierMlp().eval()
    calib = [torch.randn(16, 16) for _ in range(4)]
    held_out = torch.randn(64, 16)
    with torch.no_grad():
        ref = model(held_out)

    def metric(m):  # higher is better: minus the relative error to the float outputs
        with torch.no_grad():
            return -((m(held_out) - ref).norm() / ref.norm()).item()

    plain = qext.quantize_static(model, calib)
    assert -metric(plain) > 0.02  # the outlier costs the plain int8 model
    q = qext.quantize_static_accuracy_aware(model, calib, metric, max_drop=0.02)
    assert -metric(q) <= 0.02
    rows = {layer.name: layer for layer in qext.report(q).layers}
    assert rows["fc2"].status == "float" and "excluded" in rows["fc2"].reason
    assert rows["fc1"].status == "int8"
    # a budget nothing meets stops at max_float_layers
    capped = qext.quantize_static_accuracy_aware(model, calib, metric, max_drop=0.0, max_float_layers=1)
    assert sum("excluded" in layer.reason for layer in qext.report(capped).layers) == 1
    with pytest.raises(ValueError, match="max_drop"):
        qext.quantize_static_accuracy_aware(model, calib, metric, max_drop=-1)

    def broken_metric(m):  # raised inside the C++ search: reaches the caller as itself
        if isinstance(m, torch.jit.RecursiveScriptModule) and hasattr(m, "_qext_report"):
            raise KeyError("held-out set missing")
        return 0.0

    with pytest.raises(KeyError, match="held-out set missing"):
        qext.quantize_static_accuracy_aware(model, calib, broken_metric, max_drop=0.0)


class TinyEncoder(nn.Module):
    """Two nn.TransformerEncoderLayers (attention, FFN, LayerNorm, dropout) and a head."""

    def __init__(self, d=64, heads=4, ff=256):
        super().__init__()
        self.layers = nn.ModuleList([nn.TransformerEncoderLayer(d, heads, ff, batch_first=True) for _ in range(2)])
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.head(x.mean(1))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # nn.MultiheadAttention checks shapes in Python
def test_static_transformer_encoder_int8_linears_and_uint8_through_layout_ops():
    """BERT-class static: every Linear int8 (in_proj, out_proj, FFN, head),
    residual adds int8, LayerNorm uint8 in and out (qext::layer_norm_int8),
    attention softmax float; eval dropouts, views and permutes pass uint8
    through instead of costing a dequantize / quantize pair each."""
    torch.manual_seed(0)
    model = TinyEncoder().eval()
    calib = [torch.randn(4, 16, 64) for _ in range(4)]
    traced = torch.jit.trace(model, calib[0], check_trace=False)
    q = qext.quantize_static(traced, calib)
    rows = {layer.name: layer for layer in qext.report(q).layers}
    for i in range(2):
        for name in ("self_attn.in_proj_weight", "self_attn.out_proj", "linear1", "linear2"):
            assert rows[f"layers.{i}.{name}"].status == "int8", rows[f"layers.{i}.{name}"]
    assert rows["head"].status == "int8"
    assert not any(name.startswith(("dropout", "view")) for name in rows), sorted(rows)
    for i in range(2):
        for norm in ("norm1", "norm2"):
            assert rows[f"layers.{i}.{norm}"].kind == "layer_norm" and rows[f"layers.{i}.{norm}"].status == "int8"
    kinds = [n.kind() for n in q.graph.nodes()]
    assert kinds.count("qext::linear_int8") == 9 and kinds.count("qext::add_int8") == 4
    assert kinds.count("qext::layer_norm_int8") == 4 and "aten::layer_norm" not in kinds
    # The dropouts left in the traced eval graph read int8 data directly.
    for node in q.graph.nodes():
        if node.kind() == "aten::dropout":
            assert next(node.inputs()).node().kind() != "qext::dequantize_per_tensor"
    x = torch.randn(4, 16, 64)
    with torch.no_grad():
        want, got = model(x), q(x)
    assert F.cosine_similarity(want.flatten(), got.flatten(), 0) > 0.999


class DropoutInTraining(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x):
        return self.b(F.dropout(self.a(x), p=0.0, training=True))


def test_dropout_in_training_form_is_not_passed_through():
    torch.manual_seed(0)
    model = DropoutInTraining().eval()
    calib = [torch.randn(5, 8) for _ in range(3)]
    q = qext.quantize_static(torch.jit.script(model), calib)
    drop = next(n for n in q.graph.nodes() if n.kind() == "aten::dropout")
    assert next(drop.inputs()).node().kind() == "qext::dequantize_per_tensor"  # train=True is not the identity
    x = torch.randn(5, 8)
    with torch.no_grad():
        assert sqnr_db(model(x), q(x)) > 20  # (structure, not accuracy: 3 calibration batches)


@pytest.mark.parametrize("how", ["script", "trace"])
def test_densenet_layout_scripted_or_traced(how):
    """DenseNet (issue 13): each dense layer cats a list that grows by
    `append`; scripted, all the layers share one class. Every cat reads the
    list as it is at that point (the scripted conversion used to read only the
    first element and crashed: "running_mean should contain 32 elements not
    48"), and a pool feeding several cats runs once."""
    torch.manual_seed(0)
    model = DenseNetish().eval()
    randomize_batch_norm(model)
    calib = [torch.randn(2, 3, 64, 64) for _ in range(3)]
    source = torch.jit.script(model) if how == "script" else torch.jit.trace(model, calib[0])
    q = qext.quantize_static(source, calib)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert sqnr_db(model(x), q(x)) > 30
    cats = [n for n in q.graph.nodes() if n.kind() == "qext::cat_int8"]
    # Per block of 3 layers: cats of 1, 2, 3 tensors feeding the layers, then 4 for the block's output.
    assert sorted(len(list(next(c.inputs()).node().inputs())) for c in cats) == [1, 1, 2, 2, 3, 3, 4, 4]
    assert [n.kind() for n in q.graph.nodes()].count("qext::max_pool2d_int8") == 1


class _CatBatchNorm(nn.Module):
    """A BatchNorm no conv precedes (DenseNet's norm after a cat), ReLU after it."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 1)
        self.norm = nn.BatchNorm2d(16)
        self.out = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        return self.out(torch.relu(self.norm(torch.cat([self.a(x), self.b(x)], 1))))


@pytest.mark.parametrize("how", ["script", "trace"])
def test_unfused_batch_norm_runs_as_a_per_channel_table(how):
    """Issue 13: an eval BatchNorm that cannot fold into a conv (+ its ReLU)
    becomes one uint8 table per channel: int8 flows from the cat through it
    to the next conv (one quantize and one dequantize in the graph), and its
    output is quantize(relu(bn(dequantize(q)))) exactly."""
    torch.manual_seed(0)
    model = randomize_batch_norm(_CatBatchNorm().eval())
    calib = calibration((4, 3, 8, 8), batches=4)
    source = torch.jit.script(model) if how == "script" else torch.jit.trace(model, calib[0])
    q = qext.quantize_static(source, calib)
    rows = {l.name: l for l in qext.report(q).layers}
    assert rows["norm"].kind == "batch_norm" and rows["norm"].status == "int8"
    ops = graph_ops(q)
    assert ops.count("qext::quantize_per_tensor") == 1 and ops.count("qext::dequantize_per_tensor") == 1
    assert "aten::batch_norm" not in ops and ops.count("qext::lut_u8") == 1
    x = torch.randn(16, 3, 8, 8)
    with torch.no_grad():
        assert sqnr_db(model(x), q(x)) > 30
    # The table is the rule: check it against float BatchNorm on every code.
    lut = next(n for n in q.graph.nodes() if n.kind() == "qext::lut_u8")
    table = lut.inputsAt(1).toIValue()
    cat = rows["cat@0"]
    codes = torch.arange(256, dtype=torch.uint8).view(1, 1, 256).expand(1, 16, 256)
    real = qext.dequantize(codes, torch.tensor(cat.scale), torch.tensor(cat.zero_point)).unsqueeze(-1)
    with torch.no_grad():
        expected = qext.quantize(torch.relu(model.norm(real)), torch.tensor(rows["norm"].scale),
                                 torch.tensor(rows["norm"].zero_point))
    assert torch.equal(table, expected.view(16, 256))


def test_batch_norm_alone_between_float_ops_stays_float():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Tanh()).eval()
    randomize_batch_norm(model)
    q = qext.quantize_static(model, calibration((2, 3, 4, 4), batches=2))
    row = next(l for l in qext.report(q).layers if l.kind == "batch_norm")
    assert row.status == "float" and "its input is float" in row.reason


def test_static_scripted_transformer_encoder_leaves_the_native_fast_path():
    """Scripted nn.TransformerEncoder picks a fused native op at run time in
    eval mode (torch._transformer_encoder_layer_fwd), which bypassed every
    observer: 0 int8 layers. prepare keeps the decomposed path instead."""
    from models import transformer_encoder

    torch.manual_seed(0)
    model = transformer_encoder(64, 4, 128, 2)
    calib = [torch.randn(4, 16, 64) for _ in range(3)]
    q = qext.quantize_static(model, calib)
    rows = {l.name: l for l in qext.report(q).layers}
    for i in range(2):
        for name in ("self_attn.in_proj_weight", "self_attn.out_proj", "linear1", "linear2", "norm1", "norm2"):
            assert rows[f"layers.{i}.{name}"].status == "int8", rows[f"layers.{i}.{name}"]
    assert "aten::_transformer_encoder_layer_fwd" not in str(q.graph)
    x = torch.randn(4, 16, 64)
    with torch.no_grad():
        assert F.cosine_similarity(model(x).flatten(), q(x).flatten(), 0) > 0.999


class LazyOffset(nn.Module):
    """An Optional attribute its forward fills on the first call: its `is None`
    test must not be folded as the None it holds at prepare time."""

    offset: Optional[torch.Tensor]

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.offset = None

    def forward(self, x):
        y = self.conv(x)
        offset = self.offset
        if offset is None:
            self.offset = torch.full((1,), 100.0)
            return y
        return y + offset


def test_an_attribute_the_forward_assigns_is_not_folded_as_none():
    torch.manual_seed(0)
    data = [torch.randn(1, 3, 8, 8) for _ in range(2)]
    q = qext.quantize_static(torch.jit.script(LazyOffset().eval()), data)
    # calibration filled the cache, so the int8 model takes the second branch
    assert float(q(data[0]).mean()) > 50
