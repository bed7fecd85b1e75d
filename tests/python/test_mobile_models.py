"""Static int8 of the depthwise-conv networks users deploy (MobileNetV3-Large,
EfficientNet-B0, ConvNeXt-T layouts): every layer int8 from the input's
quantize to the output's dequantize, on every kernel path, close to fp32,
and the same after a save and load."""

import collections

import pytest
import torch

import qext
from conftest import sqnr_db
from models import randomize_batch_norm
from models_mobile import ConvNeXtTish, EfficientNetB0ish, MobileNetV3Largeish, randomize_convnext

# name -> (model, the int8 ops its layout must turn into)
MODELS = {
    "mobilenet_v3_large": (lambda: randomize_batch_norm(MobileNetV3Largeish(classes=10)),
                           {"qext::conv2d_int8": 62, "qext::mul_int8": 8, "qext::lut_u8": 29}),
    "efficientnet_b0": (lambda: randomize_batch_norm(EfficientNetB0ish(classes=10)),
                        {"qext::conv2d_int8": 81, "qext::mul_int8": 16, "qext::lut_u8": 65}),
    # ConvNeXt-T's blocks at depths 1-1-2-1 (the full 3-3-9-3 runs in benchmarks/).
    "convnext_tiny": (lambda: randomize_convnext(ConvNeXtTish(classes=10, depths=(1, 1, 2, 1))),
                      {"qext::conv2d_int8": 9, "qext::linear_int8": 11, "qext::layer_norm_int8": 10,
                       "qext::mul_int8": 0}),  # layer scales folded into pwconv2
}


def images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, 96, 96, generator=g) for _ in range(n)]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_depthwise_networks_run_int8_end_to_end(isa, name, tmp_path):
    make, expected_ops = MODELS[name]
    torch.manual_seed(4)
    model = make()
    q = qext.quantize_static(model, images(4, seed=0))
    floats = [(l.name, l.reason) for l in qext.report(q).layers if l.status != "int8"]
    assert not floats, floats
    ops = collections.Counter(n.kind() for n in q.graph.nodes())
    # int8 from end to end: one quantize (the input; ConvNeXt's layer scales are
    # quantized once, at convert time), one dequantize (the output).
    assert ops["qext::quantize_per_tensor"] == 1 and ops["qext::dequantize_per_tensor"] == 1, ops
    for op, count in expected_ops.items():
        assert ops[op] == count, (op, ops[op])
    x = torch.cat(images(2, seed=1))
    with torch.no_grad():
        want, got = model(x), q(x)
    # Bound: random weights through 60-170 int8 layers at 96 x 96 keep > 15 dB.
    assert sqnr_db(want, got) > 15.0
    path = tmp_path / "q.pt"
    qext.save(q, str(path))
    with torch.no_grad():
        assert torch.equal(qext.load(str(path))(x), got)
