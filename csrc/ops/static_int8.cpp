#include "ops/static_int8.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

#include "kernels/depthwise.h"
#include "kernels/elementwise.h"
#include "kernels/grouped.h"
#include "kernels/lut.h"
#include "kernels/pooling.h"
#include "kernels/quantize.h"
#include "kernels/ref/scalar_rules.h"
#include "ops/memory_pool.h"
#include "ops/parallel_qgemm.h"

namespace qext::ops {

namespace {

void check_qparams(const char* op, const char* what, double scale, int64_t zero_point) {
  const std::string who = *what ? std::string(what) + " " : std::string();
  TORCH_CHECK(std::isfinite(scale) && scale > 0, op, ": ", who, "scale must be finite and > 0; got ", scale);
  TORCH_CHECK(zero_point >= 0 && zero_point <= 255, op, ": ", who,
              "zero point must be in [0, 255] for uint8; got ", zero_point);
}

at::Tensor checked_bias(const char* op, const std::optional<at::Tensor>& bias, int64_t n) {
  if (!bias || !bias->defined()) return {};
  TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->dim() == 1 && bias->size(0) == n, op,
              ": expected a float32 bias of shape [", n, "]; got ", bias->scalar_type(), " of shape ",
              bias->sizes());
  return bias->contiguous();
}

kernels::Epilogue requant_epilogue(const float* row_scale, const float* col_scale, const float* bias,
                                   double out_scale, int64_t out_zero_point, bool relu,
                                   std::optional<double> clamp_min, std::optional<double> clamp_max) {
  kernels::Epilogue ep;
  ep.output = kernels::Epilogue::Output::Uint8;
  ep.row_scale = row_scale;
  ep.col_scale = col_scale;
  ep.bias = bias;
  if (relu) ep.clamp_min = 0.0f;
  if (clamp_min) ep.clamp_min = std::max(ep.clamp_min, static_cast<float>(*clamp_min));
  if (clamp_max) ep.clamp_max = static_cast<float>(*clamp_max);
  ep.out_scale = static_cast<float>(out_scale);
  ep.out_zero_point = static_cast<int32_t>(out_zero_point);
  return ep;
}

// fn(in, n, out) over x's elements in parallel chunks, into a new tensor of
// `out_type` with x's memory format (channels-last stays channels-last).
template <typename In, typename Out, typename Fn>
at::Tensor map_keeping_format(const at::Tensor& x, at::ScalarType out_type, Fn fn) {
  const auto format = x.suggest_memory_format();
  const at::Tensor xc = x.contiguous(format);
  at::Tensor out = pooled_empty(x.sizes(), x.options().dtype(out_type).memory_format(format));
  const In* in = xc.data_ptr<In>();
  Out* o = out.data_ptr<Out>();
  at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t b, int64_t e) { fn(in + b, e - b, o + b); });
  return out;
}

// memcpy / memset for the few-byte runs of im2col (grouped convs copy a few
// channels at a time): inline word moves instead of a libc call per run.
inline void copy_bytes(uint8_t* dst, const uint8_t* src, int64_t n) {
  if (n >= 64) {
    std::memcpy(dst, src, static_cast<size_t>(n));
  } else if (n >= 8) {
    // 8-byte moves, the last one overlapping the previous: no byte loop.
    for (int64_t i = 0; i + 8 < n; i += 8) std::memcpy(dst + i, src + i, 8);
    std::memcpy(dst + n - 8, src + n - 8, 8);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

inline void fill_bytes(uint8_t* dst, uint8_t value, int64_t n) {
  if (n >= 64) {
    std::memset(dst, value, static_cast<size_t>(n));
  } else if (n >= 8) {
    const uint64_t word = 0x0101010101010101ull * value;
    for (int64_t i = 0; i + 8 < n; i += 8) std::memcpy(dst + i, &word, 8);
    std::memcpy(dst + n - 8, &word, 8);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = value;
  }
}

// One image row of C planes (stride `plane` bytes) interleaved into NHWC
// bytes. C known at compile time lets the compiler vectorise the interleave
// (a 3-channel stem input is the common case).
template <int C>
void interleave_row(const uint8_t* __restrict src, int64_t plane, int64_t width, uint8_t* __restrict dst) {
  for (int64_t xx = 0; xx < width; ++xx)
#pragma GCC unroll 8
    for (int ch = 0; ch < C; ++ch) dst[xx * C + ch] = src[ch * plane + xx];
}

void interleave_row(const uint8_t* src, int64_t plane, int64_t width, int64_t c, uint8_t* dst) {
  switch (c) {
    case 1: return interleave_row<1>(src, plane, width, dst);
    case 2: return interleave_row<2>(src, plane, width, dst);
    case 3: return interleave_row<3>(src, plane, width, dst);
    case 4: return interleave_row<4>(src, plane, width, dst);
    default:
      for (int64_t xx = 0; xx < width; ++xx)
        for (int64_t ch = 0; ch < c; ++ch) dst[xx * c + ch] = src[ch * plane + xx];
  }
}

// A contiguous NCHW image with few channels (a quantized network input):
// qext interleaves it itself, as torch's strided copy to channels-last is ~5x
// slower there.
bool few_channel_nchw(const at::Tensor& x) {
  return x.is_contiguous() && !x.is_contiguous(at::MemoryFormat::ChannelsLast) && x.size(1) <= 8;
}

// The operands and qparams of a two-input uint8 op (add_int8, mul_int8).
void check_binary_u8(const char* op, const at::Tensor& a, double a_scale, int64_t a_zero_point, const at::Tensor& b,
                     double b_scale, int64_t b_zero_point, double out_scale, int64_t out_zero_point) {
  TORCH_CHECK(a.scalar_type() == at::kByte && b.scalar_type() == at::kByte, op,
              ": expected two uint8 tensors; got ", a.scalar_type(), " and ", b.scalar_type());
  check_qparams(op, "first input", a_scale, a_zero_point);
  check_qparams(op, "second input", b_scale, b_zero_point);
  check_qparams(op, "output", out_scale, out_zero_point);
}

at::Tensor channels_last_u8(const at::Tensor& x) {
  if (!few_channel_nchw(x)) return x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor out = pooled_empty(x.sizes(), x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const int64_t c = x.size(1), h = x.size(2), wd = x.size(3);
  const uint8_t* in = x.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  at::parallel_for(0, x.size(0) * h, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t img = r / h, y = r % h;
      interleave_row(in + (img * c * h + y) * wd, h * wd, wd, c, o + r * wd * c);
    }
  });
  return out;
}

// x as NHWC bytes with `ph` rows and `pw` columns of zero point around each
// image, and a few bytes after the last one: a direct conv reads a window's
// kernel rows straight from here, up to 3 bytes past a row when its K is
// padded to whole 4-byte groups (`overreads`).
struct PaddedNhwc {
  at::Tensor bytes;
  int64_t h, w;  // padded sizes
};

PaddedNhwc padded_nhwc(const at::Tensor& x, int64_t ph, int64_t pw, uint8_t zp, bool overreads) {
  constexpr int64_t kSlack = 64;
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  if (ph == 0 && pw == 0 && !overreads) return {channels_last_u8(x), h, wd};  // 1x1 convs
  const int64_t hp = h + 2 * ph, wp = wd + 2 * pw, row = wp * c;
  int64_t total;
  TORCH_CHECK(!__builtin_mul_overflow(n * hp, row, &total) && total < (int64_t{1} << 50),
              "qext::conv2d_int8: the padded input ", n, "x", hp, "x", wp, "x", c, " is too large");
  // A few-channel NCHW image is interleaved row by row into place; anything
  // else is made channels-last first.
  const bool transpose = few_channel_nchw(x);
  const at::Tensor src = transpose ? x : x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor bytes = pooled_empty({n * hp * row + kSlack}, x.options());
  const uint8_t* in = src.data_ptr<uint8_t>();
  uint8_t* out = bytes.data_ptr<uint8_t>();
  std::memset(out + n * hp * row, zp, kSlack);
  // Rows in chunks of >= 64 KB: a deep layer's small image is copied faster
  // than a parallel region starts.
  at::parallel_for(0, n * hp, std::max<int64_t>(1, (int64_t{1} << 16) / row), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t img = r / hp, y = r % hp - ph;
      uint8_t* dst = out + r * row;
      if (y < 0 || y >= h) {
        std::memset(dst, zp, static_cast<size_t>(row));
        continue;
      }
      std::memset(dst, zp, static_cast<size_t>(pw * c));
      std::memset(dst + (pw + wd) * c, zp, static_cast<size_t>(pw * c));
      dst += pw * c;
      if (!transpose) {
        std::memcpy(dst, in + (img * h + y) * wd * c, static_cast<size_t>(wd * c));
        continue;
      }
      interleave_row(in + (img * c * h + y) * wd, h * wd, wd, c, dst);
    }
  });
  return {bytes, hp, wp};
}

// GemmArgs::a_max for a GEMM reading `bytes` (contiguous) and padding of
// `pad`: measured where the kernel runs faster on bytes <= 127 (AVX2, narrow
// weights; 7-bit calibrated activations keep them there), else 255. Measured,
// not assumed, so a value past the calibrated range costs speed, not exactness.
uint8_t activation_max(const at::Tensor& bytes, uint8_t pad, const kernels::PackedWeights& w) {
  if (!kernels::gemm_uses_a_max(w)) return 255;
  return std::max(pad, kernels::max_u8(bytes.data_ptr<uint8_t>(), bytes.numel(), w.isa()));
}

}  // namespace

at::Tensor conv2d_int8(const at::Tensor& x, double x_scale, int64_t x_zero_point,
                       const c10::intrusive_ptr<PackedConvWeight>& w,
                       const std::optional<at::Tensor>& bias, double out_scale,
                       int64_t out_zero_point, bool relu, std::optional<double> clamp_min,
                       std::optional<double> clamp_max) {
  constexpr const char* op = "qext::conv2d_int8";
  TORCH_CHECK(w, op, ": weight is None");
  TORCH_CHECK(x.scalar_type() == at::kByte && x.dim() == 4, op,
              ": expected uint8 activations [N, C, H, W]; got ", x.scalar_type(), " of shape ", x.sizes());
  TORCH_CHECK(x.size(1) == w->in_channels(), op, ": input has ", x.size(1), " channels, the weight expects ",
              w->in_channels());
  check_qparams(op, "input", x_scale, x_zero_point);
  check_qparams(op, "output", out_scale, out_zero_point);
  const at::Tensor b = checked_bias(op, bias, w->out_channels());

  const int64_t n_img = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const auto [sh, sw] = w->stride();
  const auto [ph, pw] = w->padding();
  const auto [dh, dw] = w->dilation();
  const int64_t kh = w->kh(), kw = w->kw(), groups = w->groups();
  const int64_t oh = kernels::pooled_size(h, kh, sh, ph, dh, /*ceil_mode=*/false);
  const int64_t ow = kernels::pooled_size(wd, kw, sw, pw, dw, /*ceil_mode=*/false);
  TORCH_CHECK(oh > 0 && ow > 0, op, ": input ", x.sizes(), " is smaller than the kernel ", kh, "x", kw,
              " (after padding and dilation)");
  const int64_t cout = w->out_channels(), cg = c / groups, coutg = cout / groups;
  const int64_t k = kh * w->kernel_row_bytes(), pixels = oh * ow;

  at::Tensor out = pooled_empty({n_img, cout, oh, ow}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (out.numel() == 0) return out;
  uint8_t* outp = out.data_ptr<uint8_t>();
  const float* scales = w->scales().data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  const auto zp = static_cast<uint8_t>(x_zero_point);

  if (w->depthwise() || w->grouped()) {
    // Channels in vector lanes. Depthwise kernels read the image as it is
    // and make its padding themselves; grouped ones read whole windows from
    // a padded copy, whose 64 bytes of slack cover the last pixel's.
    const at::Tensor image = w->depthwise() ? channels_last_u8(x) : padded_nhwc(x, ph, pw, zp, /*overreads=*/true).bytes;
    const kernels::Epilogue ep = requant_epilogue(nullptr, scales, bp, out_scale, out_zero_point, relu, clamp_min, clamp_max);
    const auto fill = [&](kernels::WindowConvArgs& a) {
      a.image = image.data_ptr<uint8_t>();
      a.hp = h + 2 * ph;
      a.wp = wd + 2 * pw;
      if (w->depthwise()) a.pad_h = ph, a.pad_w = pw;
      a.channels = c;
      a.kh = kh, a.kw = kw, a.sh = sh, a.sw = sw, a.dh = dh, a.dw = dw;
      a.n = n_img, a.oh = oh, a.ow = ow;
      a.x_zero_point = static_cast<int32_t>(x_zero_point);
      a.x_scale = static_cast<float>(x_scale);
      a.w_scale = scales;
      a.bias = bp;
      a.clamp_min = ep.clamp_min, a.clamp_max = ep.clamp_max;
      a.out_scale = ep.out_scale;
      a.out_zero_point = ep.out_zero_point;
      a.out = outp;
    };
    // Rows of >= ~16K multiply-adds per task: a small layer runs serially.
    const int64_t row_work = std::max<int64_t>(1, ow * c * kh * kw * cg);
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / row_work);
    if (w->depthwise()) {
      kernels::DepthwiseArgs a;
      fill(a);
      a.weights = &w->depthwise_weights();
      at::parallel_for(0, a.n_rows(), grain, [&](int64_t r0, int64_t r1) { kernels::depthwise_conv_u8(a, r0, r1, w->isa()); });
    } else {
      kernels::GroupedArgs a;
      fill(a);
      a.weights = &w->grouped_weights();
      at::parallel_for(0, a.n_rows(), grain, [&](int64_t r0, int64_t r1) { kernels::grouped_conv_u8(a, r0, r1, w->isa()); });
    }
    return out;
  }

  // Direct convs read each window's kernel rows from the padded image (GEMM
  // rows given by pointers, K in kh runs); the others gather patches (im2col).
  const bool direct = w->direct();
  const PaddedNhwc padded = direct ? padded_nhwc(x, ph, pw, zp, /*overreads=*/w->kernel_row_bytes() != kw * c)
                                   : PaddedNhwc{channels_last_u8(x), h, wd};
  const uint8_t* xp = padded.bytes.data_ptr<uint8_t>();
  const uint8_t a_max = activation_max(padded.bytes, zp, w->group(0));
  std::vector<int64_t> run_offsets(kh);
  for (int64_t i = 0; i < kh; ++i) run_offsets[i] = i * dh * padded.w * c;
  // A 1x1, stride-1, unpadded conv's image is its GEMM's A as it stands
  // (pixel p's channels at p * c): no row pointers to make per pixel.
  const bool plain_rows = direct && kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 &&
                          w->kernel_row_bytes() == c;

  // Output pixels in chunks of whole 6-row tiles, at most 16 tiles each, the
  // tiles shared out as evenly as whole tiles allow. With several chunks per
  // thread their count is rounded up to a multiple of the threads (33 chunks
  // on 2 threads left one thread 6 % more work).
  constexpr int64_t kMaxTilesPerTask = 16, kTileRows = 6;
  const int64_t threads = at::get_num_threads();
  const int64_t tiles = (pixels + kTileRows - 1) / kTileRows;
  int64_t chunks = (tiles + kMaxTilesPerTask - 1) / kMaxTilesPerTask;
  if (n_img * chunks >= 2 * threads) {
    while ((n_img * chunks) % threads != 0 && chunks < tiles) ++chunks;
  }
  const int64_t max_rows = (tiles + chunks - 1) / chunks * kTileRows;
  const std::vector<float> row_scale(max_rows, static_cast<float>(x_scale));
  const std::vector<int32_t> row_zp(max_rows, static_cast<int32_t>(x_zero_point));
  // Few pixel chunks, or a count the threads do not divide (batch 1, deep
  // layers): split the output channels too, so the threads get equal work.
  const int64_t blocks = groups == 1 ? w->group(0).num_blocks() : 1;
  const int64_t pixel_tasks = n_img * chunks;
  const bool uneven = pixel_tasks % threads != 0 && pixel_tasks < 8 * threads;
  const int64_t splits = std::min(blocks, uneven ? threads : std::max<int64_t>(1, (threads + pixel_tasks - 1) / pixel_tasks));
  at::parallel_for(0, pixel_tasks * splits, 1, [&](int64_t t0, int64_t t1) {
    std::vector<uint8_t> patches(direct ? 0 : max_rows * k);
    std::vector<const uint8_t*> row_starts(direct && !plain_rows ? max_rows : 0);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t split = t % splits, pixel_task = t / splits;
      const int64_t n = pixel_task / chunks, chunk = pixel_task % chunks;
      const int64_t m0 = tiles * chunk / chunks * kTileRows;
      const int64_t rows = std::min(pixels, tiles * (chunk + 1) / chunks * kTileRows) - m0;
      for (int64_t g = 0; g < groups; ++g) {
        kernels::GemmArgs args;
        if (plain_rows) {
          args.a = xp + (n * pixels + m0) * c;
          args.lda = c;
        } else if (direct) {
          const uint8_t* image = xp + n * padded.h * padded.w * c;
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t y = (m0 + r) / ow, xo = (m0 + r) % ow;
            row_starts[r] = image + (y * sh * padded.w + xo * sw) * c;
          }
          args.a_rows = row_starts.data();
          args.a_segment_offsets = run_offsets.data();
          args.a_segments = kh;
        } else {
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t y = (m0 + r) / ow, xo = (m0 + r) % ow;
            for (int64_t i = 0; i < kh; ++i) {
              uint8_t* dst = patches.data() + r * k + i * kw * cg;
              const int64_t iy = y * sh - ph + i * dh, ix0 = xo * sw - pw;
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t ix = ix0 + j * dw;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) {
                  fill_bytes(dst + j * cg, zp, cg);
                } else {
                  copy_bytes(dst + j * cg, xp + ((n * h + iy) * wd + ix) * c + g * cg, cg);
                }
              }
            }
          }
          args.a = patches.data();
          args.lda = k;
        }
        const kernels::Epilogue ep = requant_epilogue(row_scale.data(), scales + g * coutg,
                                                      bp ? bp + g * coutg : nullptr, out_scale,
                                                      out_zero_point, relu, clamp_min, clamp_max);
        args.a_zero_point = row_zp.data();
        args.a_max = a_max;
        args.c = outp + (n * pixels + m0) * cout + g * coutg;
        args.ldc = cout;
        const int64_t group_blocks = w->group(g).num_blocks();
        kernels::qgemm(args, w->group(g), ep, 0, rows, group_blocks * split / splits,
                       group_blocks * (split + 1) / splits);
      }
    }
  });
  return out;
}

at::Tensor cat_int8(const std::vector<at::Tensor>& xs, std::vector<double> scales,
                    std::vector<int64_t> zero_points, int64_t dim, double out_scale, int64_t out_zero_point) {
  constexpr const char* op = "qext::cat_int8";
  TORCH_CHECK(!xs.empty(), op, ": expected at least one tensor");
  TORCH_CHECK(scales.size() == xs.size() && zero_points.size() == xs.size(), op, ": expected ", xs.size(),
              " scales and zero points; got ", scales.size(), " and ", zero_points.size());
  check_qparams(op, "output", out_scale, out_zero_point);
  // Each part moves to the output's qparams through a 256-entry table (the
  // reference rule applied to every byte value once), or is copied when its
  // qparams already are the output's.
  std::vector<std::vector<uint8_t>> tables(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    TORCH_CHECK(xs[i].scalar_type() == at::kByte, op, ": tensor ", i, " is ", xs[i].scalar_type(), ", expected uint8");
    check_qparams(op, "input", scales[i], zero_points[i]);
    if (static_cast<float>(scales[i]) == static_cast<float>(out_scale) && zero_points[i] == out_zero_point) continue;
    tables[i].resize(256);
    kernels::requantize_table(static_cast<float>(scales[i]), static_cast<int32_t>(zero_points[i]),
                              static_cast<float>(out_scale), static_cast<int32_t>(out_zero_point), tables[i].data());
  }
  const kernels::Isa isa = kernels::active_isa();
  const int64_t rank = xs[0].dim();
  const int64_t d = rank > 0 ? c10::maybe_wrap_dim(dim, rank) : 0;
  const auto format = xs[0].suggest_memory_format();
  // Written straight into the output when every part is laid out alike and the
  // cat dimension and those after it (in memory order) form one run per outer
  // index: contiguous data, or channels-last data joined on channels (DenseNet).
  bool direct = rank > 0 && (format == at::MemoryFormat::Contiguous || (format == at::MemoryFormat::ChannelsLast && d == 1));
  for (const at::Tensor& x : xs) {
    direct = direct && x.dim() == rank && x.suggest_memory_format() == format;
    for (int64_t k = 0; direct && k < rank; ++k) direct = k == d || x.size(k) == xs[0].size(k);
  }
  if (!direct) {
    std::vector<at::Tensor> parts;
    for (size_t i = 0; i < xs.size(); ++i) {
      if (tables[i].empty()) {
        parts.push_back(xs[i]);
        continue;
      }
      const uint8_t* table = tables[i].data();
      parts.push_back(map_keeping_format<uint8_t, uint8_t>(xs[i], at::kByte, [&](const uint8_t* in, int64_t n, uint8_t* out) {
        kernels::lut_u8(in, n, table, out, isa);
      }));
    }
    return at::cat(parts, dim);
  }
  std::vector<int64_t> shape = xs[0].sizes().vec();
  shape[d] = 0;
  std::vector<at::Tensor> inputs;
  for (const at::Tensor& x : xs) {
    shape[d] += x.size(d);
    inputs.push_back(x.contiguous(format));
  }
  at::Tensor out = pooled_empty(shape, xs[0].options().memory_format(format));
  if (out.numel() == 0) return out;
  // One run per outer index: rows of `width` bytes, part i at offset[i].
  const int64_t outer = format == at::MemoryFormat::ChannelsLast ? out.numel() / shape[1]
                                                                 : c10::multiply_integers(shape.begin(), shape.begin() + d);
  const int64_t width = out.numel() / outer;
  std::vector<int64_t> offset(xs.size()), run(xs.size());
  for (size_t i = 0, pos = 0; i < xs.size(); ++i) {
    run[i] = inputs[i].numel() / outer;
    offset[i] = static_cast<int64_t>(pos);
    pos += run[i];
  }
  uint8_t* o = out.data_ptr<uint8_t>();
  at::parallel_for(0, outer, std::max<int64_t>(1, (1 << 15) / width), [&](int64_t begin, int64_t end) {
    for (size_t i = 0; i < xs.size(); ++i) {
      if (run[i] == 0) continue;
      const uint8_t* in = inputs[i].data_ptr<uint8_t>() + begin * run[i];
      uint8_t* dst = o + begin * width + offset[i];
      if (tables[i].empty()) {
        for (int64_t r = 0; r < end - begin; ++r) std::memcpy(dst + r * width, in + r * run[i], run[i]);
      } else {
        kernels::lut_u8_rows(in, end - begin, run[i], run[i], tables[i].data(), dst, width, isa);
      }
    }
  });
  return out;
}

at::Tensor quantize_per_tensor(const at::Tensor& x, double scale, int64_t zero_point) {
  constexpr const char* op = "qext::quantize_per_tensor";
  TORCH_CHECK(x.scalar_type() == at::kFloat, op, ": expected float32; got ", x.scalar_type());
  check_qparams(op, "", scale, zero_point);
  const kernels::Isa isa = kernels::active_isa();
  return map_keeping_format<float, uint8_t>(x, at::kByte, [&](const float* in, int64_t n, uint8_t* out) {
    kernels::quantize_u8(in, n, static_cast<float>(scale), static_cast<int32_t>(zero_point), 0, 255, out, isa);
  });
}

at::Tensor check_finite(const at::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, "qext::check_finite: expected float32; got ", x.scalar_type());
  const at::Tensor xc = x.contiguous(x.suggest_memory_format());
  const float* p = xc.data_ptr<float>();
  const kernels::Isa isa = kernels::active_isa();
  std::atomic<bool> finite{true};
  at::parallel_for(0, xc.numel(), 1 << 16, [&](int64_t b, int64_t e) {
    float lo, hi;
    if (!kernels::finite_min_max(p + b, e - b, &lo, &hi, isa)) finite = false;
  });
  TORCH_CHECK(finite.load(), "qext: a tensor entering int8 layers holds NaN or Inf, which int8 cannot represent "
              "(it would become a finite value); clean the input, or quantize with check_finite=False to "
              "let such values clamp to the calibrated range");
  return x;
}

at::Tensor dequantize_per_tensor(const at::Tensor& q, double scale, int64_t zero_point) {
  constexpr const char* op = "qext::dequantize_per_tensor";
  TORCH_CHECK(q.scalar_type() == at::kByte, op, ": expected uint8; got ", q.scalar_type());
  check_qparams(op, "", scale, zero_point);
  return map_keeping_format<uint8_t, float>(q, at::kFloat, [&](const uint8_t* in, int64_t n, float* out) {
    kernels::dequantize_u8(in, n, static_cast<float>(scale), static_cast<int32_t>(zero_point), out);
  });
}

namespace {

// b as an SE gate for a 4-d a with C channels: [N or 1, C] values, or
// nullopt when b is not [N or 1, C, 1, 1] once its shape is aligned to a's
// (ConvNeXt's layer scale is [C, 1, 1]).
std::optional<at::Tensor> channel_gate(const at::Tensor& a, const at::Tensor& b) {
  if (a.dim() != 4 || b.dim() > 4) return std::nullopt;
  std::vector<int64_t> shape(4 - b.dim(), 1);
  for (int64_t s : b.sizes()) shape.push_back(s);
  if (shape[1] != a.size(1) || shape[2] != 1 || shape[3] != 1 || (shape[0] != 1 && shape[0] != a.size(0))) {
    return std::nullopt;
  }
  return b.reshape({shape[0], shape[1]}).contiguous();
}

}  // namespace

at::Tensor mul_int8(const at::Tensor& a_in, double a_scale, int64_t a_zero_point, const at::Tensor& b_in,
                    double b_scale, int64_t b_zero_point, double out_scale, int64_t out_zero_point) {
  constexpr const char* op = "qext::mul_int8";
  check_binary_u8(op, a_in, a_scale, a_zero_point, b_in, b_scale, b_zero_point, out_scale, out_zero_point);
  // One float multiply per element, which commutes bit for bit: the operand
  // that broadcasts (an SE gate) goes second and is dequantized once.
  const bool swap = b_in.numel() > a_in.numel();
  const at::Tensor& b = swap ? a_in : b_in;
  const auto sa = static_cast<float>(swap ? b_scale : a_scale), sb = static_cast<float>(swap ? a_scale : b_scale);
  const auto za = static_cast<int32_t>(swap ? b_zero_point : a_zero_point);
  const auto zb = static_cast<int32_t>(swap ? a_zero_point : b_zero_point);
  const auto so = static_cast<float>(out_scale);
  const auto zo = static_cast<int32_t>(out_zero_point);
  const std::vector<int64_t> shape = at::infer_size((swap ? b_in : a_in).sizes(), b.sizes());
  at::Tensor a = swap ? b_in : a_in;
  if (a.sizes() != at::IntArrayRef(shape)) a = a.expand(shape);  // both broadcast: a is materialised below
  const auto format = a.dim() == 4 ? a.suggest_memory_format() : at::MemoryFormat::Contiguous;
  const at::Tensor ac = a.contiguous(format);
  at::Tensor out = pooled_empty(shape, a.options().memory_format(format));
  if (out.numel() == 0) return out;
  const uint8_t* ap = ac.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  const kernels::Isa isa = kernels::active_isa();
  constexpr int64_t kGrain = 1 << 14;  // elements per task
  if (const std::optional<at::Tensor> gate = channel_gate(ac, b)) {
    std::vector<float> f(static_cast<size_t>(gate->numel()));
    kernels::dequantize_u8(gate->data_ptr<uint8_t>(), gate->numel(), sb, zb, f.data());
    const int64_t n = ac.size(0), c = ac.size(1), plane = ac.size(2) * ac.size(3);
    const auto gate_of = [&](int64_t image) { return f.data() + (gate->size(0) == 1 ? 0 : image * c); };
    if (format == at::MemoryFormat::ChannelsLast) {  // each pixel's C bytes against the image's C gates
      at::parallel_for(0, n * plane, std::max<int64_t>(1, kGrain / c), [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1;) {
          const int64_t image = p / plane, last = std::min(p1, (image + 1) * plane);
          kernels::mul_requant_u8(ap + p * c, sa, za, gate_of(image), c, (last - p) * c, so, zo, o + p * c, isa);
          p = last;
        }
      });
    } else {  // each channel's plane against its one gate
      at::parallel_for(0, n * c, std::max<int64_t>(1, kGrain / plane), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          kernels::mul_requant_u8(ap + r * plane, sa, za, gate_of(r / c) + r % c, 1, plane, so, zo, o + r * plane, isa);
        }
      });
    }
    return out;
  }
  // Anything else: b laid out like a, dequantized a chunk at a time.
  const at::Tensor bc = b.expand(shape).contiguous(format);
  const uint8_t* bp = bc.data_ptr<uint8_t>();
  at::parallel_for(0, out.numel(), kGrain, [&](int64_t begin, int64_t end) {
    std::vector<float> f(static_cast<size_t>(std::min<int64_t>(kGrain, end - begin)));
    for (int64_t i = begin; i < end; i += kGrain) {
      const int64_t len = std::min<int64_t>(kGrain, end - i);
      kernels::dequantize_u8(bp + i, len, sb, zb, f.data());
      kernels::mul_requant_u8(ap + i, sa, za, f.data(), len, len, so, zo, o + i, isa);
    }
  });
  return out;
}

at::Tensor lut_u8(const at::Tensor& x, const at::Tensor& table) {
  constexpr const char* op = "qext::lut_u8";
  TORCH_CHECK(x.scalar_type() == at::kByte, op, ": expected uint8; got ", x.scalar_type());
  const bool per_channel = table.dim() == 2;
  const kernels::Isa isa = kernels::active_isa();
  TORCH_CHECK(table.scalar_type() == at::kByte && (table.dim() == 1 || per_channel) && table.size(-1) == 256, op,
              ": expected a uint8 table [256] or [C, 256]; got ", table.scalar_type(), " of shape ", table.sizes());
  const at::Tensor t = table.contiguous();
  const uint8_t* lut = t.data_ptr<uint8_t>();
  if (!per_channel) {
    return map_keeping_format<uint8_t, uint8_t>(x, at::kByte, [&](const uint8_t* in, int64_t n, uint8_t* out) {
      kernels::lut_u8(in, n, lut, out, isa);
    });
  }
  const int64_t channels = t.size(0);
  TORCH_CHECK(x.dim() >= 2 && x.size(1) == channels, op, ": a [", channels, ", 256] table needs ", channels,
              " channels in dimension 1; got shape ", x.sizes());
  const auto format = x.suggest_memory_format();
  const at::Tensor xc = x.contiguous(format);
  at::Tensor out = pooled_empty(x.sizes(), x.options().memory_format(format));
  if (x.numel() == 0) return out;
  const uint8_t* in = xc.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  const int64_t inner = x.numel() / (x.size(0) * channels);  // values per (sample, channel) plane
  if (format == at::MemoryFormat::ChannelsLast || inner == 1) {
    // Channels innermost: each pixel is one run of C values, channel c at c.
    at::parallel_for(0, x.numel() / channels, std::max<int64_t>(1, (1 << 14) / channels), [&](int64_t begin, int64_t end) {
      kernels::lut_u8_per_channel(in + begin * channels, end - begin, channels, lut, o + begin * channels, isa);
    });
  } else {
    at::parallel_for(0, x.size(0) * channels, std::max<int64_t>(1, (1 << 14) / inner), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        kernels::lut_u8(in + plane * inner, inner, lut + (plane % channels) * 256, o + plane * inner, isa);
      }
    });
  }
  return out;
}

at::Tensor add_int8(const at::Tensor& a, double a_scale, int64_t a_zero_point, const at::Tensor& b,
                    double b_scale, int64_t b_zero_point, double out_scale, int64_t out_zero_point,
                    bool relu) {
  constexpr const char* op = "qext::add_int8";
  check_binary_u8(op, a, a_scale, a_zero_point, b, b_scale, b_zero_point, out_scale, out_zero_point);
  if (a.sizes() != b.sizes()) {
    // Broadcasting: correct, not fast (float in between).
    at::Tensor sum = dequantize_per_tensor(a, a_scale, a_zero_point) +
                     dequantize_per_tensor(b, b_scale, b_zero_point);
    if (relu) sum = sum.clamp_min(0);
    return quantize_per_tensor(sum.contiguous(sum.suggest_memory_format()), out_scale, out_zero_point);
  }
  const auto format = a.suggest_memory_format();
  const at::Tensor ac = a.contiguous(format), bc = b.contiguous(format);
  at::Tensor out = pooled_empty(a.sizes(), a.options().memory_format(format));
  const uint8_t* ap = ac.data_ptr<uint8_t>();
  const uint8_t* bp = bc.data_ptr<uint8_t>();
  uint8_t* outp = out.data_ptr<uint8_t>();
  const kernels::Isa isa = kernels::active_isa();
  at::parallel_for(0, a.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    kernels::add_requant_u8(ap + begin, static_cast<float>(a_scale), static_cast<int32_t>(a_zero_point),
                            bp + begin, static_cast<float>(b_scale), static_cast<int32_t>(b_zero_point),
                            end - begin, static_cast<float>(out_scale),
                            static_cast<int32_t>(out_zero_point), relu, outp + begin, isa);
  });
  return out;
}

at::Tensor linear_int8(const at::Tensor& x, double x_scale, int64_t x_zero_point,
                       const c10::intrusive_ptr<PackedLinearWeight>& w,
                       const std::optional<at::Tensor>& bias, double out_scale,
                       int64_t out_zero_point, bool relu, std::optional<double> clamp_min,
                       std::optional<double> clamp_max) {
  constexpr const char* op = "qext::linear_int8";
  TORCH_CHECK(w, op, ": weight is None");
  const int64_t k = w->in_features(), n = w->out_features();
  TORCH_CHECK(x.scalar_type() == at::kByte && x.dim() >= 1 && x.size(-1) == k, op,
              ": expected uint8 activations [..., ", k, "]; got ", x.scalar_type(), " of shape ", x.sizes());
  check_qparams(op, "input", x_scale, x_zero_point);
  check_qparams(op, "output", out_scale, out_zero_point);
  const at::Tensor b = checked_bias(op, bias, n);
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = n;
  at::Tensor out = pooled_empty(shape, x.options());
  const int64_t m = x.numel() / k;
  if (m == 0) return out;
  const at::Tensor xc = x.contiguous();
  const std::vector<float> row_scale(m, static_cast<float>(x_scale));
  const std::vector<int32_t> row_zp(m, static_cast<int32_t>(x_zero_point));
  const kernels::Epilogue ep = requant_epilogue(row_scale.data(), w->scales().data_ptr<float>(),
                                                b.defined() ? b.data_ptr<float>() : nullptr,
                                                out_scale, out_zero_point, relu, clamp_min, clamp_max);
  kernels::GemmArgs args;
  args.a = xc.data_ptr<uint8_t>();
  args.lda = k;
  args.a_zero_point = row_zp.data();
  args.a_max = activation_max(xc, 0, w->packed());
  args.c = out.data_ptr<uint8_t>();
  args.ldc = n;
  parallel_qgemm(args, w->packed(), ep, m);
  return out;
}

}  // namespace qext::ops
