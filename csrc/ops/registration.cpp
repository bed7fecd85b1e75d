// The qext op library: every schema is declared here, in C++, so a model saved
// from Python loads in a C++ program and vice versa.
#include <ATen/ATen.h>
#include <torch/custom_class.h>
#include <torch/library.h>

#include "kernels/isa.h"
#include "kernels/qgemm.h"
#include "ops/attention.h"
#include "ops/linear_dynamic.h"
#include "ops/device_quantize.h"
#include "ops/channel_sums.h"
#include "ops/embedding_lowbit.h"
#include "ops/int4_pack.h"
#include "ops/layer_norm_int8.h"
#include "ops/linear_lowbit.h"
#include "ops/observer_class.h"
#include "ops/packed_conv_weight.h"
#include "ops/packed_embedding.h"
#include "ops/pooling_int8.h"
#include "ops/probe.h"
#include "ops/qmatmul.h"
#include "ops/static_int8.h"
#include "ops/packed_linear_weight.h"
#include "ops/packed_rnn_weight.h"
#include "ops/rnn_dynamic.h"
#include "quant/batch_norm_fold.h"
#include "quant/tensor_quant.h"

namespace qext::ops {

namespace {

// Test and debugging hook: the raw int32 GEMM of one ISA path,
// acc[m, n] = sum_k (a[m, k] - a_zero_point[m]) * w[n, k].
at::Tensor qgemm_int32(const at::Tensor& a, const at::Tensor& a_zero_point, const at::Tensor& w,
                       c10::string_view isa_name) {
  constexpr const char* op = "qext::_qgemm_int32";
  TORCH_CHECK(a.dim() == 2 && a.scalar_type() == at::kByte, op,
              ": expected uint8 activations [M, K]; got ", a.scalar_type(), " ", a.sizes());
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kChar, op,
              ": expected int8 weights [N, K]; got ", w.scalar_type(), " ", w.sizes());
  TORCH_CHECK(a.size(1) == w.size(1), op, ": K mismatch: activations have ", a.size(1),
              ", weights ", w.size(1));
  TORCH_CHECK(a_zero_point.numel() == a.size(0), op, ": expected ", a.size(0),
              " zero points; got ", a_zero_point.numel());
  const kernels::Isa isa = kernels::isa_from_name(std::string(isa_name));
  const kernels::PackedWeights packed(w.contiguous().data_ptr<int8_t>(), w.size(0), w.size(1), isa);
  at::Tensor ac = a.contiguous();
  at::Tensor zp = a_zero_point.to(at::kInt).contiguous();
  at::Tensor out = at::empty({a.size(0), w.size(0)}, a.options().dtype(at::kInt));
  kernels::GemmArgs args;
  args.a = ac.data_ptr<uint8_t>();
  args.lda = a.size(1);
  args.a_zero_point = zp.data_ptr<int32_t>();
  args.c = out.data_ptr<int32_t>();
  args.ldc = w.size(0);
  kernels::qgemm(args, packed, kernels::Epilogue{}, 0, a.size(0), 0, packed.num_blocks());
  return out;
}

c10::intrusive_ptr<PackedLinearWeight> quantize_linear_weight(const at::Tensor& w, bool per_channel,
                                                              int64_t qmax, int64_t activation_bits) {
  return PackedLinearWeight::from_float(w, per_channel, qmax, activation_bits);
}

}  // namespace

TORCH_LIBRARY(qext, m) {
  m.class_<PackedLinearWeight>("PackedLinearWeight")
      .def(torch::init<at::Tensor, at::Tensor>())
      .def("weight", &PackedLinearWeight::weight)
      .def("scales", [](const c10::intrusive_ptr<PackedLinearWeight>& self) { return self->scales(); })
      .def("in_features", &PackedLinearWeight::in_features)
      .def("out_features", &PackedLinearWeight::out_features)
      // (name, value) pairs torch.compile turns into qext.fake_ops' fake class.
      .def("__obj_flatten__", [](const c10::intrusive_ptr<PackedLinearWeight>& self) {
        // Only what the object owns (dynamo guards on the tensors' identity:
        // an unpacked temporary would not do) and sizes.
        return std::make_tuple(std::make_tuple(std::string("n"), self->out_features()),
                               std::make_tuple(std::string("k"), self->in_features()),
                               std::make_tuple(std::string("weight_scales"), self->scales()));
      })
      .def_pickle(
          [](const c10::intrusive_ptr<PackedLinearWeight>& self) { return self->state(); },
          [](PackedLinearWeight::State state) {
            return PackedLinearWeight::from_state(std::move(state));
          });

  m.class_<LowBitLinearWeight>("LowBitLinearWeight")
      .def("levels", &LowBitLinearWeight::levels)
      .def("scales", [](const c10::intrusive_ptr<LowBitLinearWeight>& self) { return self->scales(); })
      .def("dequantized", &LowBitLinearWeight::dequantized)
      .def("bits", &LowBitLinearWeight::bits)
      .def("group_size", &LowBitLinearWeight::group_size)
      .def("in_features", &LowBitLinearWeight::in_features)
      .def("out_features", &LowBitLinearWeight::out_features)
      .def("__obj_flatten__", [](const c10::intrusive_ptr<LowBitLinearWeight>& self) {
        return std::make_tuple(std::make_tuple(std::string("n"), self->out_features()),
                               std::make_tuple(std::string("k"), self->in_features()),
                               std::make_tuple(std::string("group_scales"), self->scales()));
      })
      .def_pickle(
          [](const c10::intrusive_ptr<LowBitLinearWeight>& self) { return self->state(); },
          [](LowBitLinearWeight::State state) { return LowBitLinearWeight::from_state(std::move(state)); });

  register_observer_class(m);
  m.class_<PackedConvWeight>("PackedConvWeight")
      .def(torch::init<at::Tensor, at::Tensor, std::vector<int64_t>, std::vector<int64_t>,
                       std::vector<int64_t>, int64_t>())
      .def("weight", &PackedConvWeight::weight)
      .def("scales", [](const c10::intrusive_ptr<PackedConvWeight>& self) { return self->scales(); })
      // Geometry, for shape inference (qext's fake kernels, torch.compile).
      .def("out_channels", &PackedConvWeight::out_channels)
      .def("kernel_size", [](const c10::intrusive_ptr<PackedConvWeight>& self) {
        return std::vector<int64_t>{self->kh(), self->kw()};
      })
      .def("stride", [](const c10::intrusive_ptr<PackedConvWeight>& self) {
        return std::vector<int64_t>(self->stride().begin(), self->stride().end());
      })
      .def("padding", [](const c10::intrusive_ptr<PackedConvWeight>& self) {
        return std::vector<int64_t>(self->padding().begin(), self->padding().end());
      })
      .def("dilation", [](const c10::intrusive_ptr<PackedConvWeight>& self) {
        return std::vector<int64_t>(self->dilation().begin(), self->dilation().end());
      })
      .def("__obj_flatten__", [](const c10::intrusive_ptr<PackedConvWeight>& self) {
        const auto s = self->state();
        return std::make_tuple(
            std::make_tuple(std::string("weight_shape"),
                            std::vector<int64_t>{self->out_channels(), self->in_channels() / self->groups(),
                                                 self->kh(), self->kw()}),
            std::make_tuple(std::string("weight_scales"), self->scales()),
            std::make_tuple(std::string("conv_stride"), std::get<3>(s)),
            std::make_tuple(std::string("conv_padding"), std::get<4>(s)),
            std::make_tuple(std::string("conv_dilation"), std::get<5>(s)),
            std::make_tuple(std::string("conv_groups"), std::get<6>(s)));
      })
      .def_pickle(
          [](const c10::intrusive_ptr<PackedConvWeight>& self) { return self->state(); },
          [](PackedConvWeight::State state) { return PackedConvWeight::from_state(std::move(state)); });
  m.class_<PackedEmbedding>("PackedEmbedding")
      .def("weight", [](const c10::intrusive_ptr<PackedEmbedding>& self) { return self->weight(); })
      .def("scales", [](const c10::intrusive_ptr<PackedEmbedding>& self) { return self->scales(); })
      .def("dim", &PackedEmbedding::dim)
      .def("__obj_flatten__", [](const c10::intrusive_ptr<PackedEmbedding>& self) {
        return std::make_tuple(std::make_tuple(std::string("int8_table"), self->weight()),
                               std::make_tuple(std::string("row_scales"), self->scales()));
      })
      .def_pickle(
          [](const c10::intrusive_ptr<PackedEmbedding>& self) { return self->state(); },
          [](PackedEmbedding::State state) { return PackedEmbedding::from_state(std::move(state)); });
  m.class_<PackedRnnWeight>("PackedRnnWeight")
      .def("hidden_size", &PackedRnnWeight::hidden_size)
      .def("num_layers", &PackedRnnWeight::num_layers)
      .def("directions", &PackedRnnWeight::directions)
      .def("__obj_flatten__", [](const c10::intrusive_ptr<PackedRnnWeight>& self) {
        return std::make_tuple(std::make_tuple(std::string("hidden"), self->hidden_size()),
                               std::make_tuple(std::string("layers"), self->num_layers()),
                               std::make_tuple(std::string("dirs"), self->directions()));
      })
      .def_pickle(
          [](const c10::intrusive_ptr<PackedRnnWeight>& self) { return self->state(); },
          [](PackedRnnWeight::State state) { return PackedRnnWeight::from_state(std::move(state)); });

  m.def("choose_qparams(Tensor x, int? axis=None, int qmin=0, int qmax=255, bool symmetric=False) -> (Tensor, Tensor)");
  m.def("quantize(Tensor x, Tensor scale, Tensor zero_point, int? axis=None, int qmin=0, int qmax=255) -> Tensor");
  m.def("dequantize(Tensor q, Tensor scale, Tensor zero_point, int? axis=None) -> Tensor");
  m.def("fake_quantize(Tensor x, Tensor scale, Tensor zero_point, int? axis=None, int qmin=0, int qmax=255) -> Tensor");
  m.def("quantize_linear_weight(Tensor weight, bool per_channel=True, int qmax=127, int activation_bits=8) -> __torch__.torch.classes.qext.PackedLinearWeight");
  m.def("linear_dynamic(Tensor input, __torch__.torch.classes.qext.PackedLinearWeight weight, Tensor? bias=None, bool per_row=False, bool relu=False, int activation_bits=8, bool gelu=False) -> Tensor");
  m.def("linear_dynamic_group(Tensor input, __torch__.torch.classes.qext.PackedLinearWeight[] weights, Tensor?[] biases, bool per_row=False, int activation_bits=8) -> Tensor[]");
  // scaled_dot_product_attention without dropout (ops/attention.h).
  m.def("attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask=None, bool is_causal=False, *, float? scale=None) -> Tensor");
  m.def("quantize_linear_weight_lowbit(Tensor weight, int bits=4, int group_size=128) -> __torch__.torch.classes.qext.LowBitLinearWeight");
  m.def("linear_lowbit(Tensor input, __torch__.torch.classes.qext.LowBitLinearWeight weight, Tensor? bias=None, bool per_row=True, bool relu=False) -> Tensor");
  m.def("embedding_lowbit(Tensor indices, __torch__.torch.classes.qext.LowBitLinearWeight table) -> Tensor");
  m.def("quantize_embedding(Tensor weight) -> __torch__.torch.classes.qext.PackedEmbedding");
  m.def("embedding_int8(Tensor indices, __torch__.torch.classes.qext.PackedEmbedding table) -> Tensor");
  m.def("quantize_rnn_weight(str mode, Tensor[] params, bool has_biases, int num_layers, bool bidirectional, bool per_channel=True) -> __torch__.torch.classes.qext.PackedRnnWeight");
  m.def("lstm_dynamic(Tensor input, Tensor[] hx, __torch__.torch.classes.qext.PackedRnnWeight weight, bool batch_first=False, bool per_row=True) -> (Tensor, Tensor, Tensor)");
  m.def("gru_dynamic(Tensor input, Tensor hx, __torch__.torch.classes.qext.PackedRnnWeight weight, bool batch_first=False, bool per_row=True) -> (Tensor, Tensor)");
  m.def("quantize_conv_weight(Tensor weight, int[] stride, int[] padding, int[] dilation, int groups, int qmax=127) -> __torch__.torch.classes.qext.PackedConvWeight");
  m.def("conv2d_int8(Tensor x, float x_scale, int x_zero_point, __torch__.torch.classes.qext.PackedConvWeight weight, Tensor? bias, float out_scale, int out_zero_point, bool relu=False, float? clamp_min=None, float? clamp_max=None) -> Tensor");
  m.def("linear_int8(Tensor x, float x_scale, int x_zero_point, __torch__.torch.classes.qext.PackedLinearWeight weight, Tensor? bias, float out_scale, int out_zero_point, bool relu=False, float? clamp_min=None, float? clamp_max=None) -> Tensor");
  m.def("quantize_per_tensor(Tensor x, float scale, int zero_point) -> Tensor");
  m.def("dequantize_per_tensor(Tensor q, float scale, int zero_point) -> Tensor");
  m.def("check_finite(Tensor(a) x) -> Tensor(a)");
  // Calibration: feeds x to the observer and returns x. Conservative aliasing
  // keeps the JIT from dropping or reordering it.
  m.def(torch::schema("qext::observe(Tensor x, __torch__.torch.classes.qext.Observer observer) -> Tensor",
                      c10::AliasAnalysisKind::CONSERVATIVE));
  // Per-layer SQNR measurement (ops/probe.h); side effect, so never removed as dead code.
  m.def(torch::schema("qext::_probe(Tensor x, str key) -> Tensor", c10::AliasAnalysisKind::CONSERVATIVE));
  m.def("lut_u8(Tensor x, Tensor table) -> Tensor");
  m.def("layer_norm_int8(Tensor x, float x_scale, int x_zero_point, int[] normalized_shape, Tensor? weight, Tensor? bias, float eps, float out_scale, int out_zero_point) -> Tensor");
  m.def("mul_int8(Tensor a, float a_scale, int a_zero_point, Tensor b, float b_scale, int b_zero_point, float out_scale, int out_zero_point) -> Tensor");
  m.def("add_int8(Tensor a, float a_scale, int a_zero_point, Tensor b, float b_scale, int b_zero_point, float out_scale, int out_zero_point, bool relu=False) -> Tensor");
  m.def("cat_int8(Tensor[] xs, float[] scales, int[] zero_points, int dim, float out_scale, int out_zero_point) -> Tensor");
  m.def("max_pool2d_int8(Tensor x, int[] kernel_size, int[] stride, int[] padding, int[] dilation, bool ceil_mode=False) -> Tensor");
  m.def("avg_pool2d_int8(Tensor x, int zero_point, int[] kernel_size, int[] stride, int[] padding, bool ceil_mode=False, bool count_include_pad=True, int? divisor_override=None) -> Tensor");
  m.def("adaptive_avg_pool2d_int8(Tensor x, int zero_point, int[] output_size) -> Tensor");
  m.def("fold_batch_norm(Tensor weight, Tensor? bias, Tensor bn_weight, Tensor bn_bias, Tensor running_mean, Tensor running_var, float eps) -> (Tensor, Tensor)");
  m.def("_qgemm_int32(Tensor a, Tensor a_zero_point, Tensor w, str isa) -> Tensor");
  // qext.linalg / qext::linalg (include/qext/linalg.h): quantized matrices.
  m.def("qmatmul_int32(Tensor a, Tensor a_zero_point, Tensor b, Tensor b_zero_point) -> Tensor");
  m.def("qmatmul(Tensor a, Tensor a_scale, Tensor a_zero_point, Tensor b, Tensor b_scale, Tensor b_zero_point, Tensor? bias=None) -> Tensor");
  m.def("pack_int4(Tensor q) -> Tensor");
  // QAT's activation range tracking (the moving_average observer's rule).
  m.def("observe_moving_average_(Tensor x, Tensor(a!) min_val, Tensor(b!) max_val, float averaging_constant) -> ()");
  m.def("unpack_int4(Tensor packed, int n) -> Tensor");
  // Static calibration for bias correction: per-channel activation sums.
  m.def("observe_channel_sum_(Tensor x, Tensor(a!) sums, int dim) -> ()");
}

TORCH_LIBRARY_IMPL(qext, CPU, m) {
  m.impl("choose_qparams", &quant::tensor_qparams);
  m.impl("quantize", &quant::quantize);
  m.impl("dequantize", &quant::dequantize);
  m.impl("fake_quantize", &quant::fake_quantize);
  m.impl("linear_dynamic", &linear_dynamic);
  m.impl("linear_dynamic_group", &linear_dynamic_group);
  m.impl("linear_lowbit", &linear_lowbit);
  m.impl("embedding_lowbit", &embedding_lowbit);
  m.impl("quantize_linear_weight_lowbit", &LowBitLinearWeight::from_float);
  m.impl("_qgemm_int32", &qgemm_int32);
  m.impl("quantize_linear_weight", &quantize_linear_weight);
  m.impl("quantize_conv_weight", &PackedConvWeight::from_float);
  m.impl("quantize_rnn_weight", [](c10::string_view mode, const std::vector<at::Tensor>& params, bool has_biases,
                                   int64_t num_layers, bool bidirectional, bool per_channel) {
    return PackedRnnWeight::from_float(std::string(mode), params, has_biases, num_layers, bidirectional, per_channel);
  });
  m.impl("quantize_embedding", [](const at::Tensor& weight) { return PackedEmbedding::from_float(weight); });
  m.impl("embedding_int8", &embedding_int8);
  m.impl("lstm_dynamic", &lstm_dynamic);
  m.impl("gru_dynamic", &gru_dynamic);
  m.impl("conv2d_int8", &conv2d_int8);
  m.impl("linear_int8", &linear_int8);
  m.impl("add_int8", &add_int8);
  m.impl("lut_u8", &lut_u8);
  m.impl("layer_norm_int8", &layer_norm_int8);
  m.impl("mul_int8", &mul_int8);
  m.impl("quantize_per_tensor", &quantize_per_tensor);
  m.impl("dequantize_per_tensor", &dequantize_per_tensor);
  m.impl("check_finite", &check_finite);
  m.impl("observe", [](const at::Tensor& x, const c10::intrusive_ptr<ObserverClass>& observer) {
    TORCH_CHECK(observer, "qext::observe: observer is None");
    observer->observe_in_graph(x);
    return x;
  });
  m.impl("fold_batch_norm", &quant::fold_batch_norm);
  m.impl("_probe", &probe);
  m.impl("max_pool2d_int8", &max_pool2d_int8);
  m.impl("cat_int8", &cat_int8);
  m.impl("avg_pool2d_int8", &avg_pool2d_int8);
  m.impl("adaptive_avg_pool2d_int8", &adaptive_avg_pool2d_int8);
  m.impl("qmatmul_int32", &qmatmul_int32);
}

// CUDA tensors: the linear-algebra ops and the dynamic Linear composed of ATen
// ops (cuBLASLt's int8 GEMM through at::_int_mm), giving the CPU kernels'
// integers and floats.
TORCH_LIBRARY_IMPL(qext, CUDA, m) {
  m.impl("choose_qparams", &choose_qparams_aten);
  m.impl("quantize", &quantize_aten);
  m.impl("dequantize", &dequantize_aten);
  m.impl("qmatmul_int32", &qmatmul_int32_aten);
  m.impl("linear_dynamic", &linear_dynamic_aten);
  m.impl("linear_dynamic_group", &linear_dynamic_group_aten);
}

// qext::attention runs ATen's attention whenever a gradient is needed, so
// autograd goes through to that call instead of stopping at the op.
TORCH_LIBRARY_IMPL(qext, Autograd, m) {
  m.impl("attention", torch::CppFunction::makeFallthrough());
}

// Device-generic compositions of other ops (fake kernels in qext.fake_ops).
TORCH_LIBRARY_IMPL(qext, CompositeExplicitAutograd, m) {
  m.impl("attention", &attention);
  m.impl("qmatmul", &qmatmul);
  m.impl("pack_int4", &pack_int4);
  m.impl("observe_moving_average_", &observe_moving_average_);
  m.impl("unpack_int4", &unpack_int4);
  m.impl("observe_channel_sum_", &observe_channel_sum_);
}


}  // namespace qext::ops
