"""Conv / linear layers that train with fake-quantized weights. Each has
``to_float()``: the plain layer static convert will quantize, with the same
(folded) weights the training forward fake-quantized, so convert packs
exactly the int8 values that were simulated.

In eval mode they compute like the int8 kernels: integer-valued activations
and weights (exact in float32 while sums stay below 2**24), then the kernels'
epilogue ``acc * (input_scale * weight_scale) + bias`` in the same float32
steps, so with the fake-quant after them the eval model and the converted
int8 model give the same values, not just close ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..numerics import quantize
from .fake_quant import ActivationFakeQuantize, fake_quantize_weight, weight_qparams


class _IntegerSimulation:
    """Eval-mode forward on integer values; needs the fake-quant that feeds the
    layer (set by qext.qat.prepare, kept out of the module tree)."""

    weight_bits: int

    def set_input_quant(self, fq: ActivationFakeQuantize) -> None:
        object.__setattr__(self, "_input_quant", fq)

    def _use_integers(self) -> bool:
        fq = getattr(self, "_input_quant", None)
        return not self.training and fq is not None and fq.observed

    def _integer_operands(self, x: torch.Tensor, weight: torch.Tensor):
        """(x - z_x) / s_x and w / s_w as float integers, and s_x * s_w per channel."""
        x_scale, _ = self._input_quant.qparams()
        w_scale, w_zero_point, qmax = weight_qparams(weight, self.weight_bits)
        x_int = torch.round(x / x_scale.detach())
        w_int = quantize(weight.detach(), w_scale, w_zero_point, 0, -qmax, qmax).float()
        return x_int, w_int, x_scale.detach() * w_scale


class QatLinear(_IntegerSimulation, nn.Linear):
    def __init__(self, linear: nn.Linear, weight_bits: int):
        super().__init__(linear.in_features, linear.out_features, linear.bias is not None)
        self.weight, self.bias = linear.weight, linear.bias
        self.weight_bits = weight_bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._use_integers():
            x_int, w_int, scale = self._integer_operands(x, self.weight)
            y = F.linear(x_int, w_int) * scale
            return y if self.bias is None else y + self.bias
        return F.linear(x, fake_quantize_weight(self.weight, self.weight_bits), self.bias)

    def to_float(self) -> nn.Linear:
        out = nn.Linear(self.in_features, self.out_features, self.bias is not None)
        out.load_state_dict({k: v.detach() for k, v in self.state_dict().items()})
        return out


class QatConv2d(_IntegerSimulation, nn.Conv2d):
    def __init__(self, conv: nn.Conv2d, weight_bits: int):
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
        self.weight, self.bias = conv.weight, conv.bias
        self.weight_bits = weight_bits

    def _integer_conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x_int, w_int, scale = self._integer_operands(x, weight)
        y = self._conv_forward(x_int, w_int, None) * scale.reshape(1, -1, 1, 1)
        return y if bias is None else y + bias.reshape(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._use_integers():
            return self._integer_conv(x, self.weight, self.bias)
        return self._conv_forward(x, fake_quantize_weight(self.weight, self.weight_bits), self.bias)

    def to_float(self) -> nn.Conv2d:
        out = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                        self.dilation, self.groups, True, self.padding_mode)
        with torch.no_grad():
            out.weight.copy_(self.weight)
            out.bias.copy_(self.bias if self.bias is not None else torch.zeros(self.out_channels))
        return out


class QatConvBn2d(QatConv2d):
    """Conv2d + BatchNorm2d trained fold-aware (Jacob et al. 2018, as in
    torch.ao): the weight is folded with the running statistics and then
    fake-quantized, exactly what convert will quantize. While BatchNorm is not
    frozen the conv output is scaled back and BatchNorm normalises with the
    batch statistics (and updates its running ones); once frozen, or in eval
    mode, the layer computes conv(x, fq(w_fold)) + b_fold like the int8 model.
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, weight_bits: int):
        super().__init__(conv, weight_bits)
        self.bn = bn
        self.register_buffer("bn_frozen", torch.tensor(False))
        self.steps_until_bn_frozen: int | None = None

    def freeze_batch_norm(self) -> None:
        self.bn_frozen.fill_(True)

    def _folded(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(factor, folded weight, folded bias) from the running statistics."""
        bn = self.bn
        gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
        beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
        factor = gamma / torch.sqrt(bn.running_var + bn.eps)
        bias = self.bias if self.bias is not None else torch.zeros_like(bn.running_mean)
        folded_bias = beta + (bias - bn.running_mean) * factor
        return factor, self.weight * factor.reshape(-1, 1, 1, 1), folded_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor, weight, folded_bias = self._folded()
        if self._use_integers():
            return self._integer_conv(x, weight, folded_bias)
        weight_q = fake_quantize_weight(weight, self.weight_bits)
        if not (self.training and not bool(self.bn_frozen)):
            return self._conv_forward(x, weight_q, folded_bias)
        if self.steps_until_bn_frozen is not None:
            self.steps_until_bn_frozen -= 1
            if self.steps_until_bn_frozen <= 0:
                self.freeze_batch_norm()
        y = self._conv_forward(x, weight_q, None) / factor.reshape(1, -1, 1, 1)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        return self.bn(y)

    def to_float(self) -> nn.Conv2d:
        out = super().to_float()
        with torch.no_grad():
            _, weight, folded_bias = self._folded()
            out.weight.copy_(weight)
            out.bias.copy_(folded_bias)
        return out
