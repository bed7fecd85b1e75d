"""Trains the bundled example model, examples/digits_mlp.pt: an MLP on
scikit-learn's 8x8 handwritten digits (1797 real images, offline), scripted
with TorchScript. Run again to regenerate it (about 20 s on one core):

    .venv/bin/python examples/train_digits_mlp.py
"""

from pathlib import Path

import torch
import torch.nn as nn
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent


class DigitsMLP(nn.Module):
    def __init__(self, hidden: int = 512):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 10),
        )

    def forward(self, x):
        return self.layers(x / 16.0)  # pixel values are 0..16


def digits_split():
    """The same split everywhere: the first 1437 images train, the last 360 test."""
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target)
    return (x[:1437], y[:1437]), (x[1437:], y[1437:])


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, batch: int = 64) -> nn.Module:
    """Plain Adam + cross-entropy training; returns the model in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def main() -> None:
    torch.manual_seed(0)
    (xtr, ytr), (xte, yte) = digits_split()
    model = fit(DigitsMLP(), xtr, ytr, epochs=30, lr=1e-3)
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    print(f"test accuracy {acc:.2%}")
    torch.jit.save(torch.jit.script(model), str(HERE / "digits_mlp.pt"))
    print(f"wrote {HERE / 'digits_mlp.pt'}")


if __name__ == "__main__":
    main()
