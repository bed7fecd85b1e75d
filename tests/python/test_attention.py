"""qext::attention (scaled_dot_product_attention without dropout on qext's
kernel) against torch.nn.functional.scaled_dot_product_attention, the same
bits on every kernel path, ATen's behaviour where the kernel does not run,
and quantize_dynamic's rewrite of a Transformer's attention."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import on_every_path

import qext

attention = torch.ops.qext.attention
g = torch.Generator().manual_seed(0)


def rand(*shape):
    return torch.randn(*shape, generator=g)


def close(ref, out):
    """Float rounding only: 2e-6 of the output's scale."""
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert torch.allclose(out, ref, rtol=0, atol=2e-6 * ref.abs().max().item() + 1e-30), (out - ref).abs().max()


def padding_mask(lengths, s):
    """Hugging Face BERT's additive mask for right-padded sequences: 0 for
    real keys, finfo.min for padding, [batch, 1, s, s] in memory (the padded
    keys are skipped as dead; the same results as computing them)."""
    keep = torch.arange(s)[None, :] < torch.tensor(lengths)[:, None]
    mask = torch.zeros(len(lengths), 1, s, s)
    return mask.masked_fill(~keep[:, None, None, :], torch.finfo(torch.float32).min)


CASES = {
    "plain": lambda: ((rand(2, 3, 7, 16), rand(2, 3, 9, 16), rand(2, 3, 9, 12)), {}),
    "float mask broadcast": lambda: ((rand(2, 4, 5, 8), rand(2, 4, 33, 8), rand(2, 4, 33, 8)),
                                     {"attn_mask": torch.where(rand(2, 1, 1, 33) > 1, -torch.inf, rand(2, 1, 1, 33))}),
    "bool mask per row": lambda: ((rand(1, 2, 6, 4), rand(1, 2, 10, 4), rand(1, 2, 10, 20)),
                                  {"attn_mask": rand(6, 10) > -0.5}),
    "causal": lambda: ((rand(3, 2, 11, 24), rand(3, 2, 11, 24), rand(3, 2, 11, 7)), {"is_causal": True}),
    "padding mask, materialised per row": lambda: ((rand(3, 2, 40, 16), rand(3, 2, 40, 16), rand(3, 2, 40, 16)),
                                                   {"attn_mask": padding_mask([40, 23, 5], 40)}),
    "scale, 3-D": lambda: ((rand(5, 130, 32), rand(5, 140, 32), rand(5, 140, 32)), {"scale": 0.3}),
    "2-D": lambda: ((rand(3, 5), rand(4, 5), rand(4, 2)), {}),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_torch_sdpa_and_is_the_same_on_every_path(case):
    (q, k, v), kw = CASES[case]()
    ref = F.scaled_dot_product_attention(q, k, v, **kw)
    outs = on_every_path(lambda: attention(q, k, v, **kw))
    for out in outs:
        close(ref, out)
        assert torch.equal(out, outs[0])


def test_strided_heads_and_fully_masked_rows():
    # q, k, v as a Transformer makes them: [B, S, H, D] viewed as [B, H, S, D]
    q, k, v = (rand(2, 9, 3, 8).transpose(1, 2) for _ in range(3))
    mask = torch.ones(2, 1, 9, 9, dtype=torch.bool)
    mask[:, :, 4] = False  # row 4 sees no key: ATen gives zeros
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = attention(q, k, v, mask)
    close(ref, out)
    assert torch.equal(out[:, :, 4], torch.zeros_like(out[:, :, 4]))


def test_non_finite_scores_give_nan_rows_only():
    q, k, v = rand(1, 1, 4, 8), rand(1, 1, 6, 8), rand(1, 1, 6, 8)
    q[0, 0, 2, 3] = float("nan")
    out = attention(q, k, v)
    assert out[0, 0, 2].isnan().all() and out[0, 0, [0, 1, 3]].isfinite().all()


def test_what_the_kernel_does_not_take_runs_on_aten():
    q, k, v = rand(2, 3, 5, 8), rand(2, 3, 6, 8), rand(2, 3, 6, 8)
    # float64, and tensors that need a gradient: ATen's results exactly
    qd, kd, vd = q.double(), k.double(), v.double()
    assert torch.equal(attention(qd, kd, vd), F.scaled_dot_product_attention(qd, kd, vd))
    qg = q.clone().requires_grad_()
    attention(qg, k, v).sum().backward()
    assert qg.grad is not None and qg.grad.shape == q.shape
    # a mask and causal masking together: both apply, as in ATen
    mask = rand(5, 6)
    assert torch.equal(attention(q, k, v, mask, True), F.scaled_dot_product_attention(q, k, v, mask, is_causal=True))
    # malformed calls raise ATen's errors
    with pytest.raises(RuntimeError, match="size"):
        attention(q, rand(2, 3, 6, 7), v)
    with pytest.raises(RuntimeError, match="must match"):
        attention(q, k, v, torch.zeros(4, 6))
    # a mask with more dimensions than the query: ATen's error too
    with pytest.raises(RuntimeError, match="broadcast shape"):
        attention(q[0], k[0], v[0], torch.zeros(1, 1, 5, 6))


class Encoder(nn.Module):
    def __init__(self, d=32, heads=4):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x, mask):
        b, s, d = x.shape
        qkv = self.qkv(x).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0)
        return self.out(a.transpose(1, 2).reshape(b, s, d))


def test_quantize_dynamic_runs_attention_on_qext(tmp_path):
    torch.manual_seed(0)
    model = Encoder().eval()
    x, mask = torch.randn(3, 10, 32), torch.randn(3, 1, 1, 10)
    q = qext.quantize_dynamic(torch.jit.script(model))
    graph = str(q.forward.graph)
    assert "qext::attention" in graph and "scaled_dot_product_attention" not in graph
    path = tmp_path / "m.pt"
    qext.save(q, str(path))
    with torch.no_grad():  # (with gradients on, the model's bias parameters send attention to ATen)
        ref, out = model(x, mask), q(x, mask)
        assert torch.equal(qext.load(str(path))(x, mask), out)
    assert torch.nn.functional.cosine_similarity(ref.flatten(1), out.flatten(1)).min() > 0.999


def test_attention_with_dropout_stays_on_aten():
    class Dropping(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v, dropout_p=0.1)

    q = qext.quantize_dynamic(torch.jit.script(Dropping()))
    graph = str(q.forward.graph)
    assert "scaled_dot_product_attention" in graph and "qext::attention" not in graph
