#include "quant/tensor_quant.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <vector>

#include "kernels/quantize.h"
#include "quant/qparams.h"

namespace qext::quant {

namespace {

// x viewed as [channels, inner] with the channel axis first (one channel when
// per tensor), contiguous.
struct ChannelView {
  at::Tensor data;
  int64_t channels;
  int64_t inner;
  std::optional<int64_t> axis;  // normalised
};

ChannelView channel_view(const char* op, const at::Tensor& x, std::optional<int64_t> axis) {
  if (!axis) {
    return {x.contiguous(), 1, x.numel(), std::nullopt};
  }
  TORCH_CHECK(x.dim() > 0, op, ": per-channel axis given for a 0-d tensor");
  const int64_t ax = *axis < 0 ? *axis + x.dim() : *axis;
  TORCH_CHECK(ax >= 0 && ax < x.dim(), op, ": axis ", *axis, " is out of range for a ", x.dim(),
              "-d tensor");
  const int64_t c = x.size(ax);
  at::Tensor moved = x.movedim(ax, 0).contiguous();
  return {moved, c, c == 0 ? 0 : x.numel() / c, ax};
}

at::Tensor restore_layout(const at::Tensor& moved, const ChannelView& v) {
  return v.axis ? moved.movedim(0, *v.axis).contiguous() : moved;
}

struct ParamArrays {
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
};

// Zero points must lie in [zp_min, zp_max] (the quantized range): beyond it
// the affine map has no representable zero, and int32 arithmetic could wrap.
ParamArrays read_params(const char* op, const at::Tensor& scale, const at::Tensor& zero_point,
                        int64_t channels, int64_t zp_min, int64_t zp_max) {
  TORCH_CHECK(scale.scalar_type() == at::kFloat, op, ": scale must be float32; got ",
              scale.scalar_type());
  const bool integral = zero_point.scalar_type() == at::kInt || zero_point.scalar_type() == at::kLong;
  // Float zero points (learnable ones in QAT) are accepted when they hold integers.
  TORCH_CHECK(integral || (zero_point.scalar_type() == at::kFloat &&
                           at::equal(zero_point, at::round(zero_point))),
              op, ": zero_point must be int32, int64 or integer-valued float32; got ",
              zero_point.scalar_type());
  TORCH_CHECK(scale.numel() == channels && zero_point.numel() == channels, op,
              ": expected ", channels, " scale(s) and zero point(s); got ", scale.numel(),
              " and ", zero_point.numel());
  // Read as double first: a cast to int32 would wrap 2**40 or INT32_MIN silently.
  const at::Tensor s = scale.contiguous().cpu(), z = zero_point.to(at::kDouble).contiguous().cpu();
  ParamArrays p{std::vector<float>(s.data_ptr<float>(), s.data_ptr<float>() + channels), {}};
  for (float v : p.scale) {
    TORCH_CHECK(std::isfinite(v) && v > 0.0f, op, ": scale must be finite and > 0; got ", v);
  }
  const double* zd = z.data_ptr<double>();
  for (int64_t c = 0; c < channels; ++c) {
    TORCH_CHECK(zd[c] >= static_cast<double>(zp_min) && zd[c] <= static_cast<double>(zp_max), op,
                ": zero_point must lie in the quantized range [", zp_min, ", ", zp_max, "]; got ", zd[c]);
    p.zero_point.push_back(static_cast<int32_t>(zd[c]));
  }
  return p;
}

void check_float_input(const char* op, const at::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, op, ": expected a float32 tensor; got ",
              x.scalar_type());
  TORCH_CHECK(x.device().is_cpu(), op, ": expected a CPU tensor; got ", x.device());
}


// Runs fn(channel, begin, end) over every channel's elements in parallel chunks.
template <typename Fn>
void parallel_channels(const ChannelView& v, Fn fn) {
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks_per_channel = std::max<int64_t>(1, (v.inner + kChunk - 1) / kChunk);
  at::parallel_for(0, v.channels * chunks_per_channel, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t c = t / chunks_per_channel, chunk = t % chunks_per_channel;
      const int64_t begin = chunk * kChunk, end = std::min(v.inner, begin + kChunk);
      if (begin < end) fn(c, c * v.inner + begin, end - begin);
    }
  });
}

}  // namespace

at::ScalarType quantized_dtype(const char* op, int64_t qmin, int64_t qmax) {
  TORCH_CHECK(qmin < qmax, op, ": qmin must be < qmax; got [", qmin, ", ", qmax, "]");
  if (qmin >= 0 && qmax <= 255) return at::kByte;
  TORCH_CHECK(qmin >= -128 && qmax <= 127, op, ": [", qmin, ", ", qmax,
              "] fits neither uint8 [0, 255] nor int8 [-128, 127]");
  return at::kChar;
}

std::tuple<at::Tensor, at::Tensor> tensor_qparams(const at::Tensor& x, std::optional<int64_t> axis,
                                                  int64_t qmin, int64_t qmax, bool symmetric) {
  constexpr const char* op = "qext::choose_qparams";
  check_float_input(op, x);
  quantized_dtype(op, qmin, qmax);
  TORCH_CHECK(x.numel() > 0, op, ": cannot choose qparams from an empty tensor");
  const ChannelView v = channel_view(op, x, axis);
  TORCH_CHECK(v.inner > 0, op, ": every channel is empty");
  const float* data = v.data.data_ptr<float>();
  at::Tensor scale = at::empty({v.channels}, at::kFloat);
  at::Tensor zp = at::empty({v.channels}, at::kInt);
  const kernels::Isa isa = kernels::active_isa();
  for (int64_t c = 0; c < v.channels; ++c) {
    float lo, hi;
    const bool finite = kernels::finite_min_max(data + c * v.inner, v.inner, &lo, &hi, isa);
    TORCH_CHECK(finite, op, ": the tensor holds NaN or Inf",
                axis ? " (channel " + std::to_string(c) + ")" : std::string(),
                "; qparams need finite data");
    const QParams p = quant::choose_qparams(lo, hi, static_cast<int32_t>(qmin),
                                            static_cast<int32_t>(qmax), symmetric);
    scale.data_ptr<float>()[c] = p.scale;
    zp.data_ptr<int32_t>()[c] = p.zero_point;
  }
  if (!axis) return {scale.reshape({}), zp.reshape({})};
  return {scale, zp};
}

at::Tensor quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                    std::optional<int64_t> axis, int64_t qmin, int64_t qmax) {
  constexpr const char* op = "qext::quantize";
  check_float_input(op, x);
  const at::ScalarType dtype = quantized_dtype(op, qmin, qmax);
  const ChannelView v = channel_view(op, x, axis);
  const ParamArrays p = read_params(op, scale, zero_point, v.channels, qmin, qmax);
  at::Tensor out = at::empty(v.data.sizes(), v.data.options().dtype(dtype));
  const float* in = v.data.data_ptr<float>();
  const auto lo = static_cast<int32_t>(qmin), hi = static_cast<int32_t>(qmax);
  const kernels::Isa isa = kernels::active_isa();
  parallel_channels(v, [&](int64_t c, int64_t at, int64_t n) {
    if (dtype == at::kByte) {
      kernels::quantize_u8(in + at, n, p.scale[c], p.zero_point[c], lo, hi,
                           out.data_ptr<uint8_t>() + at, isa);
    } else {
      kernels::quantize_s8(in + at, n, p.scale[c], p.zero_point[c], lo, hi,
                           out.data_ptr<int8_t>() + at);
    }
  });
  return restore_layout(out, v);
}

at::Tensor dequantize(const at::Tensor& q, const at::Tensor& scale, const at::Tensor& zero_point,
                      std::optional<int64_t> axis) {
  constexpr const char* op = "qext::dequantize";
  TORCH_CHECK(q.scalar_type() == at::kByte || q.scalar_type() == at::kChar, op,
              ": expected a uint8 or int8 tensor; got ", q.scalar_type());
  const ChannelView v = channel_view(op, q, axis);
  const bool u8 = q.scalar_type() == at::kByte;
  const ParamArrays p = read_params(op, scale, zero_point, v.channels, u8 ? 0 : -128, u8 ? 255 : 127);
  at::Tensor out = at::empty(v.data.sizes(), v.data.options().dtype(at::kFloat));
  float* dst = out.data_ptr<float>();
  parallel_channels(v, [&](int64_t c, int64_t at, int64_t n) {
    if (q.scalar_type() == at::kByte) {
      kernels::dequantize_u8(v.data.data_ptr<uint8_t>() + at, n, p.scale[c], p.zero_point[c], dst + at);
    } else {
      kernels::dequantize_s8(v.data.data_ptr<int8_t>() + at, n, p.scale[c], p.zero_point[c], dst + at);
    }
  });
  return restore_layout(out, v);
}

at::Tensor fake_quantize(const at::Tensor& x, const at::Tensor& scale,
                         const at::Tensor& zero_point, std::optional<int64_t> axis, int64_t qmin,
                         int64_t qmax) {
  constexpr const char* op = "qext::fake_quantize";
  check_float_input(op, x);
  quantized_dtype(op, qmin, qmax);
  const ChannelView v = channel_view(op, x, axis);
  const ParamArrays p = read_params(op, scale, zero_point, v.channels, qmin, qmax);
  at::Tensor out = at::empty(v.data.sizes(), v.data.options());
  const float* in = v.data.data_ptr<float>();
  parallel_channels(v, [&](int64_t c, int64_t at, int64_t n) {
    kernels::fake_quantize(in + at, n, p.scale[c], p.zero_point[c], static_cast<int32_t>(qmin),
                           static_cast<int32_t>(qmax), out.data_ptr<float>() + at);
  });
  return restore_layout(out, v);
}

}  // namespace qext::quant
