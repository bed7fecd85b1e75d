"""Small models written for the tests (scripting needs them in a real file)."""

from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d: int = 32, hidden: int = 64):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Nested(nn.Module):
    """ModuleList of one class (shared TorchScript type), control flow, a
    functional linear, a matmul with bias, and a second method."""

    def __init__(self, d: int = 32):
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) for _ in range(3)])
        self.proj_w = nn.Parameter(torch.randn(d, 16) / d**0.5)
        self.proj_b = nn.Parameter(torch.randn(16))
        self.fw = nn.Parameter(torch.randn(8, 16) / 4)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        if bool(x.mean() > 100.0):
            x = x * 0.5
        y = torch.matmul(x, self.proj_w) + self.proj_b
        y = F.linear(y, self.fw)
        return self.head(y)

    @torch.jit.export
    def embed(self, x):
        return self.blocks[0](x)


class NoLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 3)

    def forward(self, x):
        return torch.relu(self.conv(x))


class NotScriptable(nn.Module):
    """Scripting fails (a Python list of mixed types); tracing works."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 8)
        self.extra: List = [1, "two"]

    def forward(self, x):
        return self.fc(x) * len(self.extra)


def transformer_encoder(d_model: int = 64, heads: int = 4, ffn: int = 128, layers: int = 2) -> nn.Module:
    layer = nn.TransformerEncoderLayer(d_model, heads, ffn, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False).eval()
