"""Dynamic int8 nn.LSTM / nn.GRU (issue 13): scripted and traced, every layer
and direction option, against fp32 (cosine bound on random weights, accuracy
on real Fashion-MNIST sequences), the report, save/load, and what stays float
with its reason."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import qext
from conftest import sqnr_db

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import real_data  # noqa: E402


class Seq(nn.Module):
    """An RNN over [T, B, I] (or [B, T, I]) with a Linear head on every step."""

    def __init__(self, cls, inputs=24, hidden=40, **kw):
        super().__init__()
        self.rnn = cls(inputs, hidden, **kw)
        self.head = nn.Linear(hidden * (2 if kw.get("bidirectional") else 1), 5)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y)


class LstmWithState(nn.Module):
    """Passes the initial state in and returns the final one."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(16, 32, num_layers=2)

    def forward(self, x, h0, c0):
        y, (h, c) = self.rnn(x, (h0, c0))
        return y, h, c


class GruWithState(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(16, 32, num_layers=2)

    def forward(self, x, h0, c0):
        y, h = self.rnn(x, h0)
        return y, h, c0


def graph_kinds(q):
    return [n.kind() for n in q.graph.nodes()] + [n.kind() for n in q.inlined_graph.nodes()]


OPTIONS = [{}, {"num_layers": 2, "bidirectional": True, "batch_first": True}, {"bias": False}, {"num_layers": 3}]


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("options", OPTIONS, ids=["default", "2layer_bidir_batchfirst", "nobias", "3layer"])
@pytest.mark.parametrize("how", ["script", "trace"])
def test_rnn_becomes_int8_and_stays_close(isa, cls, options, how):
    torch.manual_seed(len(str(options)))
    model = Seq(cls, **options).eval()
    x = torch.randn(6, 9, 24)
    q = qext.quantize_dynamic(model, example_inputs=(x,)) if how == "trace" else qext.quantize_dynamic(model)
    kind = cls.__name__.lower()
    rows = {l.name: l for l in qext.report(q).layers}
    assert rows["rnn"].kind == kind and rows["rnn"].status == "int8", rows
    # int8 weights, float scales and biases (a large share at hidden size 40)
    assert rows["rnn"].bytes_after < 0.35 * rows["rnn"].bytes_before
    kinds = graph_kinds(q)
    assert f"qext::{kind}_dynamic" in kinds and f"aten::{kind}" not in kinds
    with torch.no_grad():
        # Bound: int8 weights and per-row int8 activations at every step keep
        # SQNR > 30 dB through up to 3 layers of 9 steps (random weights).
        assert sqnr_db(model(x), q(x)) > 30.0


@pytest.mark.parametrize("cls", [LstmWithState, GruWithState])
def test_initial_and_final_states(cls):
    torch.manual_seed(1)
    model = cls().eval()
    x, h0, c0 = torch.randn(7, 3, 16), torch.randn(2, 3, 32), torch.randn(2, 3, 32)
    q = qext.quantize_dynamic(model)
    with torch.no_grad():
        for want, got in zip(model(x, h0, c0), q(x, h0, c0)):
            assert got.shape == want.shape
            assert sqnr_db(want, got) > 30.0
        # zero-length sequences give the initial state back, as torch does
        _, h, _ = q(x[:0], h0, c0)
        assert torch.equal(h, h0)


def test_saved_model_is_small_and_loads_equal(tmp_path):
    torch.manual_seed(2)
    model = Seq(nn.LSTM, inputs=64, hidden=128, num_layers=2).eval()
    q = qext.quantize_dynamic(model)
    float_path, int8_path = tmp_path / "f.pt", tmp_path / "q.pt"
    torch.jit.save(torch.jit.script(model), str(float_path))
    qext.save(q, int8_path)
    # int8 weights and float scales/biases: the float LSTM weights are gone
    assert int8_path.stat().st_size < 0.35 * float_path.stat().st_size
    loaded = qext.load(int8_path)
    x = torch.randn(5, 2, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), q(x))


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_what_stays_float_says_why():
    class Projected(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(8, 16, proj_size=4)

        def forward(self, x):
            return self.rnn(x)[0]

    class Packed(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(8, 16)

        def forward(self, x, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths)
            y, _ = self.rnn(packed)
            return nn.utils.rnn.pad_packed_sequence(y)[0]

    projected = Projected().eval()
    q = qext.quantize_dynamic(projected)
    (row,) = qext.report(q).layers
    assert row.status == "float" and "proj_size" in row.reason
    x = torch.randn(5, 2, 8)
    with torch.no_grad():
        assert torch.equal(q(x), projected(x))
    packed = Packed().eval()
    q = qext.quantize_dynamic(packed, example_inputs=(x, torch.tensor([5, 3])))
    (row,) = qext.report(q).layers
    assert row.status == "float" and "packed sequences" in row.reason
    q = qext.quantize_dynamic(Seq(nn.GRU).eval(), qext.DynamicConfig(exclude=["rnn"]))
    rows = {l.name: l for l in qext.report(q).layers}
    assert rows["rnn"].status == "float" and "excluded" in rows["rnn"].reason and rows["head"].status == "int8"


def test_lstm_op_matches_the_definition_on_its_int8_weights():
    """qext::lstm_dynamic equals the LSTM equations written out over
    qext.linear_dynamic with the same packed weights (so only the gates'
    float arithmetic differs: tanh as 2 sigmoid(2x) - 1)."""
    torch.manual_seed(3)
    lstm = nn.LSTM(12, 20).eval()
    params = [p.detach() for p in lstm._flat_weights]
    packed = torch.ops.qext.quantize_rnn_weight("lstm", params, True, 1, False)
    w_ih = torch.ops.qext.quantize_linear_weight(params[0])
    w_hh = torch.ops.qext.quantize_linear_weight(params[1])
    x, h, c = torch.randn(8, 3, 12), torch.zeros(3, 20), torch.zeros(3, 20)
    y, h_n, c_n = torch.ops.qext.lstm_dynamic(x, [h[None], c[None]], packed, False, True)
    outs = []
    for t in range(8):
        g = qext.linear_dynamic(x[t], w_ih, params[2], per_row=True) + qext.linear_dynamic(h, w_hh, params[3], per_row=True)
        i, f, gg, o = g.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    torch.testing.assert_close(y, torch.stack(outs), rtol=0, atol=2e-5)
    torch.testing.assert_close(h_n[0], h, rtol=0, atol=2e-5)
    torch.testing.assert_close(c_n[0], c, rtol=0, atol=2e-5)


def test_bad_inputs_get_clear_errors():
    packed = torch.ops.qext.quantize_rnn_weight("gru", [p.detach() for p in nn.GRU(4, 6)._flat_weights], True, 1, False)
    with pytest.raises(RuntimeError, match="input has 5 features, the layer expects 4"):
        torch.ops.qext.gru_dynamic(torch.randn(3, 2, 5), torch.zeros(1, 2, 6), packed)
    with pytest.raises(RuntimeError, match=r"h0 must be \[1, 2, 6\]"):
        torch.ops.qext.gru_dynamic(torch.randn(3, 2, 4), torch.zeros(1, 3, 6), packed)
    with pytest.raises(RuntimeError, match="expected LSTM weights"):
        torch.ops.qext.lstm_dynamic(torch.randn(3, 2, 4), [torch.zeros(1, 2, 6)] * 2, packed)
    with pytest.raises(RuntimeError, match="expected 4 parameters"):
        torch.ops.qext.quantize_rnn_weight("gru", [torch.randn(18, 4)], True, 1, False)


class RowClassifier(nn.Module):
    """Reads an image row by row (28 steps of 28 pixels)."""

    def __init__(self, cls):
        super().__init__()
        self.rnn = cls(28, 64, batch_first=True)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        y, _ = self.rnn(x.flatten(1, 2).view(-1, 28, 28))
        return self.fc(y[:, -1])


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_real_fashion_mnist_rows_keep_their_accuracy(cls):
    try:
        (x_train, y_train), (x_test, y_test) = real_data.fashion_mnist("train"), real_data.fashion_mnist("t10k")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    torch.manual_seed(0)
    model = RowClassifier(cls)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for xb, yb in zip(x_train[:12800].split(128), y_train[:12800].split(128)):
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    model.eval()
    q = qext.quantize_dynamic(model)
    with torch.no_grad():
        fp32 = (model(x_test).argmax(1) == y_test).float().mean().item() * 100
        int8 = (q(x_test).argmax(1) == y_test).float().mean().item() * 100
    print(f"Fashion-MNIST rows, {cls.__name__}: fp32 {fp32:.2f} %, int8 {int8:.2f} %")
    assert fp32 > 60  # it learned (one pass over 12.8k images; 10 % is chance)
    assert abs(fp32 - int8) <= 0.5
