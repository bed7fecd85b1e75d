"""qext::linear_dynamic_group and the pass that makes it: the same bits as one
qext::linear_dynamic per weight, on every kernel path; which sibling Linears
quantize_dynamic merges, and which it must leave alone."""

import pytest
import torch
import torch.nn as nn

import qext

L = torch.ops.qext.linear_dynamic


def _weights(ns, k, bits, activation_bits, seed):
    g = torch.Generator().manual_seed(seed)
    ws = [qext.quantize_linear_weight(torch.randn(n, k, generator=g) / k**0.5, bits=bits,
                                      activation_bits=activation_bits) for n in ns]
    bs = [torch.randn(n, generator=g) if i % 2 == 0 else None for i, n in enumerate(ns)]
    return ws, bs


@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("bits,activation_bits", [(8, 8), (7, 7), (8, 7)])
@pytest.mark.parametrize("shape,ns", [((5, 64), (24, 25, 1)), ((2, 33, 100), (37, 72, 48)), ((1, 384), (384,) * 3)])
def test_outputs_are_the_separate_calls_bit_for_bit(isa, per_row, bits, activation_bits, shape, ns):
    ws, bs = _weights(ns, shape[-1], bits, activation_bits, seed=sum(ns) + shape[0])
    x = torch.randn(*shape) * 3 + 1
    outs = qext.linear_dynamic_group(x, ws, bs, per_row=per_row, activation_bits=activation_bits)
    assert len(outs) == len(ns)
    for out, w, b in zip(outs, ws, bs):
        assert torch.equal(out, L(x, w, b, per_row, False, activation_bits, False))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_counts_split_the_blocks_of_every_weight(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ws, bs = _weights((24, 200, 7, 48), 40, 8, 8, seed=5)  # 1 + 9 + 1 + 2 column blocks
        for m in (1, 2, 3, 70):
            x = torch.randn(m, 40)
            for out, w, b in zip(qext.linear_dynamic_group(x, ws, bs, per_row=True), ws, bs):
                assert torch.equal(out, L(x, w, b, True, False, 8, False))
    finally:
        torch.set_num_threads(before)


def test_non_finite_rows_are_nan_in_every_output_and_others_are_exact():
    ws, bs = _weights((30, 50), 16, 8, 8, seed=1)
    x = torch.randn(6, 16)
    x[1, 3], x[4, 0] = float("nan"), float("inf")
    for per_row in (False, True):
        for out, w, b in zip(qext.linear_dynamic_group(x, ws, bs, per_row=per_row), ws, bs):
            assert torch.isnan(out[[1, 4]]).all() and torch.isfinite(out[[0, 2, 3, 5]]).all()
            torch.testing.assert_close(out, L(x, w, b, per_row, False, 8, False), rtol=0, atol=0, equal_nan=True)


def test_a_strided_input_gives_the_contiguous_ones_outputs():
    ws, bs = _weights((10, 33), 24, 8, 8, seed=6)
    x = torch.randn(24, 9).T  # [9, 24], column-major
    for out, w, b in zip(qext.linear_dynamic_group(x, ws, bs, per_row=True), ws, bs):
        assert torch.equal(out, L(x.contiguous(), w, b, True, False, 8, False))


def test_empty_input_gives_empty_outputs():
    ws, bs = _weights((3, 4), 8, 8, 8, seed=2)
    outs = qext.linear_dynamic_group(torch.empty(0, 8), ws, bs)
    assert [o.shape for o in outs] == [(0, 3), (0, 4)]


def test_bad_arguments_are_clear_errors():
    ws, bs = _weights((3, 4), 8, 8, 8, seed=3)
    other, _ = _weights((3,), 9, 8, 8, seed=4)
    x = torch.randn(2, 8)
    with pytest.raises(RuntimeError, match="at least one weight"):
        torch.ops.qext.linear_dynamic_group(x, [], [], False, 8)
    with pytest.raises(RuntimeError, match="one bias"):
        torch.ops.qext.linear_dynamic_group(x, ws, [None], False, 8)
    with pytest.raises(RuntimeError, match="input features"):
        qext.linear_dynamic_group(x, ws + other)
    with pytest.raises(RuntimeError, match="float32"):
        qext.linear_dynamic_group(x.double(), ws)
    with pytest.raises(RuntimeError, match="activation_bits"):
        qext.linear_dynamic_group(x, ws, activation_bits=6)
    with pytest.raises(RuntimeError, match="bias"):
        qext.linear_dynamic_group(x, ws, [torch.randn(5), None])


class Projections(nn.Module):
    """Q, K, V on one input; a ReLU'd Linear on it too; one on another input."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 16, bias=False)
        self.gate = nn.Linear(32, 8)
        self.out = nn.Linear(32, 32)

    def forward(self, x):
        q, k, v = self.q(x), self.k(x), self.v(x)
        g = torch.relu(self.gate(x))
        return self.out(q * k) + v.sum(-1, keepdim=True) + g.sum(-1, keepdim=True)


def _kinds(module):
    return [n.kind() for n in module.forward.graph.nodes() if n.kind().startswith("qext::")]


def _expected(model, x, per_row=True):
    """The model's math with one qext.linear_dynamic per layer, same packing."""
    def lin(layer, inp, relu=False):
        return qext.linear_dynamic(inp, qext.quantize_linear_weight(layer.weight.detach()), layer.bias, per_row, relu)
    q, k, v = lin(model.q, x), lin(model.k, x), lin(model.v, x)
    g = lin(model.gate, x, relu=True)
    return lin(model.out, q * k) + v.sum(-1, keepdim=True) + g.sum(-1, keepdim=True)


@pytest.mark.parametrize("frontend", ["script", "trace"])
def test_quantize_dynamic_groups_siblings_and_keeps_the_bits(tmp_path, frontend):
    model = Projections().eval()
    x = torch.randn(3, 7, 32)
    script = torch.jit.script(model) if frontend == "script" else torch.jit.trace(model, x)
    q = qext.quantize_dynamic(script)
    kinds = _kinds(q)
    # q, k, v grouped; the ReLU'd gate keeps its fused ReLU, alone; out reads another input
    assert kinds.count("qext::linear_dynamic_group") == 1
    assert kinds.count("qext::linear_dynamic") == 2
    with torch.no_grad():
        expected = _expected(model, x)
        assert torch.equal(q(x), expected)
        qext.save(q, tmp_path / "q.pt")
        assert torch.equal(qext.load(tmp_path / "q.pt")(x), expected)


class TwoGroups(nn.Module):
    def __init__(self):
        super().__init__()
        self.a1, self.a2, self.b1, self.b2 = (nn.Linear(16, 16) for _ in range(4))

    def forward(self, x, y):
        return self.a1(x) * self.a2(x) + self.b1(y) * self.b2(y)


def test_the_rewritten_code_is_the_same_on_every_run():
    script = torch.jit.script(TwoGroups().eval())
    codes = {qext.quantize_dynamic(script).code for _ in range(4)}
    assert len(codes) == 1
    assert next(iter(codes)).count("linear_dynamic_group") == 2


class WritesBetween(nn.Module):
    """The input changes in place between the two Linears that read it."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 16)

    def forward(self, x):
        x = x * 1.0
        a = self.a(x)
        x.mul_(2.0)
        return a + self.b(x)


def test_an_input_written_in_place_is_not_grouped():
    model = WritesBetween().eval()
    q = qext.quantize_dynamic(torch.jit.script(model))
    assert "qext::linear_dynamic_group" not in _kinds(q)
    x = torch.randn(4, 16)
    wa, wb = (qext.quantize_linear_weight(m.weight.detach()) for m in (model.a, model.b))
    with torch.no_grad():
        expected = qext.linear_dynamic(x, wa, model.a.bias, True) + qext.linear_dynamic(2 * x, wb, model.b.bias, True)
        assert torch.equal(q(x), expected)
