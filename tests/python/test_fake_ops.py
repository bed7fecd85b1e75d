"""qext's ops under FakeTensorMode and torch.compile (issue 15): every op's
fake kernel (python/qext/fake_ops.py) gives the real output's shape and dtype;
the tensor-only ops pass torch.library.opcheck; functions calling qext ops
compile with fullgraph=True and compute what eager does."""

import pytest
import torch
import torch.nn as nn
from torch._subclasses.fake_tensor import FakeTensorMode

import qext

g = torch.Generator().manual_seed(0)
U8 = torch.randint(0, 256, (2, 4, 9, 9), dtype=torch.uint8, generator=g)
X = torch.randn(2, 4, 9, 9, generator=g)
W = torch.randn(6, 4, 3, 3, generator=g)

TENSOR_OPS = [
    ("choose_qparams", (X, None, 0, 255, False)),
    ("choose_qparams", (X, 1, -127, 127, True)),
    ("quantize", (X, torch.tensor(0.05), torch.tensor(3), None, 0, 255)),
    ("quantize", (X, torch.full((4,), 0.05), torch.zeros(4, dtype=torch.int32), 1, -127, 127)),
    ("dequantize", (U8, torch.tensor(0.05), torch.tensor(3), None)),
    ("quantize_per_tensor", (X, 0.05, 128)),
    ("dequantize_per_tensor", (U8, 0.05, 128)),
    ("add_int8", (U8, 0.1, 3, U8.flip(0), 0.2, 7, 0.3, 5, True)),
    ("mul_int8", (U8, 0.1, 3, U8[:, :, :1, :1].contiguous(), 0.2, 7, 0.3, 5)),
    ("lut_u8", (U8, torch.randint(0, 256, (256,), dtype=torch.uint8, generator=g))),
    ("lut_u8", (U8, torch.randint(0, 256, (4, 256), dtype=torch.uint8, generator=g))),
    ("layer_norm_int8", (U8, 0.1, 3, [9, 9], torch.randn(9, 9), torch.randn(9, 9), 1e-5, 0.05, 128)),
    ("cat_int8", ([U8, U8[:, :2]], [0.1, 0.2], [3, 4], 1, 0.3, 5)),
    ("max_pool2d_int8", (U8, [3, 3], [2, 2], [1, 1], [1, 1], True)),
    ("avg_pool2d_int8", (U8, 7, [3, 3], [2, 2], [1, 1], False, True, None)),
    ("adaptive_avg_pool2d_int8", (U8, 7, [2, 3])),
    ("qmatmul_int32", (U8[0, 0], torch.tensor(3), torch.randint(-128, 128, (9, 5), dtype=torch.int8, generator=g),
                       torch.tensor(-2))),
    ("qmatmul", (U8[:, 0], torch.tensor(0.1), torch.tensor(3), U8[0, 1:3], torch.rand(9) + 0.1,
                 torch.randint(0, 256, (9,), dtype=torch.int32, generator=g), torch.randn(9))),
    ("pack_int4", (torch.randint(-8, 8, (3, 7), dtype=torch.int8, generator=g),)),
    ("attention", (X, X[:, :, :5], X[:, :, :5, :6].contiguous(), torch.randn(2, 1, 9, 5) > 0, False)),
    ("attention", (X, X, X, None, True)),
    ("unpack_int4", (U8[0, 0, :, :4], 7)),
    ("observe_moving_average_", (X, torch.tensor(-0.5), torch.tensor(0.7), 0.1)),
    ("observe_channel_sum_", (X, torch.zeros(5, dtype=torch.float64), 1)),
    ("fold_batch_norm", (W, torch.randn(6), torch.rand(6) + 0.5, torch.randn(6), torch.randn(6), torch.rand(6) + 0.5, 1e-5)),
]


@pytest.mark.parametrize("name,args", TENSOR_OPS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TENSOR_OPS)])
def test_tensor_ops_pass_opcheck(name, args):
    torch.library.opcheck(getattr(torch.ops.qext, name).default, args)


def _weights():
    torch.manual_seed(1)
    linear = qext.quantize_linear_weight(torch.randn(10, 16))
    convs = [qext.quantize_conv_weight(torch.randn(8, 4 // groups, 3, 3), stride, padding, dilation, groups)
             for stride, padding, dilation, groups in ((1, 1, 1, 1), (2, 0, 2, 2), (1, 2, 1, 4))]
    table = torch.ops.qext.quantize_embedding(torch.randn(30, 12))
    lstm = nn.LSTM(16, 8, num_layers=2, bidirectional=True)
    gru = nn.GRU(16, 8)
    rnn_l = torch.ops.qext.quantize_rnn_weight("lstm", [p.detach() for p in lstm._flat_weights], True, 2, True)
    rnn_g = torch.ops.qext.quantize_rnn_weight("gru", [p.detach() for p in gru._flat_weights], True, 1, False)
    lowbit = qext.quantize_linear_weight_lowbit(torch.randn(10, 16), 4, 8)
    return linear, convs, table, rnn_l, rnn_g, lowbit


def _class_op_calls():
    linear, convs, table, rnn_l, rnn_g, lowbit = _weights()
    x16 = torch.randn(3, 5, 16)
    calls = [
        ("linear_dynamic", (x16, linear, torch.randn(10), True, True)),
        ("linear_dynamic_group", (x16, [linear, linear], [None, torch.randn(10)], True, 7)),
        ("linear_lowbit", (x16, lowbit, torch.randn(10), True, False)),
        ("embedding_lowbit", (torch.randint(0, 10, (2, 7)), lowbit)),
        ("linear_int8", (torch.randint(0, 256, (4, 16), dtype=torch.uint8), 0.1, 3, linear, None, 0.2, 4, False, None, None)),
        ("embedding_int8", (torch.randint(0, 30, (2, 7)), table)),
        ("lstm_dynamic", (x16, [torch.zeros(4, 3, 8), torch.zeros(4, 3, 8)], rnn_l, True, True)),
        ("gru_dynamic", (x16, torch.zeros(1, 5, 8), rnn_g, False, True)),
    ]
    calls += [("conv2d_int8", (U8, 0.1, 3, w, None, 0.2, 4, True, None, None)) for w in convs]
    return calls


def test_class_ops_fake_shapes_match_the_real_ones():
    for name, args in _class_op_calls():
        op = getattr(torch.ops.qext, name)
        real = op(*args)
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else
                         [mode.from_tensor(t) for t in a] if isinstance(a, list) and a and isinstance(a[0], torch.Tensor)
                         else a for a in args]
            fake = op(*fake_args)
        reals = real if isinstance(real, (tuple, list)) else (real,)
        fakes = fake if isinstance(fake, (tuple, list)) else (fake,)
        assert len(fakes) == len(reals), name
        for r, f in zip(reals, fakes):
            assert (f.shape, f.dtype) == (r.shape, r.dtype), name


def test_functions_calling_qext_ops_compile_fullgraph():
    linear, convs, table, _, rnn_g, lowbit = _weights()

    def f(ids, x, seq):
        h = torch.ops.qext.embedding_int8(ids, table).sum(1)
        q = torch.ops.qext.quantize_per_tensor(torch.relu(x), 0.05, 0)
        c = torch.ops.qext.conv2d_int8(q, 0.05, 0, convs[0], None, 0.1, 0, True, None, None)
        y = torch.ops.qext.dequantize_per_tensor(c, 0.1, 0).mean((2, 3))
        r, _ = torch.ops.qext.gru_dynamic(seq, torch.zeros(1, seq.shape[1], 8), rnn_g, False, True)
        z = torch.cat([h, y, r[-1]], 1)[:, :16]
        return qext.linear_dynamic(z, linear, per_row=True), qext.linear_lowbit(z, lowbit), y

    args = (torch.randint(0, 30, (2, 5)), torch.randn(2, 4, 9, 9), torch.randn(6, 2, 16))
    compiled = torch.compile(f, backend="eager", fullgraph=True)
    for want, got in zip(f(*args), compiled(*args)):
        assert torch.equal(want, got)
