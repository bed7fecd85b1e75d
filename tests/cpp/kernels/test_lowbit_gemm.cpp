// Every compiled ISA path of the low-bit GEMM against a naive definition
// written here from the unpacked levels: float outputs must be equal bit for
// bit (the group sums are exact int32, the float steps run in one order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/isa.h"
#include "kernels/lowbit_gemm.h"

using namespace qext::kernels;

namespace {

struct LowBitProblem {
  int64_t m, k, n, lda;
  int bits;
  int64_t group;  // effective group size in k
  std::vector<uint8_t> a;       // [m, lda]; k >= K holds the row's zero point
  std::vector<int8_t> levels;   // [n, k]
  std::vector<float> scales;    // [n, groups]
  std::vector<int32_t> zp;      // [m]
  std::vector<float> row_scale, bias;
};

LowBitProblem random_problem(int64_t m, int64_t k, int64_t n, int bits, int64_t group_size, int32_t zp,
                             uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t lda = (k + 3) / 4 * 4 + 4;  // a spare step past the padding: nothing may read it
  const int64_t group = group_size == 0 || group_size > (k + 3) / 4 * 4 ? (k + 3) / 4 * 4 : group_size;
  const int64_t groups = (k + group - 1) / group;
  LowBitProblem p{m, k, n, lda, bits, group, std::vector<uint8_t>(m * lda), std::vector<int8_t>(n * k),
                  std::vector<float>(n * groups), std::vector<int32_t>(m, zp), std::vector<float>(m),
                  std::vector<float>(n)};
  std::uniform_int_distribution<int> u8(0, 255), level(lowbit_min_level(bits), lowbit_max_level(bits));
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f), pos(0.001f, 0.1f), any(-3.0f, 3.0f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t l = 0; l < lda; ++l) p.a[i * lda + l] = static_cast<uint8_t>(l < k ? u8(rng) : (l < (k + 3) / 4 * 4 ? zp : 77));
  for (auto& v : p.levels) {
    v = static_cast<int8_t>(level(rng));
    if (bits == 1 && v == 0) v = 1;
  }
  for (auto& s : p.scales) s = scale(rng);
  for (auto& s : p.row_scale) s = pos(rng);
  for (auto& b : p.bias) b = any(rng);
  return p;
}

// The definition: per group an exact int32 sum, then float steps in group order.
std::vector<float> naive(const LowBitProblem& p, float clamp_min, float clamp_max) {
  const int64_t groups = (p.k + p.group - 1) / p.group;
  std::vector<float> c(p.m * p.n);
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.n; ++j) {
      float sum = 0.0f;
      for (int64_t g = 0; g < groups; ++g) {
        int32_t acc = 0;
        for (int64_t l = g * p.group; l < std::min(p.k, (g + 1) * p.group); ++l)
          acc += (p.a[i * p.lda + l] - p.zp[i]) * p.levels[j * p.k + l];
        sum = sum + static_cast<float>(acc) * p.scales[j * groups + g];
      }
      float y = sum * p.row_scale[i] + p.bias[j];
      y = y > clamp_min ? y : clamp_min;
      y = y < clamp_max ? y : clamp_max;
      c[i * p.n + j] = y;
    }
  return c;
}

std::vector<float> run(const LowBitProblem& p, const LowBitWeights& w, Isa isa, float clamp_min, float clamp_max) {
  std::vector<float> c(p.m * p.n, -1.0f);
  LowBitGemmArgs args;
  args.a = p.a.data();
  args.lda = p.lda;
  args.a_zero_point = p.zp.data();
  args.row_scale = p.row_scale.data();
  args.bias = p.bias.data();
  args.clamp_min = clamp_min;
  args.clamp_max = clamp_max;
  args.c = c.data();
  args.ldc = p.n;
  lowbit_gemm(args, w, 0, p.m, 0, w.num_blocks(), isa);
  return c;
}

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

}  // namespace

TEST(LowBitGemm, EveryPathMatchesTheDefinitionBitForBit) {
  const float inf = std::numeric_limits<float>::infinity();
  int idx = 0;
  for (int bits : {4, 2, 1})
    for (int64_t group : {0, 4, 32, 128})
      for (int64_t m : {1, 3, 4, 5, 9})
        for (int64_t k : {1, 5, 32, 100, 257})
          for (int64_t n : {1, 16, 17, 40}) {
            const int32_t zp = std::vector<int32_t>{0, 128, 255, 3}[idx % 4];
            const LowBitProblem p = random_problem(m, k, n, bits, group, zp, 500u + idx++);
            const LowBitWeights w(p.levels.data(), p.scales.data(), n, k, bits, group);
            const bool relu = idx % 3 == 0;
            const std::vector<float> want = naive(p, relu ? 0.0f : -inf, inf);
            for (Isa isa : supported_isas()) {
              ASSERT_TRUE(same_bits(run(p, w, isa, relu ? 0.0f : -inf, inf), want))
                  << isa_name(isa) << " bits=" << bits << " group=" << group << " M=" << m << " K=" << k
                  << " N=" << n << " zp=" << zp;
            }
          }
}

TEST(LowBitGemm, PackingKeepsEveryLevel) {
  for (int bits : {4, 2, 1}) {
    const LowBitProblem p = random_problem(1, 37, 19, bits, 8, 0, 7u);
    const LowBitWeights w(p.levels.data(), p.scales.data(), 19, 37, bits, 8);
    for (int64_t j = 0; j < 19; ++j)
      for (int64_t l = 0; l < 37; ++l) ASSERT_EQ(w.level(j, l), p.levels[j * 37 + l]) << bits << " bits";
  }
}

TEST(LowBitGemm, RejectsBadShapesAndLevels) {
  const int8_t eight[4] = {8, 0, 0, 0}, zero[4] = {0, 0, 0, 0};
  const float s[1] = {1.0f};
  EXPECT_THROW(LowBitWeights(zero, s, 1, 4, 3, 0), std::invalid_argument);      // 3 bits
  EXPECT_THROW(LowBitWeights(zero, s, 1, 4, 4, 6), std::invalid_argument);      // group not a multiple of 4
  EXPECT_THROW(LowBitWeights(eight, s, 1, 4, 4, 0), std::invalid_argument);     // 8 is not a 4-bit level
  EXPECT_THROW(LowBitWeights(zero, s, 1, 4, 1, 0), std::invalid_argument);      // binary has no 0
  EXPECT_THROW(LowBitWeights(zero, s, 0, 4, 4, 0), std::invalid_argument);      // N = 0
}
