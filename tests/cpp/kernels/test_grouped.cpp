// The grouped kernel of every path against the definition written out here
// (integer sums over each group's window, the scalar epilogue rules), byte for
// byte over group widths each path packs or declines, channel counts that
// leave partial lane blocks, strides, dilations, zero points and extreme
// operands.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/grouped.h"
#include "kernels/ref/scalar_rules.h"

using namespace qext::kernels;

namespace {

struct Case {
  int64_t n, c, g, hp, wp, k, stride, dilation;
  int32_t x_zero_point;
  bool extreme;  // all pixels 255 and weights +-127 or -128 (+-64 when narrow): the largest sums
  bool narrow;   // weights within +-64: AVX2 packs bytes (4 per word) where the width allows
};

std::vector<uint8_t> reference(const GroupedArgs& a, const std::vector<int8_t>& w, int64_t g) {
  const int64_t taps = a.kh * a.kw;
  std::vector<uint8_t> out(a.n_rows() * a.ow * a.channels);
  for (int64_t row = 0; row < a.n_rows(); ++row) {
    const int64_t img = row / a.oh, oy = row % a.oh;
    for (int64_t ox = 0; ox < a.ow; ++ox) {
      for (int64_t o = 0; o < a.channels; ++o) {
        int32_t acc = 0;
        for (int64_t j = 0; j < g; ++j) {
          for (int64_t i = 0; i < a.kh; ++i) {
            for (int64_t jj = 0; jj < a.kw; ++jj) {
              const int64_t y = oy * a.sh + i * a.dh, x = ox * a.sw + jj * a.dw;
              const int32_t v = a.image[((img * a.hp + y) * a.wp + x) * a.channels + o / g * g + j];
              acc += (v - a.x_zero_point) * w[(o * g + j) * taps + i * a.kw + jj];
            }
          }
        }
        const float f = ref::epilogue_float(acc, a.x_scale, a.w_scale[o], a.bias, o, a.clamp_min, a.clamp_max);
        out[(row * a.ow + ox) * a.channels + o] =
            static_cast<uint8_t>(ref::quantize_one(f, a.out_scale, a.out_zero_point, 0, 255));
      }
    }
  }
  return out;
}

}  // namespace

TEST(GroupedKernel, EveryPathMatchesTheDefinition) {
  // Each shape with full-range and with narrow weights.
  const Case shapes[] = {
      {1, 16, 8, 6, 6, 3, 1, 1, 0, false, false},    {2, 24, 8, 7, 9, 3, 1, 1, 128, false, false},
      {1, 48, 16, 9, 9, 3, 2, 1, 255, false, false}, {1, 40, 4, 11, 11, 3, 1, 2, 37, false, false},
      {1, 12, 2, 8, 8, 3, 2, 1, 3, false, false},    {1, 72, 24, 6, 6, 3, 1, 1, 200, false, false},
      {1, 64, 32, 5, 7, 1, 1, 1, 90, false, false},  {1, 30, 6, 6, 6, 3, 1, 1, 11, false, false},
      {1, 80, 40, 5, 5, 3, 1, 1, 0, false, false},   {1, 36, 12, 6, 6, 3, 1, 1, 7, false, false},
      {1, 64, 16, 9, 9, 5, 1, 1, 0, true, false},    {1, 64, 16, 9, 9, 5, 1, 1, 255, true, false},
      {2, 56, 8, 6, 6, 2, 1, 1, 128, true, false},   {1, 96, 24, 6, 6, 3, 1, 1, 255, true, false},
  };
  std::vector<Case> cases;
  for (Case t : shapes) {
    cases.push_back(t);
    t.narrow = true;
    cases.push_back(t);
  }
  std::mt19937 rng(11);
  for (const Case& t : cases) {
    const int64_t taps = t.k * t.k;
    GroupedArgs a;
    a.hp = t.hp, a.wp = t.wp, a.channels = t.c;
    a.kh = a.kw = t.k, a.sh = a.sw = t.stride, a.dh = a.dw = t.dilation;
    a.oh = (t.hp - t.dilation * (t.k - 1) - 1) / t.stride + 1;
    a.ow = (t.wp - t.dilation * (t.k - 1) - 1) / t.stride + 1;
    // The kernels read whole windows: the image keeps 64 bytes of slack.
    std::vector<uint8_t> image(t.n * t.hp * t.wp * t.c + 64);
    std::vector<int8_t> w(t.c * t.g * taps);
    std::vector<float> w_scale(t.c), bias(t.c);
    for (auto& v : image) v = t.extreme ? 255 : static_cast<uint8_t>(rng() % 256);
    for (size_t i = 0; i < w.size(); ++i) {
      const int lo = t.narrow ? -64 : -128, hi = t.narrow ? 64 : 127;
      w[i] = static_cast<int8_t>(t.extreme ? (t.x_zero_point ? lo : hi) : lo + static_cast<int>(rng() % (hi - lo + 1)));
    }
    for (int64_t c = 0; c < t.c; ++c) {
      w_scale[c] = 0.0005f + 0.00001f * static_cast<float>(c);
      bias[c] = static_cast<float>(static_cast<int>(rng() % 200) - 100) * 0.01f;
    }
    a.image = image.data();
    a.x_zero_point = t.x_zero_point;
    a.x_scale = 0.02f;
    a.w_scale = w_scale.data();
    a.bias = t.extreme ? nullptr : bias.data();
    a.clamp_min = t.extreme ? -1e30f : 0.0f;  // ReLU on the random cases
    a.clamp_max = 1e30f;
    a.out_scale = t.extreme ? 64.0f : 0.05f;
    a.out_zero_point = 100;
    a.n = t.n;
    const std::vector<uint8_t> want = reference(a, w, t.g);
    int64_t packed_paths = 0;
    for (Isa isa : supported_isas()) {
      const auto packed = grouped_pack_weights(w.data(), t.c, t.g, taps, isa);
      if (isa == Isa::Ref) {
        ASSERT_TRUE(packed) << "the reference path takes every group width";
      }
      if (!packed) continue;  // this path declines the width: conv2d_int8 runs GEMMs per group
      if (isa == Isa::Avx2) {  // bytes for narrow weights where 4 | G, int16 pairs otherwise
        EXPECT_EQ(packed->step, t.narrow && t.g % 4 == 0 ? 4 : 2) << "g=" << t.g << " narrow=" << t.narrow;
      }
      ++packed_paths;
      std::vector<uint8_t> got(want.size(), 0);
      a.weights = &*packed;
      a.out = got.data();
      grouped_conv_u8(a, 0, a.n_rows(), isa);
      EXPECT_EQ(got, want) << isa_name(isa) << " c=" << t.c << " g=" << t.g << " k=" << t.k
                           << " zp=" << t.x_zero_point << " narrow=" << t.narrow;
      // Grouped kernels read a padded copy; unstored padding is refused.
      a.pad_w = 1;
      EXPECT_THROW(grouped_conv_u8(a, 0, a.n_rows(), isa), std::invalid_argument) << isa_name(isa);
      a.pad_w = 0;
    }
    EXPECT_GE(packed_paths, 1);
  }
}

TEST(GroupedKernel, PathsPackTheWidthsTheirWindowsCover) {
  const std::vector<int8_t> w(96 * 40 * 9, 100);  // the largest channels x width x taps below
  const std::vector<int8_t> narrow(96 * 40 * 9, -64);
  for (Isa isa : supported_isas()) {
    if (isa == Isa::Avx2) {
      for (int64_t g : {2, 4, 6, 8, 16}) EXPECT_TRUE(grouped_pack_weights(w.data(), 48, g, 9, isa)) << g;
      EXPECT_FALSE(grouped_pack_weights(w.data(), 48, 24, 9, isa));  // a block straddles 2 groups of 24
      EXPECT_FALSE(grouped_pack_weights(w.data(), 30, 3, 9, isa));   // not whole pair words
      // Narrow weights as bytes: a 32-channel window covers G of 12, 24, 32; 2 and 6 stay int16 pairs.
      for (int64_t g : {2, 4, 6, 8, 12, 16, 24, 32}) EXPECT_TRUE(grouped_pack_weights(narrow.data(), 96, g, 9, isa)) << g;
      EXPECT_FALSE(grouped_pack_weights(narrow.data(), 80, 40, 9, isa));  // a block spans 80 channels
    }
    if (isa == Isa::Avx512Vnni || isa == Isa::Amx) {  // AMX runs the VNNI grouped kernel
      for (int64_t g : {4, 8, 16, 24, 32}) EXPECT_TRUE(grouped_pack_weights(w.data(), 96, g, 9, isa)) << g;
      EXPECT_FALSE(grouped_pack_weights(w.data(), 80, 40, 9, isa));  // a block spans 80 channels
      EXPECT_FALSE(grouped_pack_weights(w.data(), 30, 6, 9, isa));   // not whole quad words
    }
  }
  EXPECT_THROW(grouped_pack_weights(w.data(), 30, 8, 9, Isa::Ref), std::invalid_argument);
}
