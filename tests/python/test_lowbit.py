"""Low-bit Linear weights (issue 14): 4-, 2- and 1-bit (binary) weights with
group-wise scales. The kernels are compared bit for bit in C++
(tests/cpp/kernels/test_lowbit_gemm.cpp); here: every path gives the same
output, the op equals the dequantized weight's product within the activation
rounding, the quantizers' definitions, quantize_dynamic / save / load / report,
file sizes, accuracy on real Fashion-MNIST images and clear errors (corrupt
saved states: test_hostile_files.py; the CLI and C++ binaries:
test_cli_and_cpp.py)."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import qext

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import real_data  # noqa: E402

from models import FashionMlp, train_fashion_mlp  # noqa: E402


def cosine(a, b):
    return F.cosine_similarity(a.flatten().double(), b.flatten().double(), 0).item()


@pytest.mark.parametrize("bits", [4, 2, 1])
@pytest.mark.parametrize("group_size", [0, 32, 128])
def test_every_path_gives_the_same_output(bits, group_size):
    torch.manual_seed(bits)
    w, x, b = torch.randn(70, 300), torch.randn(9, 300), torch.randn(70)
    packed = qext.quantize_linear_weight_lowbit(w, bits, group_size)
    before = qext.active_isa()
    try:
        outs = []
        for isa in qext.supported_isas():
            qext.set_isa(isa)
            outs.append(qext.linear_lowbit(x, packed, b))
    finally:
        qext.set_isa(before)
    for y in outs[1:]:
        assert torch.equal(y, outs[0])
    # Against the dequantized weight in float: only the activations' uint8
    # rounding differs (per row: 255 levels over the row's range).
    want = x @ packed.dequantized().T + b
    assert cosine(outs[0], want) > 0.9999


def test_the_quantizers_definitions():
    torch.manual_seed(0)
    w = torch.randn(5, 40)
    for bits, lo, hi in ((4, -8, 7), (2, -2, 1)):
        p = qext.quantize_linear_weight_lowbit(w, bits, 8)
        levels, scales = p.levels(), p.scales()
        assert levels.min() >= lo and levels.max() <= hi and scales.shape == (5, 5)
        groups = w.reshape(5, 5, 8)
        extreme = groups.gather(-1, groups.abs().argmax(-1, keepdim=True)).squeeze(-1)
        assert torch.equal(scales, extreme / lo)  # the largest magnitude lands on the lowest level
        assert (levels.reshape(5, 5, 8).gather(-1, groups.abs().argmax(-1, keepdim=True)) == lo).all()
        # Rounded to nearest; only a value opposite the extreme can clip, to hi, by at most one more half step.
        err, step = (p.dequantized() - w).abs().reshape(5, 5, 8), scales.abs().unsqueeze(-1)
        at_hi = levels.reshape(5, 5, 8) == hi
        assert (err <= step / 2 + 1e-6)[~at_hi].all() and (err <= step + 1e-6)[at_hi].all()
    p = qext.quantize_linear_weight_lowbit(w, 1, 8)
    assert torch.equal(p.levels(), torch.where(w >= 0, 1, -1).to(torch.int8))
    assert torch.allclose(p.scales(), w.abs().reshape(5, 5, 8).mean(-1))
    # A short last group (40 = 32 + 8) and one group per row.
    p = qext.quantize_linear_weight_lowbit(w, 4, 32)
    assert p.scales().shape == (5, 2)
    assert qext.quantize_linear_weight_lowbit(w, 4, 0).scales().shape == (5, 1)


def test_more_bits_are_more_accurate():
    torch.manual_seed(1)
    w, x = torch.randn(256, 512) / 512**0.5, torch.randn(16, 512)
    ref = x @ w.T
    cos = {bits: cosine(qext.linear_lowbit(x, qext.quantize_linear_weight_lowbit(w, bits, 32)), ref)
           for bits in (4, 2, 1)}
    int8 = cosine(qext.linear_dynamic(x, qext.quantize_linear_weight(w), per_row=True), ref)
    # Gaussian weights: 4-bit groups of 32 ~ 0.995; 2-bit ~ 0.93; binary sqrt(2/pi) ~ 0.80.
    assert int8 > cos[4] > 0.99
    assert cos[4] > cos[2] > 0.9
    assert cos[2] > cos[1] > 0.75


def test_quantize_dynamic_save_load_report_and_file_size(tmp_path):
    torch.manual_seed(2)
    model = torch.jit.script(FashionMlp().eval())
    x = torch.randn(3, 1, 28, 28)
    sizes = {}
    for bits in (8, 4, 2, 1):
        q = qext.quantize_dynamic(model, qext.DynamicConfig(weight_bits=bits, group_size=64))
        graph = str(q.graph)
        assert graph.count("qext::linear_lowbit" if bits < 8 else "qext::linear_dynamic") == 3
        rep = qext.report(q)
        assert rep.quantized == 3 and {layer.status for layer in rep.layers} == {f"int{bits}"}
        path = tmp_path / f"w{bits}.pt"
        qext.save(q, path)
        sizes[bits] = path.stat().st_size
        loaded = qext.load(path)
        assert torch.equal(loaded(x), q(x))
        assert qext.report(loaded).layers[0].status == f"int{bits}"
    # 4-bit codes + a float32 scale per 64 weights: 4.5 / 8 of int8's bytes.
    assert sizes[4] <= 0.6 * sizes[8]
    assert sizes[2] <= 0.35 * sizes[8]
    assert sizes[1] <= 0.22 * sizes[8]  # 1.5 bits per weight: 0.19, plus the float biases
    print({bits: f"{size / 1e6:.2f} MB" for bits, size in sizes.items()})


def test_real_fashion_mnist_accuracy():
    try:
        (x_train, y_train), (x_test, y_test) = real_data.fashion_mnist("train"), real_data.fashion_mnist("t10k")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    model = train_fashion_mlp(x_train, y_train)
    acc = {}
    with torch.no_grad():
        acc["fp32"] = (model(x_test).argmax(1) == y_test).float().mean().item() * 100
        for bits in (8, 4, 2):
            q = qext.quantize_dynamic(model, qext.DynamicConfig(weight_bits=bits, group_size=32))
            acc[bits] = (q(x_test).argmax(1) == y_test).float().mean().item() * 100
    print("Fashion-MNIST MLP accuracy:", {k: f"{v:.2f} %" for k, v in acc.items()})
    assert acc["fp32"] > 80
    assert abs(acc["fp32"] - acc[8]) <= 0.5
    assert acc["fp32"] - acc[4] <= 1.5
    assert acc["fp32"] - acc[2] <= 10


def test_bad_inputs_get_clear_errors():
    w = torch.randn(8, 16)
    with pytest.raises(RuntimeError, match="bits must be 4, 2 or 1"):
        qext.quantize_linear_weight_lowbit(w, 3)
    with pytest.raises(RuntimeError, match="group_size must be a multiple of 4"):
        qext.quantize_linear_weight_lowbit(w, 4, 6)
    with pytest.raises(RuntimeError, match="NaN or Inf"):
        qext.quantize_linear_weight_lowbit(torch.full((2, 4), float("nan")))
    with pytest.raises(RuntimeError, match="float32"):
        qext.quantize_linear_weight_lowbit(w.double())
    p = qext.quantize_linear_weight_lowbit(w, 4, 8)
    with pytest.raises(RuntimeError, match=r"expected input \[\.\.\., 16\]"):
        qext.linear_lowbit(torch.randn(2, 15), p)
    with pytest.raises(RuntimeError, match="bias of shape"):
        qext.linear_lowbit(torch.randn(2, 16), p, torch.randn(3))
    y = qext.linear_lowbit(torch.tensor([[float("nan")] * 16, [1.0] * 16]), p)
    assert y[0].isnan().all() and y[1].isfinite().all()
    with pytest.raises(ValueError, match="weight_bits must be 8, 7, 4, 2 or 1"):
        qext.quantize_dynamic(torch.jit.script(FashionMlp()), qext.DynamicConfig(weight_bits=3))
    with pytest.raises(ValueError, match="group_size must be a multiple of 4"):
        qext.quantize_dynamic(torch.jit.script(FashionMlp()), qext.DynamicConfig(weight_bits=4, group_size=30))



class TiedLm(nn.Module):
    """A GPT-2-style head: the output Linear reads the embedding table."""

    def __init__(self, vocab=500, dim=64, tied=True):
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        if tied:
            self.lm_head.weight = self.wte.weight

    def forward(self, ids):
        return self.lm_head(torch.tanh(self.mix(self.wte(ids))))


@pytest.mark.parametrize("bits", [4, 2, 1])
def test_low_bit_embeddings_and_a_tied_head_share_one_table(bits, tmp_path):
    torch.manual_seed(3)
    ids = torch.randint(0, 500, (2, 7))
    sizes = {}
    for tied in (True, False):
        model = TiedLm(tied=tied).eval()
        q = qext.quantize_dynamic(model, qext.DynamicConfig(weight_bits=bits, group_size=32))
        graph = str(q.graph)
        assert "qext::embedding_lowbit" in graph and graph.count("qext::linear_lowbit") == 2
        rows = {layer.name: layer for layer in qext.report(q).layers}
        assert rows["wte"].status == f"int{bits}" and rows["lm_head"].status == f"int{bits}"
        assert ("shared with the embedding table" in rows["lm_head"].reason) == tied
        table = q._qext_table_wte
        # A lookup is the dequantized row, exactly.
        with torch.no_grad():
            assert torch.equal(torch.ops.qext.embedding_lowbit(ids, table), table.dequantized()[ids])
        path = tmp_path / f"tied{tied}.pt"
        qext.save(q, path)
        sizes[tied] = path.stat().st_size
        loaded = qext.load(path)
        with torch.no_grad():
            assert torch.equal(loaded(ids), q(ids))
            assert cosine(q(ids), model(ids)) > {4: 0.98, 2: 0.8, 1: 0.5}[bits]
    # The tied model's file holds the table once: it is smaller by about the table.
    table_bytes = 500 * 64 * bits / 8 + 500 * 2 * 4
    assert sizes[False] - sizes[True] > 0.8 * table_bytes
    with pytest.raises(RuntimeError, match="out of range"):
        torch.ops.qext.embedding_lowbit(torch.tensor([500]), qext.quantize_linear_weight_lowbit(torch.randn(500, 64), bits, 32))
