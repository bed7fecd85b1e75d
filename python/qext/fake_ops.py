"""Fake (meta) implementations of qext's ops: output shapes and dtypes without
data, so models using them trace under FakeTensorMode (torch.compile,
torch.export). The schemas stay declared in C++ (csrc/ops/registration.cpp);
shapes come from torch's own ops on meta tensors where one exists."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _meta(shape, dtype=torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def _channels_last_u8(like: torch.Tensor, shape) -> torch.Tensor:
    """The int8 conv and pooling kernels write NHWC."""
    return like.new_empty(shape, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)


def _quantized_dtype(qmin: int) -> torch.dtype:
    return torch.uint8 if qmin >= 0 else torch.int8


class _FakeWeight:
    """What torch.compile traces with in place of a qext weight object: its
    __obj_flatten__ fields as attributes (named apart from the C++ methods)
    and the methods the fake kernels call."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


class FakePackedLinearWeight(_FakeWeight):
    def scales(self):
        return self.weight_scales

    def out_features(self):
        return self.n

    def in_features(self):
        return self.k


class FakeLowBitLinearWeight(FakePackedLinearWeight):
    def scales(self):
        return self.group_scales


class FakePackedConvWeight(_FakeWeight):
    def scales(self):
        return self.weight_scales

    def out_channels(self):
        return self.weight_shape[0]

    def kernel_size(self):
        return list(self.weight_shape[2:])

    def stride(self):
        return list(self.conv_stride)

    def padding(self):
        return list(self.conv_padding)

    def dilation(self):
        return list(self.conv_dilation)


class FakePackedEmbedding(_FakeWeight):
    def weight(self):
        return self.int8_table

    def scales(self):
        return self.row_scales

    def dim(self):
        return self.int8_table.shape[1]


class FakePackedRnnWeight(_FakeWeight):
    def hidden_size(self):
        return self.hidden

    def num_layers(self):
        return self.layers

    def directions(self):
        return self.dirs


def _unflatten(cls, flattened):
    return cls(**dict(flattened))


def _register() -> None:
    for name, cls in (("PackedLinearWeight", FakePackedLinearWeight), ("PackedConvWeight", FakePackedConvWeight),
                      ("PackedEmbedding", FakePackedEmbedding), ("PackedRnnWeight", FakePackedRnnWeight),
                      ("LowBitLinearWeight", FakeLowBitLinearWeight)):
        cls.__obj_unflatten__ = classmethod(_unflatten)  # (must be the class's own attribute)
        torch._library.register_fake_class(f"qext::{name}")(cls)
    fake = torch.library.register_fake

    @fake("qext::choose_qparams")
    def _(x, axis=None, qmin=0, qmax=255, symmetric=False):
        shape = () if axis is None else (x.shape[axis],)
        return x.new_empty(shape, dtype=torch.float32), x.new_empty(shape, dtype=torch.int32)

    @fake("qext::quantize")
    def _(x, scale, zero_point, axis=None, qmin=0, qmax=255):
        return x.new_empty(x.shape, dtype=_quantized_dtype(qmin))

    @fake("qext::dequantize")
    def _(q, scale, zero_point, axis=None):
        return q.new_empty(q.shape, dtype=torch.float32)

    @fake("qext::qmatmul_int32")
    def _(a, a_zero_point, b, b_zero_point):
        return a.new_empty((*a.shape[:-1], b.shape[-1]), dtype=torch.int32)

    @fake("qext::qmatmul")
    def _(a, a_scale, a_zero_point, b, b_scale, b_zero_point, bias=None):
        return a.new_empty((*a.shape[:-1], b.shape[-1]), dtype=torch.float32)

    @fake("qext::attention")
    def _(query, key, value, attn_mask=None, is_causal=False, *, scale=None):
        return query.new_empty((*query.shape[:-1], value.shape[-1]))

    @fake("qext::pack_int4")
    def _(q):
        return q.new_empty((*q.shape[:-1], (q.shape[-1] + 1) // 2), dtype=torch.uint8)

    @fake("qext::unpack_int4")
    def _(packed, n):
        return packed.new_empty((*packed.shape[:-1], n), dtype=torch.int8)

    @fake("qext::observe_moving_average_")
    def _(x, min_val, max_val, averaging_constant):
        return None

    @fake("qext::observe_channel_sum_")
    def _(x, sums, dim):
        return None

    @fake("qext::fake_quantize")
    def _(x, scale, zero_point, axis=None, qmin=0, qmax=255):
        return torch.empty_like(x)

    @fake("qext::quantize_per_tensor")
    def _(x, scale, zero_point):
        return x.new_empty(x.shape, dtype=torch.uint8)

    @fake("qext::dequantize_per_tensor")
    def _(q, scale, zero_point):
        return q.new_empty(q.shape, dtype=torch.float32)

    @fake("qext::check_finite")
    def _(x):
        return x

    @fake("qext::observe")
    def _(x, observer):
        return x

    @fake("qext::_probe")
    def _(x, key):
        return x

    @fake("qext::mul_int8")
    def _(a, a_scale, a_zero_point, b, b_scale, b_zero_point, out_scale, out_zero_point):
        shape = torch.broadcast_shapes(a.shape, b.shape)
        nhwc = len(shape) == 4 and a.dim() == 4 and not a.is_contiguous() and a.is_contiguous(memory_format=torch.channels_last)
        out = a.new_empty(shape, dtype=torch.uint8)
        return out.contiguous(memory_format=torch.channels_last) if nhwc else out

    @fake("qext::lut_u8")
    def _(x, table):
        return torch.empty_like(x)

    @fake("qext::layer_norm_int8")
    def _(x, x_scale, x_zero_point, normalized_shape, weight, bias, eps, out_scale, out_zero_point):
        return x.new_empty(x.shape, dtype=torch.uint8)

    @fake("qext::add_int8")
    def _(a, a_scale, a_zero_point, b, b_scale, b_zero_point, out_scale, out_zero_point, relu=False):
        return a.new_empty(torch.broadcast_shapes(a.shape, b.shape), dtype=torch.uint8)

    @fake("qext::cat_int8")
    def _(xs, scales, zero_points, dim, out_scale, out_zero_point):
        shape = torch.cat([_meta(x.shape) for x in xs], dim).shape
        return xs[0].new_empty(shape, dtype=torch.uint8)

    @fake("qext::max_pool2d_int8")
    def _(x, kernel_size, stride, padding, dilation, ceil_mode=False):
        shape = F.max_pool2d(_meta(x.shape), kernel_size, stride or kernel_size, padding, dilation, ceil_mode).shape
        return _channels_last_u8(x, shape)

    @fake("qext::avg_pool2d_int8")
    def _(x, zero_point, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True, divisor_override=None):
        shape = F.avg_pool2d(_meta(x.shape), kernel_size, stride or kernel_size, padding, ceil_mode).shape
        return _channels_last_u8(x, shape)

    @fake("qext::adaptive_avg_pool2d_int8")
    def _(x, zero_point, output_size):
        return _channels_last_u8(x, F.adaptive_avg_pool2d(_meta(x.shape), output_size).shape)

    @fake("qext::fold_batch_norm")
    def _(weight, bias, bn_weight, bn_bias, running_mean, running_var, eps):
        return torch.empty_like(weight), weight.new_empty((weight.shape[0],))

    @fake("qext::_qgemm_int32")
    def _(a, a_zero_point, w, isa):
        return a.new_empty((a.shape[0], w.shape[0]), dtype=torch.int32)

    @fake("qext::linear_dynamic")
    def _(x, weight, bias=None, per_row=False, relu=False, activation_bits=8, gelu=False):
        return x.new_empty((*x.shape[:-1], weight.out_features()))

    @fake("qext::linear_dynamic_group")
    def _(x, weights, biases, per_row=False, activation_bits=8):
        return [x.new_empty((*x.shape[:-1], w.out_features())) for w in weights]

    @fake("qext::linear_lowbit")
    def _(x, weight, bias=None, per_row=True, relu=False):
        return x.new_empty((*x.shape[:-1], weight.out_features()))

    @fake("qext::embedding_lowbit")
    def _(indices, table):
        return indices.new_empty((*indices.shape, table.in_features()), dtype=torch.float32)

    @fake("qext::linear_int8")
    def _(x, x_scale, x_zero_point, weight, bias, out_scale, out_zero_point, relu=False, clamp_min=None, clamp_max=None):
        return x.new_empty((*x.shape[:-1], weight.out_features()), dtype=torch.uint8)

    @fake("qext::conv2d_int8")
    def _(x, x_scale, x_zero_point, weight, bias, out_scale, out_zero_point, relu=False, clamp_min=None, clamp_max=None):
        kh, kw = weight.kernel_size()
        w = _meta((weight.out_channels(), x.shape[1], kh, kw))
        out = F.conv2d(_meta(x.shape), w, None, weight.stride(), weight.padding(), weight.dilation())
        return _channels_last_u8(x, out.shape)

    @fake("qext::embedding_int8")
    def _(indices, table):
        return indices.new_empty((*indices.shape, table.dim()), dtype=torch.float32)

    def rnn_shapes(x, weight, batch_first):
        steps, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
        h = weight.hidden_size()
        out = (batch, steps, weight.directions() * h) if batch_first else (steps, batch, weight.directions() * h)
        state = (weight.num_layers() * weight.directions(), batch, h)
        return x.new_empty(out), x.new_empty(state)

    @fake("qext::lstm_dynamic")
    def _(x, hx, weight, batch_first=False, per_row=True):
        out, state = rnn_shapes(x, weight, batch_first)
        return out, state, torch.empty_like(state)

    @fake("qext::gru_dynamic")
    def _(x, hx, weight, batch_first=False, per_row=True):
        return rnn_shapes(x, weight, batch_first)


_register()
