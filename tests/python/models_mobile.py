"""Layouts of the depthwise-conv networks users deploy: MobileNetV3-Large,
EfficientNet-B0 and ConvNeXt-T, with torchvision's settings (torchvision
itself cannot be imported beside the CPU torch here). Random weights; pass
them through models.randomize_batch_norm for BatchNorm statistics a trained
network would have. ConvNeXt's LayerNorms and layer scales are randomised
by randomize_convnext.
"""

from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F


def _divisible(v: float, divisor: int = 8) -> int:
    """torchvision's _make_divisible: round to a multiple of 8, never 10 % below v."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
             act: nn.Module = None) -> List[nn.Module]:
    layers: List[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    return layers + ([act] if act is not None else [])


class SqueezeExcite(nn.Module):
    """x * gate(fc2(act(fc1(mean(x))))), both fcs as 1x1 convs with bias."""

    def __init__(self, channels: int, squeeze: int, act: nn.Module, gate: nn.Module):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = act
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class _InvertedBlock(nn.Module):
    """`block`, plus the input when the subclass sets `residual` (stochastic depth
    is the identity in eval)."""

    def forward(self, x):
        if self.residual:
            return x + self.block(x)
        return self.block(x)


class MobileNetV3Block(_InvertedBlock):
    """1x1 expand (when wider), k x k depthwise, optional SE, 1x1 project (+ residual)."""

    def __init__(self, cin: int, kernel: int, hidden: int, cout: int, se: bool, hardswish: bool, stride: int):
        super().__init__()
        act = nn.Hardswish if hardswish else nn.ReLU
        layers: List[nn.Module] = []
        if hidden != cin:
            layers += _conv_bn(cin, hidden, 1, act=act())
        layers += _conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=act())
        if se:
            layers.append(SqueezeExcite(hidden, _divisible(hidden // 4), nn.ReLU(), nn.Hardsigmoid()))
        layers += _conv_bn(hidden, cout, 1)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout


class MobileNetV3Largeish(nn.Module):
    """torchvision's mobilenet_v3_large (width 1.0)."""

    # input, kernel, expanded, output, SE, hardswish, stride
    SETTINGS = [(16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2), (24, 3, 72, 24, False, False, 1),
                (24, 5, 72, 40, True, False, 2), (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
                (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
                (80, 3, 184, 80, False, True, 1), (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
                (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1), (160, 5, 960, 160, True, True, 1)]

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: List[nn.Module] = _conv_bn(3, 16, 3, 2, act=nn.Hardswish())
        layers += [MobileNetV3Block(*s) for s in self.SETTINGS]
        layers += _conv_bn(160, 960, 1, act=nn.Hardswish())
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(960, 1280), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class MBConv(_InvertedBlock):
    """EfficientNet's block: 1x1 expand, k x k depthwise, SE on the block's input width, 1x1 project."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: List[nn.Module] = []
        if expand != 1:
            layers += _conv_bn(cin, hidden, 1, act=nn.SiLU())
        layers += _conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=nn.SiLU())
        layers.append(SqueezeExcite(hidden, max(1, cin // 4), nn.SiLU(), nn.Sigmoid()))
        layers += _conv_bn(hidden, cout, 1)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout


class EfficientNetB0ish(nn.Module):
    """torchvision's efficientnet_b0."""

    # expand, kernel, stride, input, output, layers
    SETTINGS = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: List[nn.Module] = _conv_bn(3, 32, 3, 2, act=nn.SiLU())
        for expand, kernel, stride, cin, cout, repeats in self.SETTINGS:
            for i in range(repeats):
                layers.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        layers += _conv_bn(320, 1280, 1, act=nn.SiLU())
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW image (torchvision's, for ConvNeXt)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    """ConvNeXt's block: 7x7 depthwise, LayerNorm, Linear 4x, GELU, Linear, layer scale, residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), 1e-6))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + self.layer_scale * y.permute(0, 3, 1, 2)


class ConvNeXtTish(nn.Module):
    """torchvision's convnext_tiny (depths 3-3-9-3, widths 96-192-384-768)."""

    def __init__(self, classes: int = 1000, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)):
        super().__init__()
        layers: List[nn.Module] = [nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6)]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            if i > 0:
                layers += [LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, 2)]
            layers += [CNBlock(dim) for _ in range(depth)]
        self.features = nn.Sequential(*layers)
        self.norm = LayerNorm2d(dims[-1], eps=1e-6)
        self.classifier = nn.Linear(dims[-1], classes)

    def forward(self, x):
        x = self.norm(F.adaptive_avg_pool2d(self.features(x), 1))
        return self.classifier(x.flatten(1))


def randomize_convnext(model: nn.Module, seed: int = 0) -> nn.Module:
    """LayerNorm affines and layer scales of a trained ConvNeXt's size (trained
    layer scales are ~0.1-1, not the 1e-6 they start at, or blocks add nothing)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            m.weight.data.copy_(torch.rand(m.normalized_shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.normalized_shape, generator=g) * 0.1)
        if isinstance(m, CNBlock):
            m.layer_scale.data.copy_(torch.rand(m.layer_scale.shape, generator=g) * 0.5 + 0.1)
    return model.eval()
