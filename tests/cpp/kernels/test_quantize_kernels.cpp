// The quantize / min-max kernels of every path against the scalar rule, and the
// qparams arithmetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <random>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/isa_paths.h"
#include "kernels/lut.h"
#include "kernels/quantize.h"
#include "kernels/ref/scalar_rules.h"
#include "quant/qparams.h"

using namespace qext::kernels;
using qext::quant::choose_qparams;

namespace {

std::vector<float> awkward_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 4.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = g(rng);
  // exact ties at x / scale = k + 0.5 for scale 0.5, and out-of-range values
  for (int64_t i = 0; i < n; i += 7) x[i] = 0.25f * static_cast<float>(static_cast<int>(i % 41) - 20);
  if (n > 3) x[3] = 1e30f;
  if (n > 5) x[5] = -1e30f;
  return x;
}

}  // namespace

TEST(QuantizeKernels, EveryPathRoundsHalfToEvenAndClampsLikeTheRule) {
  for (int64_t n : {1, 7, 8, 15, 16, 17, 100, 1000}) {
    std::vector<float> x = awkward_values(n, static_cast<uint32_t>(n));
    for (Isa isa : supported_isas()) {
      for (auto [scale, zp] : {std::pair<float, int32_t>{0.5f, 128}, {0.037f, 3}, {1.0f, 0}}) {
        std::vector<uint8_t> q(n);
        quantize_u8(x.data(), n, scale, zp, 0, 255, q.data(), isa);
        for (int64_t i = 0; i < n; ++i) {
          const float t = std::nearbyint(x[i] / scale) + static_cast<float>(zp);
          const auto want = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, t)));
          ASSERT_EQ(q[i], want) << isa_name(isa) << " x=" << x[i] << " scale=" << scale;
        }
      }
    }
  }
}

// Scales from denormal (1/scale overflows: the dividing fallback) to huge,
// narrow ranges (low-bit) and a zero point outside the range, NaN / inf /
// signed-zero inputs: byte for byte the scalar rule on every path.
TEST(QuantizeKernels, EveryPathFollowsTheRuleForAnyScaleRangeAndInput) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = awkward_values(203, 9);
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), inf, -inf, 0.0f, -0.0f, 1e-38f, -3e-39f};
  for (size_t i = 0; i < std::size(specials); ++i) x[10 * i + 1] = specials[i];
  struct Range { int32_t zp, qmin, qmax; };
  for (float scale : {1e-39f, 3e-38f, 0.037f, 0.5f, 1e30f, 3e38f}) {  // 3e38: 1/s denormal, 255 * s = inf
    for (auto [zp, qmin, qmax] : {Range{0, 0, 255}, Range{77, 0, 255}, Range{255, 0, 255}, Range{7, 0, 15},
                                  Range{40, 3, 20}}) {
      const int64_t n = static_cast<int64_t>(x.size());
      for (Isa isa : supported_isas()) {
        std::vector<uint8_t> q(n);
        quantize_u8(x.data(), n, scale, zp, qmin, qmax, q.data(), isa);
        for (int64_t i = 0; i < n; ++i) {
          const auto want = static_cast<uint8_t>(ref::quantize_one(x[i], scale, zp, qmin, qmax));
          ASSERT_EQ(q[i], want) << isa_name(isa) << " x=" << x[i] << " scale=" << scale << " zp=" << zp
                                << " range=[" << qmin << ", " << qmax << "]";
        }
      }
    }
  }
}

TEST(QuantizeKernels, TiesGoToEven) {
  const float x[] = {0.25f, 0.75f, -0.25f, -0.75f, 1.25f};
  for (Isa isa : supported_isas()) {
    uint8_t q[5];
    quantize_u8(x, 5, 0.5f, 10, 0, 255, q, isa);  // x / 0.5 = 0.5, 1.5, -0.5, -1.5, 2.5
    EXPECT_EQ(q[0], 10);
    EXPECT_EQ(q[1], 12);
    EXPECT_EQ(q[2], 10);
    EXPECT_EQ(q[3], 8);
    EXPECT_EQ(q[4], 12);
  }
}

TEST(QuantizeKernels, NanQuantizesToQmin) {
  const float x[] = {std::numeric_limits<float>::quiet_NaN(), 1.0f};
  for (Isa isa : supported_isas()) {
    uint8_t q[2];
    quantize_u8(x, 2, 1.0f, 5, 3, 255, q, isa);
    EXPECT_EQ(q[0], 3) << isa_name(isa);
    EXPECT_EQ(q[1], 6) << isa_name(isa);
  }
}

TEST(QuantizeKernels, FiniteMinMaxSkipsAndReportsNonFinite) {
  const auto fold = [](const std::vector<float>& x, float* lo, float* hi) {
    *lo = std::numeric_limits<float>::infinity(), *hi = -*lo;
    for (float v : x)
      if (std::isfinite(v)) *lo = std::min(*lo, v), *hi = std::max(*hi, v);
  };
  // Sizes around the vector paths' 4-vector unrolls and their tails.
  for (int64_t n : {1, 9, 16, 31, 32, 33, 64, 65, 95, 384, 1000}) {
    std::vector<float> x = awkward_values(n, 99);
    float want_lo, want_hi;
    fold(x, &want_lo, &want_hi);
    for (Isa isa : supported_isas()) {
      float lo, hi;
      EXPECT_TRUE(finite_min_max(x.data(), n, &lo, &hi, isa));
      EXPECT_EQ(lo, want_lo) << isa_name(isa) << " n=" << n;
      EXPECT_EQ(hi, want_hi) << isa_name(isa) << " n=" << n;
      const float inf = std::numeric_limits<float>::infinity();
      for (float bad : {std::numeric_limits<float>::quiet_NaN(), inf, -inf}) {
        for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
          std::vector<float> y = x;
          y[at] = bad;
          float l2, h2, w_lo, w_hi;
          fold(y, &w_lo, &w_hi);
          if (w_lo > w_hi) w_lo = w_hi = 0.0f;  // nothing finite left
          EXPECT_FALSE(finite_min_max(y.data(), n, &l2, &h2, isa)) << isa_name(isa) << " n=" << n << " at " << at;
          EXPECT_EQ(l2, w_lo) << isa_name(isa) << " n=" << n << " at " << at;
          EXPECT_EQ(h2, w_hi) << isa_name(isa) << " n=" << n << " at " << at;
        }
      }
    }
  }
  const float all_nan[] = {NAN, NAN, NAN};
  float lo, hi;
  EXPECT_FALSE(finite_min_max(all_nan, 3, &lo, &hi, Isa::Ref));
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 0.0f);
}

// The largest byte, on every path: sizes around the 64-byte AVX2 steps, the
// maximum alone at the start, middle or end (one lane, one step, the tail).
TEST(ElementwiseKernels, MaxU8FindsTheLargestByteAnywhere) {
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> small(0, 99);
  for (int64_t n : {0, 1, 15, 31, 32, 63, 64, 65, 127, 128, 129, 1000}) {
    std::vector<uint8_t> x(n);
    for (auto& v : x) v = static_cast<uint8_t>(small(rng));
    for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
      for (uint8_t top : {uint8_t{100}, uint8_t{127}, uint8_t{128}, uint8_t{255}}) {
        std::vector<uint8_t> y = x;
        if (n > 0) y[at] = top;
        const uint8_t want = n > 0 ? *std::max_element(y.begin(), y.end()) : 0;
        for (Isa isa : supported_isas())
          EXPECT_EQ(max_u8(y.data(), n, isa), want) << isa_name(isa) << " n=" << n << " at " << at << " top " << int{top};
      }
    }
  }
}

// The requantizing product on every path against ref::mul_requant_one, byte
// for byte: second factors repeating every f_len values (1: one for all;
// around the 8- and 16-lane steps and their 4-vector unrolls), zero points
// 0 / 128 / 255, exact ties (sa = 0.5, f = +-1, so = 1), zeros of both signs,
// products past the output's range and NaN-free extremes; nothing written
// past n.
TEST(ElementwiseKernels, MulRequantOnEveryPathFollowsTheScalarRule) {
  std::mt19937 rng(21);
  std::normal_distribution<float> g(0.0f, 1.0f);
  struct Scales {
    float sa, so;
  };
  for (int64_t f_len : {1, 3, 7, 8, 15, 16, 17, 33, 64, 65, 72, 100}) {
    for (int64_t rows : {1, 3}) {
      const int64_t n = f_len == 1 ? 131 * rows : f_len * rows;
      std::vector<uint8_t> a(n);
      for (int64_t i = 0; i < n; ++i) a[i] = static_cast<uint8_t>(i < 256 ? (i * 37) % 256 : rng());
      std::vector<float> f(f_len);
      for (int64_t i = 0; i < f_len; ++i) f[i] = g(rng);
      const float extremes[] = {1.0f, -1.0f, 0.0f, -0.0f, 1e30f, -1e30f, 1e-30f};
      for (int64_t i = 0; i < f_len && i < 7; ++i) f[(i * 5) % f_len] = extremes[i];
      for (int32_t za : {0, 128, 255}) {
        for (int32_t zo : {0, 128, 255}) {
          for (Scales sc : {Scales{0.5f, 1.0f}, Scales{0.02f, 0.031f}, Scales{3.0f, 4.7f}, Scales{0.0123f, 0.0077f}}) {
            for (Isa isa : supported_isas()) {
              std::vector<uint8_t> got(n + 1, 0xAB);
              mul_requant_u8(a.data(), sc.sa, za, f.data(), f_len, n, sc.so, zo, got.data(), isa);
              for (int64_t i = 0; i < n; ++i) {
                ASSERT_EQ(got[i], ref::mul_requant_one(a[i], sc.sa, za, f[i % f_len], sc.so, zo))
                    << isa_name(isa) << " f_len=" << f_len << " n=" << n << " i=" << i << " za=" << za << " zo=" << zo;
              }
              ASSERT_EQ(got[n], 0xAB) << isa_name(isa) << " wrote past the end, f_len=" << f_len;
            }
          }
        }
      }
    }
  }
}

TEST(Qparams, ClassicWorkedExample) {
  // [-6, 6] onto [0, 255]: scale 12/255 ~ 0.047, zero point 128.
  const auto p = choose_qparams(-6.0f, 6.0f, 0, 255, false);
  EXPECT_FLOAT_EQ(p.scale, 12.0f / 255.0f);
  EXPECT_EQ(p.zero_point, 128);
}

TEST(Qparams, RangeAlwaysHoldsZeroAndZeroWidthIsValid) {
  auto p = choose_qparams(2.0f, 5.0f, 0, 255, false);
  EXPECT_FLOAT_EQ(p.scale, 5.0f / 255.0f);
  EXPECT_EQ(p.zero_point, 0);
  p = choose_qparams(-5.0f, -2.0f, 0, 255, false);
  EXPECT_EQ(p.zero_point, 255);
  p = choose_qparams(0.0f, 0.0f, 0, 255, false);
  EXPECT_GT(p.scale, 0.0f);
  EXPECT_TRUE(std::isfinite(1.0f / p.scale));
  EXPECT_THROW(choose_qparams(NAN, 1.0f, 0, 255, false), std::invalid_argument);
  EXPECT_THROW(choose_qparams(0.0f, 1.0f, 5, 5, false), std::invalid_argument);
}

TEST(Qparams, Symmetric) {
  auto p = choose_qparams(-3.0f, 1.27f, -127, 127, true);
  EXPECT_FLOAT_EQ(p.scale, 3.0f / 127.0f);
  EXPECT_EQ(p.zero_point, 0);
  p = choose_qparams(-1.0f, 2.55f, -128, 127, true);
  EXPECT_FLOAT_EQ(p.scale, 2.55f / 127.5f);
  EXPECT_EQ(p.zero_point, 0);
  p = choose_qparams(-1.0f, 2.0f, 0, 255, true);
  EXPECT_EQ(p.zero_point, 128);
}

// Byte tables: every path (and the AVX-512 fallback for CPUs without VBMI)
// gives the scalar lookup's bytes, at every length around the 64-byte step
// and for strided rows.
TEST(LutKernels, EveryPathLooksUpLikeTheScalarLoop) {
  std::mt19937 rng(5);
  std::vector<uint8_t> table(256);
  for (auto& t : table) t = static_cast<uint8_t>(rng());
  for (int64_t n : {0, 1, 15, 16, 31, 32, 33, 63, 64, 65, 127, 128, 200, 255, 256, 257, 1000}) {
    std::vector<uint8_t> in(n);
    for (int64_t i = 0; i < n; ++i) in[i] = static_cast<uint8_t>(i < 256 ? i : rng());  // every byte value
    std::vector<uint8_t> want(n);
    for (int64_t i = 0; i < n; ++i) want[i] = table[in[i]];
    for (Isa isa : supported_isas()) {
      std::vector<uint8_t> got(n + 1, 0xAB);  // one guard byte past the end
      lut_u8(in.data(), n, table.data(), got.data(), isa);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << isa_name(isa) << " n=" << n << " i=" << i;
      ASSERT_EQ(got[n], 0xAB) << isa_name(isa) << " wrote past the end, n=" << n;
    }
#if defined(__x86_64__)
    if (cpu_supports(Isa::Avx512Vnni)) {
      std::vector<uint8_t> got(n + 1, 0xAB);
      detail::lut_u8_avx512_shuffle(in.data(), n, table.data(), got.data());
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << "vpshufb fallback n=" << n << " i=" << i;
      ASSERT_EQ(got[n], 0xAB);
    }
#endif
  }
}

TEST(LutKernels, StridedRowsLeaveTheGapsAlone) {
  std::vector<uint8_t> table(256);
  for (int v = 0; v < 256; ++v) table[v] = static_cast<uint8_t>(255 - v);
  const int64_t rows = 5, cols = 70, in_stride = 75, out_stride = 80;
  std::vector<uint8_t> in(rows * in_stride);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(i * 7);
  for (Isa isa : supported_isas()) {
    std::vector<uint8_t> out(rows * out_stride, 0x11);
    lut_u8_rows(in.data(), rows, cols, in_stride, table.data(), out.data(), out_stride, isa);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < out_stride; ++c) {
        const uint8_t want = c < cols ? table[in[r * in_stride + c]] : 0x11;
        ASSERT_EQ(out[r * out_stride + c], want) << isa_name(isa) << " r=" << r << " c=" << c;
      }
    }
  }
}

TEST(LutKernels, RequantizeTableIsTheReferenceRule) {
  std::vector<uint8_t> table(256);
  requantize_table(0.05f, 10, 0.125f, 128, table.data());
  for (int q = 0; q < 256; ++q) {
    const float v = static_cast<float>(q - 10) * 0.05f;
    const float t = std::nearbyint(v / 0.125f) + 128.0f;
    ASSERT_EQ(table[q], static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, t)))) << q;
  }
}

// A table per channel: odd channel counts around the 8- and 16-lane steps,
// every byte value in every channel (the last channel's entry 255 included:
// the gathers must not read past the tables).
TEST(LutKernels, PerChannelTablesOnEveryPathMatchTheScalarLoop) {
  std::mt19937 rng(11);
  for (int64_t channels : {1, 3, 8, 15, 16, 17, 33, 64, 100}) {
    std::vector<uint8_t> tables(channels * 256);
    for (auto& t : tables) t = static_cast<uint8_t>(rng());
    const int64_t pixels = 260;
    std::vector<uint8_t> in(pixels * channels);
    for (int64_t p = 0; p < pixels; ++p) {
      for (int64_t c = 0; c < channels; ++c) in[p * channels + c] = static_cast<uint8_t>(p < 256 ? p : rng());
    }
    for (Isa isa : supported_isas()) {
      std::vector<uint8_t> got(in.size() + 1, 0xAB);
      lut_u8_per_channel(in.data(), pixels, channels, tables.data(), got.data(), isa);
      for (size_t i = 0; i < in.size(); ++i) {
        ASSERT_EQ(got[i], tables[(i % channels) * 256 + in[i]]) << isa_name(isa) << " C=" << channels << " i=" << i;
      }
      ASSERT_EQ(got[in.size()], 0xAB) << isa_name(isa) << " wrote past the end, C=" << channels;
    }
  }
}

