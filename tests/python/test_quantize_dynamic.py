"""qext.quantize_dynamic end to end: which layers it finds, what it leaves
alone, accuracy against fp32, the report, save/load and the CLI."""

import os

import pytest
import torch

import qext
from conftest import on_every_path, run_python, sqnr_db
from models import Block, Nested, NoLinear, NotScriptable, transformer_encoder


def ops_in(module: torch.jit.ScriptModule, method: str = "forward") -> list[str]:
    return [n.kind() for n in getattr(module, method).graph.findAllNodes("qext::linear_dynamic")] + [
        n.kind() for n in getattr(module, method).graph.nodes() if n.kind() in ("aten::linear", "aten::matmul")
    ]


def quantized_on_every_path(model, config, *inputs):
    """(the last quantized model, [its output]): quantized and run with each kernel path active."""
    def quantize_and_run():
        q = qext.quantize_dynamic(model, config)
        with torch.no_grad():
            return q, q(*inputs)

    runs = on_every_path(quantize_and_run)
    return runs[-1][0], [out for _, out in runs]


@pytest.fixture
def nested():
    torch.manual_seed(0)
    return Nested().eval()


def test_every_linear_kind_is_quantized_and_accurate(nested):
    x = torch.randn(10, 32)
    q = qext.quantize_dynamic(nested)
    kinds = ops_in(q)
    assert kinds.count("qext::linear_dynamic") == 3 * 2 + 3  # blocks, matmul+bias, F.linear, head
    assert "aten::linear" not in kinds and "aten::matmul" not in kinds
    report = qext.report(q)
    assert report.mode == "dynamic"
    assert {l.name for l in report.layers} == {
        *(f"blocks.{i}.fc{j}" for i in range(3) for j in (1, 2)), "proj_w", "fw", "head",
    }
    assert all(l.status == "int8" for l in report.layers)
    with torch.no_grad():
        assert sqnr_db(nested(x), q(x)) > 30.0
        assert sqnr_db(nested.embed(x), q.embed(x)) > 30.0  # the second method too


def test_input_model_is_unchanged(nested):
    script = torch.jit.script(nested)
    before = {k: v.clone() for k, v in script.state_dict().items()}
    graph_before = str(script.graph)
    qext.quantize_dynamic(script)
    assert str(script.graph) == graph_before
    assert all(torch.equal(before[k], v) for k, v in script.state_dict().items())


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_traced_model(nested):
    x = torch.randn(4, 32)
    traced = torch.jit.trace(nested, x)
    q = qext.quantize_dynamic(traced)
    assert qext.report(q).quantized == 9
    with torch.no_grad():
        assert sqnr_db(nested(x), q(x)) > 30.0


def test_config_selects_layers(nested):
    cfg = qext.DynamicConfig(exclude=["blocks.1.*", "head"], min_weight_elements=200, quantize_matmul=False)
    rows = {l.name: l for l in qext.report(qext.quantize_dynamic(nested, cfg)).layers}
    assert rows["blocks.1.fc1"].status == "float" and "excluded by pattern 'blocks.1.*'" in rows["blocks.1.fc1"].reason
    assert rows["head"].status == "float"
    assert rows["fw"].status == "float" and "min_weight_elements" in rows["fw"].reason
    assert "proj_w" not in rows  # matmul not considered
    assert rows["blocks.0.fc1"].status == rows["blocks.2.fc2"].status == "int8"

    rows = {l.name: l for l in qext.report(qext.quantize_dynamic(nested, qext.DynamicConfig(include=["blocks.2.*"]))).layers}
    assert [n for n, l in rows.items() if l.status == "int8"] == ["blocks.2.fc1", "blocks.2.fc2"]

    rows = qext.report(qext.quantize_dynamic(nested, qext.DynamicConfig(module_types=["Linear"]))).layers
    assert {l.name for l in rows if l.status == "int8"} == {*(f"blocks.{i}.fc{j}" for i in range(3) for j in (1, 2)), "head"}


def test_mixed_decisions_on_one_shared_class(nested):
    # blocks.* share one TorchScript class; excluding one instance must not
    # change the others.
    x = torch.randn(6, 32)
    q = qext.quantize_dynamic(nested, qext.DynamicConfig(exclude=["blocks.0.*"]))
    with torch.no_grad():
        want = nested.blocks[0](x)
        assert torch.allclose(q.embed(x), want, atol=1e-6)  # embed uses blocks[0]: still float


def test_granularity_options(nested):
    x = torch.randn(16, 32)
    with torch.no_grad():
        ref = nested(x)
        for cfg in (qext.DynamicConfig(weight_granularity="per_tensor"), qext.DynamicConfig(per_row_activations=False)):
            assert sqnr_db(ref, qext.quantize_dynamic(nested, cfg)(x)) > 25.0
    with pytest.raises(ValueError, match="weight_granularity"):
        qext.quantize_dynamic(nested, qext.DynamicConfig(weight_granularity="per_row"))
    with pytest.raises(TypeError, match="list of strings"):
        qext.quantize_dynamic(nested, qext.DynamicConfig(exclude="head"))


class TiedLstmLm(torch.nn.Module):
    """Embedding -> LSTM -> Linear tied to the embedding table."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(100, 32)
        self.rnn = torch.nn.LSTM(32, 32, batch_first=True)
        self.head = torch.nn.Linear(32, 100)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        y, _ = self.rnn(self.embed(ids))
        return self.head(y)


def test_seven_bit_weights_everywhere_and_the_same_on_every_path(tmp_path):
    # weight_bits=7 keeps int8 storage with values in [-63, 63] (what AVX2's
    # vpmaddubsw kernel multiplies exactly): Linear, tied table, LSTM.
    torch.manual_seed(5)
    model = TiedLstmLm().eval()
    ids = torch.randint(0, 100, (3, 11))
    with torch.no_grad():
        ref = model(ids)
    q, outputs = quantized_on_every_path(model, qext.DynamicConfig(weight_bits=7), ids)
    assert all(torch.equal(outputs[0], o) for o in outputs[1:])
    rows = {l.name: l for l in qext.report(q).layers}
    assert {rows[n].status for n in ("embed", "rnn", "head")} == {"int8"}, rows
    assert "shared with the embedding table" in rows["head"].reason
    for packed in (q._qext_packed_head, q._qext_table_embed):
        assert packed.weight().abs().max().item() == 63
    assert sqnr_db(ref, outputs[0]) > 25.0
    eight = qext.quantize_dynamic(model)
    with torch.no_grad():
        assert sqnr_db(ref, eight(ids)) > sqnr_db(ref, outputs[0])
    qext.save(q, tmp_path / "q7.pt")
    with torch.no_grad():
        assert torch.equal(qext.load(tmp_path / "q7.pt")(ids), outputs[-1])


def activation_bits_args(module: torch.jit.ScriptModule) -> list[int]:
    """The activation_bits argument of every qext::linear_dynamic."""
    return [list(n.inputs())[5].toIValue() for n in module.forward.graph.findAllNodes("qext::linear_dynamic")]


def test_seven_bit_activations_are_the_quantized_math_on_every_path(nested, tmp_path):
    # activation_bits=7 with weight_bits=7: the AVX2 kernel sums two k groups
    # in int16; every path computes the same integers. An 8-bit model's calls
    # keep the old argument list (files earlier qext versions read).
    x = torch.randn(10, 32)
    q, outputs = quantized_on_every_path(nested, qext.DynamicConfig(weight_bits=7, activation_bits=7), x)
    assert all(torch.equal(outputs[0], o) for o in outputs[1:])
    assert activation_bits_args(q) == [7] * 9
    assert activation_bits_args(qext.quantize_dynamic(nested)) == [8] * 9
    with torch.no_grad():
        ref = nested(x)
        assert sqnr_db(ref, outputs[0]) > 20.0
        assert sqnr_db(ref, qext.quantize_dynamic(nested, qext.DynamicConfig(weight_bits=7))(x)) > sqnr_db(ref, outputs[0])
    assert '"activation_bits": 7' in q._qext_metadata["config"]
    qext.save(q, tmp_path / "q77.pt")
    with torch.no_grad():
        assert torch.equal(qext.load(tmp_path / "q77.pt")(x), outputs[-1])


def packed_weight_versions(module):
    """The format version each PackedLinearWeight of the model pickles with."""
    names = sorted(n.s("name") for n in module.forward.graph.findAllNodes("prim::GetAttr"))
    states = [module._c.getattr(name).__getstate__() for name in names if name.startswith("_qext_packed_")]
    return [(s[0] if isinstance(s[0], tuple) else s)[0] for s in states]  # (version, int8 weight, scales)


def test_eight_bit_weights_with_seven_bit_activations(nested, tmp_path):
    """weight_bits=8, activation_bits=7 (torch.ao x86's recipe): the weights are
    packed for 7-bit activations (AVX2: bytes for vpmaddubsw, exact there), the
    same integers on every path, more accurate than 7-bit weights; the file
    marks the packing (format version 2) so the CPU that loads it packs the
    same way, while 8/8 and 7/7 files keep version 1, as earlier qext wrote."""
    x = torch.randn(10, 32)
    q, outputs = quantized_on_every_path(nested, qext.DynamicConfig(activation_bits=7), x)
    assert all(torch.equal(outputs[0], o) for o in outputs[1:])
    assert activation_bits_args(q) == [7] * 9
    with torch.no_grad():
        ref = nested(x)
        w7a7 = qext.quantize_dynamic(nested, qext.DynamicConfig(weight_bits=7, activation_bits=7))(x)
        assert sqnr_db(ref, outputs[0]) > sqnr_db(ref, w7a7) > 20.0
    assert packed_weight_versions(q) == [2] * 9
    assert packed_weight_versions(qext.quantize_dynamic(nested)) == [1] * 9
    assert packed_weight_versions(qext.quantize_dynamic(nested, qext.DynamicConfig(weight_bits=7, activation_bits=7))) == [1] * 9
    qext.save(q, tmp_path / "q87.pt")
    loaded = qext.load(tmp_path / "q87.pt")
    assert packed_weight_versions(loaded) == [2] * 9
    with torch.no_grad():
        assert torch.equal(loaded(x), outputs[-1])


def test_activation_bits_are_checked(nested):
    with pytest.raises(ValueError, match="activation_bits must be 8 or 7"):
        qext.quantize_dynamic(nested, qext.DynamicConfig(activation_bits=6))
    with pytest.raises(ValueError, match="activation_bits=7 needs weight_bits 8 or 7"):
        qext.quantize_dynamic(nested, qext.DynamicConfig(weight_bits=4, activation_bits=7))


def test_weights_shrink_on_disk(tmp_path):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256)).eval()
    float_path, int8_path = tmp_path / "f.pt", tmp_path / "q.pt"
    torch.jit.save(torch.jit.script(model), str(float_path))
    q = qext.quantize_dynamic(str(float_path))
    qext.save(q, int8_path)
    ratio = os.path.getsize(float_path) / os.path.getsize(int8_path)
    assert ratio > 3.3, ratio
    assert qext.report(q).bytes_before / qext.report(q).bytes_after > 3.9


def test_save_load_round_trip_in_a_fresh_process(nested, tmp_path):
    x = torch.randn(3, 32)
    q = qext.quantize_dynamic(nested)
    with torch.no_grad():
        want = q(x)
    path = tmp_path / "q.pt"
    qext.save(q, path)
    torch.save({"x": x, "want": want}, tmp_path / "io.pt")
    code = (
        "import torch, qext\n"
        f"m = qext.load({str(path)!r}); d = torch.load({str(tmp_path / 'io.pt')!r})\n"
        "assert torch.equal(m(d['x']), d['want'])\n"
        "r = qext.report(m); print(r.mode, r.quantized)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["dynamic", "9"]


class GeluMlp(torch.nn.Module):
    """An FFN three ways: erf GELU after a Linear (fused), tanh GELU (not
    fused: the epilogue computes the erf form only), and a GELU whose input
    is also read elsewhere (not fused: the raw output is needed)."""

    def __init__(self):
        super().__init__()
        self.up, self.up_tanh, self.up_shared = (torch.nn.Linear(32, 96) for _ in range(3))
        self.down = torch.nn.Linear(96, 32)

    def forward(self, x):
        h = torch.nn.functional.gelu(self.up(x))
        t = torch.nn.functional.gelu(self.up_tanh(x), approximate="tanh")
        raw = self.up_shared(x)
        return self.down(h + t + torch.nn.functional.gelu(raw) + raw)


def test_erf_gelu_after_a_linear_is_fused_into_its_epilogue(tmp_path):
    torch.manual_seed(0)
    model = GeluMlp().eval()
    x = torch.randn(16, 32)
    q = qext.quantize_dynamic(model)
    nodes = q.forward.graph.findAllNodes("qext::linear_dynamic")
    gelu_args = [list(n.inputs())[6].toIValue() if len(list(n.inputs())) > 6 else False for n in nodes]
    assert sorted(gelu_args) == [False, True]  # down; up with its GELU
    # up_tanh and up_shared read x with nothing fused: one grouped call
    (group,) = q.forward.graph.findAllNodes("qext::linear_dynamic_group")
    assert len(list(list(group.inputs())[1].node().inputs())) == 2
    assert len(q.forward.graph.findAllNodes("aten::gelu")) == 2  # tanh and shared stay float
    with torch.no_grad():
        want = model(x)
        got = q(x)
        assert sqnr_db(want, got) > 30.0
        qext.save(q, tmp_path / "gelu.pt")
        assert torch.equal(qext.load(tmp_path / "gelu.pt")(x), got)


def test_nothing_to_quantize_is_a_report_not_an_error():
    q = qext.quantize_dynamic(NoLinear())
    report = qext.report(q)
    assert report.layers == []
    assert "nothing to quantize" in str(report)


def test_tracing_fallback_and_its_errors():
    model = NotScriptable().eval()
    with pytest.raises(ValueError, match="pass example_inputs"):
        qext.quantize_dynamic(model)
    q = qext.quantize_dynamic(model, example_inputs=torch.randn(2, 16))
    assert qext.report(q).quantized == 1
    with pytest.raises(ValueError, match="example_inputs"):
        qext.quantize_dynamic(model, example_inputs=torch.randn(2, 5))
    assert model.training is False
    with pytest.raises(TypeError, match="expected an nn.Module"):
        qext.quantize_dynamic(42)


def test_bad_files_give_clear_errors(tmp_path):
    not_ts = tmp_path / "notes.pt"
    not_ts.write_text("hello")
    with pytest.raises(ValueError, match="not a readable TorchScript model"):
        qext.quantize_dynamic(str(not_ts))
    good = tmp_path / "good.pt"
    torch.jit.save(torch.jit.script(Block()), str(good))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a readable TorchScript model"):
        qext.load(truncated)
    with pytest.raises(FileNotFoundError):
        qext.load(tmp_path / "missing.pt")


def test_unwritable_output_leaves_nothing(tmp_path):
    q = qext.quantize_dynamic(Block())
    with pytest.raises(OSError, match="does not exist"):
        qext.save(q, tmp_path / "no" / "such" / "dir" / "q.pt")
    # /proc refuses new files even to root.
    with pytest.raises(OSError, match="cannot write '/proc/qext-test.pt'"):
        qext.save(q, "/proc/qext-test.pt")
    assert not os.path.exists("/proc/qext-test.pt")
    existing = tmp_path / "existing.pt"
    existing.write_bytes(b"old contents")
    qext.save(q, existing)
    assert qext.report(qext.load(existing)).quantized == 2
    assert [p.name for p in tmp_path.iterdir()] == ["existing.pt"]  # no temporary left behind
    with pytest.raises(OSError, match="is a folder"):
        qext.save(q, tmp_path)


def test_transformer_encoder_runs_int8_not_its_float_fast_path():
    # nn.TransformerEncoderLayer / MultiheadAttention pick a fused float kernel
    # in eval mode; qext must pin them to the op-by-op path it rewrote.
    torch.manual_seed(2)
    model = transformer_encoder()
    x = torch.randn(3, 7, 64)
    q = qext.quantize_dynamic(model)
    graph = str(q.graph)
    assert "_transformer_encoder_layer_fwd" not in graph and "_native_multi_head_attention" not in graph
    assert qext.report(q).quantized == 2 * 4  # in_proj, out_proj, linear1, linear2 per layer
    with torch.no_grad():
        ref, out = model(x), q(x)
        assert not torch.equal(ref, out)  # int8 really ran
        assert sqnr_db(ref, out) > 25.0
        # separate query/key/value tensors take the branch with computed weights, still in float
        mha = model.layers[0].self_attn
        qm = qext.quantize_dynamic(mha)
        k = torch.randn(3, 7, 64)
        assert sqnr_db(mha(x, k, k)[0], qm(x, k, k)[0]) > 25.0
