"""Dynamic mode's embedding tables and Hugging Face's Conv1D (issue 13):
weight-only int8 tables (per row), a tied output layer stored once, addmm
layers as int8 Linear, all in the report."""

import torch
import torch.nn as nn
import torch.nn.functional as F

import qext
from conftest import sqnr_db


class TinyLM(nn.Module):
    """GPT-2's shape in miniature: token + position tables, a Conv1D-style
    addmm block, and an output layer tied to the token table."""

    def __init__(self, vocab=500, dim=64, tied=True):
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(32, dim)
        self.c_fc_weight = nn.Parameter(torch.randn(dim, 4 * dim) * 0.05)  # Conv1D: [K, N]
        self.c_fc_bias = nn.Parameter(torch.randn(4 * dim) * 0.01)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        if tied:
            self.lm_head.weight = self.wte.weight

    def forward(self, ids):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        h = self.wte(ids) + self.wpe(pos)
        flat = h.view(-1, h.shape[-1])
        h = h + torch.addmm(self.c_fc_bias, flat, self.c_fc_weight).view(h.shape[0], h.shape[1], -1)[..., : h.shape[-1]]
        return self.lm_head(F.gelu(h))


def test_tables_addmm_and_tied_head_become_int8(tmp_path):
    torch.manual_seed(0)
    model = TinyLM().eval()
    ids = torch.randint(0, 500, (3, 20))
    q = qext.quantize_dynamic(model)
    rows = {l.name: l for l in qext.report(q).layers}
    assert rows["wte"].kind == "embedding" and rows["wte"].status == "int8"
    assert rows["wpe"].status == "int8"
    assert rows["c_fc_weight"].kind == "addmm" and rows["c_fc_weight"].status == "int8"
    assert rows["lm_head"].status == "int8" and "shared with the embedding" in rows["lm_head"].reason
    kinds = [n.kind() for n in q.graph.nodes()]
    assert "aten::embedding" not in kinds and "aten::addmm" not in kinds
    with torch.no_grad():
        assert sqnr_db(model(ids), q(ids)) > 30.0
    # the tied table is stored once: no float copy, no second int8 copy
    float_path, int8_path = tmp_path / "f.pt", tmp_path / "q.pt"
    torch.jit.save(torch.jit.script(model), str(float_path))
    qext.save(q, int8_path)
    table = 500 * 64
    assert int8_path.stat().st_size < float_path.stat().st_size / 3
    assert int8_path.stat().st_size < 1.5 * table + 6 * 64 * 64 + 64 * 1024  # int8 table once, int8 block, scales
    loaded = qext.load(int8_path)
    with torch.no_grad():
        assert torch.equal(loaded(ids), q(ids))


def test_untied_tables_and_options():
    torch.manual_seed(1)
    model = TinyLM(tied=False).eval()
    ids = torch.randint(0, 500, (2, 10))
    q = qext.quantize_dynamic(model)
    rows = {l.name: l for l in qext.report(q).layers}
    assert rows["lm_head"].status == "int8" and rows["lm_head"].reason == ""
    off = qext.quantize_dynamic(model, qext.DynamicConfig(quantize_embeddings=False))
    rows = {l.name: l for l in qext.report(off).layers}
    assert rows["wte"].status == "float" and rows["wte"].reason == "quantize_embeddings is off"
    excluded = qext.quantize_dynamic(model, qext.DynamicConfig(exclude=["wpe"]))
    rows = {l.name: l for l in qext.report(excluded).layers}
    assert rows["wpe"].status == "float" and "excluded" in rows["wpe"].reason and rows["wte"].status == "int8"


def test_embedding_op_dequantizes_rows_exactly_and_checks_indices():
    torch.manual_seed(2)
    w = torch.randn(50, 16)
    table = torch.ops.qext.quantize_embedding(w)
    wq, scales = table.weight(), table.scales()
    assert wq.dtype == torch.int8 and wq.abs().max() == 127
    ids = torch.tensor([[0, 49, 7], [7, 7, 3]])
    got = torch.ops.qext.embedding_int8(ids, table)
    assert torch.equal(got, wq[ids].float() * scales[ids].unsqueeze(-1))
    assert torch.equal(torch.ops.qext.embedding_int8(ids.int(), table), got)
    # per-row error bound: half a step of that row's scale
    assert ((got - w[ids]).abs() <= scales[ids].unsqueeze(-1) / 2 + 1e-6).all()
    for bad in (torch.tensor([50]), torch.tensor([-1])):
        try:
            torch.ops.qext.embedding_int8(bad, table)
            raise AssertionError("expected an error")
        except RuntimeError as e:
            assert "out of range for a table of 50 rows" in str(e)


def test_max_norm_embeddings_stay_float():
    class Renorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20, 8, max_norm=1.0)

        def forward(self, ids):
            return self.emb(ids)

    # Traced, the renorm is in the graph (scripted F.embedding leaves it out).
    q = qext.quantize_dynamic(torch.jit.trace(Renorm().eval(), torch.tensor([[1, 2]])))
    (row,) = qext.report(q).layers
    assert row.status == "float" and "max_norm" in row.reason
