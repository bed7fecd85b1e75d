// The quantize / min-max kernels of every path against the scalar rule, and the
// qparams arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <iterator>
#include <limits>
#include <random>
#include <vector>

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
  for (int64_t n : {1, 9, 16, 33, 1000}) {
    std::vector<float> x = awkward_values(n, 99);
    float want_lo = std::numeric_limits<float>::infinity(), want_hi = -want_lo;
    for (float v : x) want_lo = std::min(want_lo, v), want_hi = std::max(want_hi, v);
    for (Isa isa : supported_isas()) {
      float lo, hi;
      EXPECT_TRUE(finite_min_max(x.data(), n, &lo, &hi, isa));
      EXPECT_EQ(lo, want_lo) << isa_name(isa) << " n=" << n;
      EXPECT_EQ(hi, want_hi) << isa_name(isa) << " n=" << n;
      for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
        std::vector<float> y = x;
        y[n - 1] = bad;
        float l2, h2;
        EXPECT_FALSE(finite_min_max(y.data(), n, &l2, &h2, isa)) << isa_name(isa);
        EXPECT_TRUE(std::isfinite(l2) && std::isfinite(h2));
      }
    }
  }
  const float all_nan[] = {NAN, NAN, NAN};
  float lo, hi;
  EXPECT_FALSE(finite_min_max(all_nan, 3, &lo, &hi, Isa::Ref));
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 0.0f);
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
