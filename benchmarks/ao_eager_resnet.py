"""torch.ao eager-mode static quantization of tests/python/models.py's
ResNet18ish, as a peer in bench_resnet.py.

Eager mode cannot take the model as it is: it needs quant/dequant stubs,
activations as modules (to fuse conv-bn-relu) and the residual add as a
FloatFunctional. This file makes those edits on a replica that shares the
original's (deep-copied) layers, which is what a torch.ao user has to do by hand.
"""

from __future__ import annotations

import copy

import torch
from common import quiet_peers
from torch import nn


class _EagerBlock(nn.Module):
    def __init__(self, block: nn.Module):
        from torch.ao.nn.quantized import FloatFunctional

        super().__init__()
        self.conv1, self.bn1, self.relu1 = block.conv1, block.bn1, nn.ReLU()
        self.conv2, self.bn2 = block.conv2, block.bn2
        self.down = block.down
        self.add_relu = FloatFunctional()

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.add_relu.add_relu(self.bn2(self.conv2(out)), identity)

    def fuse_lists(self) -> list[list[str]]:
        lists = [["conv1", "bn1", "relu1"], ["conv2", "bn2"]]
        return lists + ([["down.0", "down.1"]] if self.down is not None else [])


class _EagerResNet(nn.Module):
    def __init__(self, model: nn.Module):
        from torch.ao.quantization import DeQuantStub, QuantStub

        super().__init__()
        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.conv1, self.bn1, self.relu = model.conv1, model.bn1, nn.ReLU()
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.layers = nn.Sequential(*[_EagerBlock(b) for b in model.layers])
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.fc = model.fc

    def forward(self, x):
        x = self.pool(self.relu(self.bn1(self.conv1(self.quant(x)))))
        x = self.avg(self.layers(x)).flatten(1)
        return self.dequant(self.fc(x))


def quantize_eager(model: nn.Module, calib) -> nn.Module:
    """Fuse, prepare (x86 qconfig), calibrate on `calib`, convert; `model` is untouched."""
    with quiet_peers():
        from torch.ao.quantization import (
            convert,
            fuse_modules,
            get_default_qconfig,
            prepare,
        )

        torch.backends.quantized.engine = "x86"
        m = _EagerResNet(copy.deepcopy(model)).eval()
        fuse_modules(m, [["conv1", "bn1", "relu"]], inplace=True)
        for block in m.layers:
            fuse_modules(block, block.fuse_lists(), inplace=True)
        m.qconfig = get_default_qconfig("x86")
        prepare(m, inplace=True)
        with torch.no_grad():
            for x in calib:
                m(x)
        return convert(m, inplace=True)
