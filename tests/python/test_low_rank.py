"""Quantized matrix factorization (issue 14): qext.linalg.factorize (a matrix
as two quantized low-rank factors, with its error report) and low-rank Linear
layers in quantize_dynamic (DynamicConfig.low_rank / low_rank_energy), with
accuracy on real Fashion-MNIST images. The C++ side: tests/cpp/test_linalg.cpp."""

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


def ratings(users=300, items=200, rank=8, noise=0.1, seed=0):
    """A ratings-like matrix: rank-`rank` taste structure plus noise."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(users, rank, generator=g) @ torch.randn(rank, items, generator=g) \
        + noise * torch.randn(users, items, generator=g)


def best_float_error(m, rank):
    """||m - m_r||_F / ||m||_F for the best rank-r float approximation (Eckart-Young)."""
    s = torch.linalg.svdvals(m.double())
    return (s[rank:].square().sum() / s.square().sum()).sqrt().item()


def test_factorize_reaches_the_noise_floor_of_a_ratings_matrix():
    m = ratings()
    f = qext.linalg.factorize(m, rank=8)
    assert f.rank == 8
    assert f.left.shape == [300, 8] and f.left.axis == 0 and f.left.dtype == "int8"
    assert f.right.shape == [8, 200] and f.right.axis == 1
    # int8 factors add little to the truncation's own error (which is the noise).
    floor = best_float_error(m, 8)
    assert floor < f.relative_error <= 1.15 * floor
    # The reported error is the one of the product qext computes.
    product = qext.linalg.matmul(f.left, f.right)
    assert abs((m - product).norm().item() / m.norm().item() - f.relative_error) < 1e-6
    # Stored: int8 values plus a float scale and int32 zero point per row / column.
    assert f.bytes == (300 + 200) * 8 + (300 + 200) * 8
    assert f.float_bytes == 300 * 200 * 4
    int4 = qext.linalg.factorize(m, rank=8, dtype="int4")
    assert int4.left.dtype == "int4" and int4.bytes < f.bytes
    assert f.relative_error < int4.relative_error < 0.2


def test_energy_picks_the_smallest_rank_that_keeps_it():
    m = ratings()
    s2 = torch.linalg.svdvals(m.double()).square()
    share = (s2.cumsum(0) / s2.sum())
    for energy in (0.5, 0.9, 0.99, 0.999):
        f = qext.linalg.factorize(m, energy=energy)
        want = int((share < energy).sum()) + 1
        assert f.rank == want, energy
        assert f.energy >= energy and (f.rank == 1 or share[f.rank - 2].item() < energy)
    assert qext.linalg.factorize(m, energy=1.0).rank <= 200
    assert qext.linalg.factorize(m, rank=10_000).rank == 200  # capped at min(M, N)
    zero = qext.linalg.factorize(torch.zeros(5, 4), energy=0.9)
    assert zero.rank == 1 and zero.relative_error == 0.0


def test_factorize_rejects_bad_input():
    m = ratings(20, 10)
    with pytest.raises(ValueError, match="exactly one of rank and energy"):
        qext.linalg.factorize(m)
    with pytest.raises(ValueError, match="exactly one of rank and energy"):
        qext.linalg.factorize(m, rank=2, energy=0.5)
    with pytest.raises(ValueError, match=r"energy must be in \(0, 1\]"):
        qext.linalg.factorize(m, energy=1.5)
    with pytest.raises(ValueError, match="rank"):
        qext.linalg.factorize(m, rank=-3)
    with pytest.raises(ValueError, match="2-D"):
        qext.linalg.factorize(torch.randn(2, 3, 4), rank=1)
    with pytest.raises(ValueError, match="float32"):
        qext.linalg.factorize(m.double(), rank=1)
    with pytest.raises(ValueError, match="empty"):
        qext.linalg.factorize(torch.zeros(0, 3), rank=1)
    bad = m.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        qext.linalg.factorize(bad, rank=2)
    with pytest.raises(ValueError, match="int8 or int4"):
        qext.linalg.factorize(m, rank=2, dtype="uint8")


def test_low_rank_linears_in_quantize_dynamic(tmp_path):
    torch.manual_seed(0)
    model = FashionMlp().eval()
    # fc1 with a clear rank-32 structure, so the factors keep its function.
    with torch.no_grad():
        model.fc1.weight.copy_(torch.randn(512, 32) @ torch.randn(32, 784) / 30)
    scripted = torch.jit.script(model)
    q = qext.quantize_dynamic(scripted, qext.DynamicConfig(low_rank=32))
    graph = str(q.graph)
    # fc1: 784 -> 32 -> 512 and fc2 512 -> 32 -> 256 (two ops each); out (256 x 10) stays one layer.
    assert graph.count("qext::linear_dynamic") == 5
    rows = {layer.name: layer for layer in qext.report(q).layers}
    assert rows["fc1"].status == "int8" and "low rank 32 of 512" in rows["fc1"].reason
    assert rows["fc1"].bytes_after == 32 * (784 + 512) + (32 + 512) * 4
    assert "2x smaller" in rows["out"].reason and rows["out"].status == "int8"
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        want = model.fc1(x.flatten(1))
        got = qext.quantize_dynamic(torch.jit.script(nn.Sequential(nn.Flatten(), model.fc1)),
                                    qext.DynamicConfig(low_rank=32))(x)
    assert F.cosine_similarity(got.flatten(), want.flatten(), 0) > 0.999
    # Saved and loaded: same outputs, a smaller file than plain int8.
    plain = qext.quantize_dynamic(scripted)
    qext.save(q, tmp_path / "lr.pt")
    qext.save(plain, tmp_path / "int8.pt")
    loaded = qext.load(tmp_path / "lr.pt")
    assert torch.equal(loaded(x), q(x))
    assert (tmp_path / "lr.pt").stat().st_size < 0.3 * (tmp_path / "int8.pt").stat().st_size


def test_low_rank_config_errors():
    scripted = torch.jit.script(FashionMlp().eval())
    with pytest.raises(ValueError, match="low_rank must be an int >= 0"):
        qext.quantize_dynamic(scripted, qext.DynamicConfig(low_rank=-1))
    with pytest.raises(ValueError, match=r"low_rank_energy must be in \(0, 1\]"):
        qext.quantize_dynamic(scripted, qext.DynamicConfig(low_rank_energy=1.5))
    with pytest.raises(ValueError, match="not both"):
        qext.quantize_dynamic(scripted, qext.DynamicConfig(low_rank=8, low_rank_energy=0.9))
    with pytest.raises(ValueError, match="weight_bits=8 or 7 and per-channel"):
        qext.quantize_dynamic(scripted, qext.DynamicConfig(low_rank=8, weight_bits=4))
    with pytest.raises(ValueError, match="weight_bits=8 or 7 and per-channel"):
        qext.quantize_dynamic(scripted, qext.DynamicConfig(low_rank=8, weight_granularity="per_tensor"))


def test_real_fashion_mnist_accuracy_by_rank():
    """A trained MLP's hidden layers at ranks 64 and 32: accuracy against size.
    (Their singular values are spread -- 90 % of the energy needs rank 255 of
    512 -- yet the function they compute survives much lower ranks.)"""
    try:
        (x_train, y_train), (x_test, y_test) = real_data.fashion_mnist("train"), real_data.fashion_mnist("t10k")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    model = train_fashion_mlp(x_train, y_train)
    scripted = torch.jit.script(model)
    acc, weight_bytes = {}, {}
    with torch.no_grad():
        acc["fp32"] = (model(x_test).argmax(1) == y_test).float().mean().item() * 100
        for rank in (0, 64, 32):
            q = qext.quantize_dynamic(scripted, qext.DynamicConfig(low_rank=rank))
            acc[rank] = (q(x_test).argmax(1) == y_test).float().mean().item() * 100
            weight_bytes[rank] = sum(layer.bytes_after for layer in qext.report(q).layers)
    print("Fashion-MNIST MLP accuracy:", {k: f"{v:.2f} %" for k, v in acc.items()},
          "weight bytes:", weight_bytes)
    assert acc["fp32"] > 80
    assert abs(acc["fp32"] - acc[0]) <= 0.5
    assert acc["fp32"] - acc[64] <= 1.0 and weight_bytes[64] < 0.3 * weight_bytes[0]
    assert acc["fp32"] - acc[32] <= 1.5 and weight_bytes[32] < 0.15 * weight_bytes[0]


def test_cli_low_rank(tmp_path):
    import subprocess

    torch.manual_seed(1)
    model = FashionMlp().eval()
    torch.jit.save(torch.jit.script(model), tmp_path / "mlp.pt")
    run = [sys.executable, "-m", "qext", "quantize", str(tmp_path / "mlp.pt"), str(tmp_path / "q.pt")]
    r = subprocess.run(run + ["--mode", "dynamic", "--low-rank", "16"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "low rank 16 of 512" in r.stdout
    assert str(qext.load(tmp_path / "q.pt").graph).count("qext::linear_dynamic") == 5
    r = subprocess.run(run + ["--mode", "static", "--calib", "x.pt", "--low-rank", "16"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode != 0 and "--low-rank applies to --mode dynamic only" in r.stderr
