"""Constant per-channel scales of a conv/linear output (layer scales) are
folded into its weights at prepare: the prepared float model computes what the
original does, and the int8 one has no multiply left for them."""

import collections

import torch
import torch.nn as nn
import torch.nn.functional as F

import qext
from conftest import sqnr_db


class LayerScaleMlp(nn.Module):
    """A ViT / CaiT block's MLP with a layer scale: x + gamma * fc2(gelu(fc1(x)))."""

    def __init__(self, d=48, shared_output=False):
        super().__init__()
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)
        self.gamma = nn.Parameter(torch.rand(d) + 0.1)
        self.shared_output = shared_output

    def forward(self, x):
        y = self.fc2(F.gelu(self.fc1(x)))
        if self.shared_output:  # the unscaled output is read too: the scale cannot fold
            return x + self.gamma * y + y
        return x + self.gamma * y


class ScaledConv(nn.Module):
    """conv -> [C, 1, 1] scale (either operand order), and ConvNeXt's linear on NHWC permuted back."""

    def __init__(self, c=16):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.scale = nn.Parameter(torch.rand(c, 1, 1) + 0.1)
        self.pw = nn.Linear(c, c)
        self.layer_scale = nn.Parameter(torch.rand(c, 1, 1) + 0.1)

    def forward(self, x):
        x = self.conv(x) * self.scale
        return x + self.layer_scale * self.pw(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def ops_of(q):
    return collections.Counter(n.kind() for n in q.graph.nodes())


def test_layer_scales_fold_into_linear_and_conv_weights(isa):
    torch.manual_seed(0)
    for model, shape in [(LayerScaleMlp().eval(), (4, 10, 48)), (ScaledConv().eval(), (2, 3, 12, 12))]:
        data = [torch.randn(*shape) for _ in range(4)]
        prepared = qext.prepare_static(model)
        x = torch.randn(*shape)
        with torch.no_grad():
            # Folding only reorders float products: the prepared model still computes the model.
            torch.testing.assert_close(prepared(x), model(x), rtol=1e-5, atol=1e-5)
        q = qext.quantize_static(model, data)
        ops = ops_of(q)
        assert ops["qext::mul_int8"] == 0 and ops["aten::mul"] == 0, ops
        assert all(l.status == "int8" for l in qext.report(q).layers)
        with torch.no_grad():
            assert sqnr_db(model(x), q(x)) > 30.0


def test_scales_stay_a_multiply_where_they_cannot_fold():
    torch.manual_seed(1)
    data = [torch.randn(4, 10, 48) for _ in range(4)]
    shared = LayerScaleMlp(shared_output=True).eval()
    assert ops_of(qext.quantize_static(shared, data))["qext::mul_int8"] == 1
    plain = LayerScaleMlp().eval()
    unfolded = qext.quantize_static(plain, data, qext.StaticConfig(fold_batch_norm=False))
    assert ops_of(unfolded)["qext::mul_int8"] == 1
    x = torch.randn(4, 10, 48)
    with torch.no_grad():
        assert sqnr_db(plain(x), unfolded(x)) > 25.0
