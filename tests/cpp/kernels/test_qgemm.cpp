// Every compiled ISA path of the int8 GEMM against a naive reference written
// here: int32 results must be equal, not close.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "kernels/gelu_erf.h"
#include "kernels/isa.h"
#include "kernels/qgemm.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>  // _mm_getcsr / _mm_setcsr
#endif

using namespace qext::kernels;

namespace {

struct Problem {
  int64_t m, k, n;
  std::vector<uint8_t> a;     // [m, k]
  std::vector<int8_t> w;      // [n, k]
  std::vector<int32_t> zp;    // [m]
  uint8_t a_max = 255;        // every a is at most this (GemmArgs::a_max)
};

// Weights in [-128, 127], or in [-w_max, w_max] for a smaller w_max: the
// narrow weights (|w| <= 64) that the AVX2 path multiplies with vpmaddubsw.
constexpr int kFullWeights = 127;
constexpr int kWeightRanges[] = {kFullWeights, kNarrowWeightMax};

// Activations in [0, a_max]: 255, or 127 (7-bit), where the AVX2 narrow
// kernel also sums two k groups in int16.
Problem random_problem(int64_t m, int64_t k, int64_t n, int32_t zp, uint32_t seed, int w_max = kFullWeights,
                       uint8_t a_max = 255) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> u8(0, a_max), s8(w_max == kFullWeights ? -128 : -w_max, w_max);
  Problem p{m, k, n, std::vector<uint8_t>(m * k), std::vector<int8_t>(n * k),
            std::vector<int32_t>(m, zp), a_max};
  for (auto& v : p.a) v = static_cast<uint8_t>(u8(rng));
  for (auto& v : p.w) v = static_cast<int8_t>(s8(rng));
  return p;
}

std::vector<int32_t> naive(const Problem& p) {
  std::vector<int32_t> c(p.m * p.n);
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.n; ++j) {
      int64_t acc = 0;
      for (int64_t l = 0; l < p.k; ++l)
        acc += (int64_t{p.a[i * p.k + l]} - p.zp[i]) * int64_t{p.w[j * p.k + l]};
      c[i * p.n + j] = static_cast<int32_t>(acc);
    }
  return c;
}

// A as p.a's rows, C dense [m, n].
GemmArgs dense_args(const Problem& p, void* c) {
  GemmArgs args;
  args.a = p.a.data();
  args.lda = p.k;
  args.a_zero_point = p.zp.data();
  args.a_max = p.a_max;
  args.c = c;
  args.ldc = p.n;
  return args;
}

template <typename T>
std::vector<T> run(const Problem& p, Isa isa, const Epilogue& ep = {}, int activation_bits = 8) {
  const PackedWeights packed(p.w.data(), p.n, p.k, isa, activation_bits);
  std::vector<T> c(p.m * p.n);
  qgemm(dense_args(p, c.data()), packed, ep, 0, p.m, 0, packed.num_blocks());
  return c;
}

std::string label(Isa isa, int64_t m, int64_t k, int64_t n, int32_t zp, int w_max = kFullWeights) {
  return std::string(isa_name(isa)) + " M=" + std::to_string(m) + " K=" + std::to_string(k) +
         " N=" + std::to_string(n) + " zp=" + std::to_string(zp) + " |w|<=" + std::to_string(w_max);
}

}  // namespace

TEST(Qgemm, ReportsTheCompiledPaths) {
  // This machine class has AVX-512 VNNI; on others the test still lists ref.
  const auto isas = supported_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::Ref);
  for (Isa isa : isas) std::printf("qext kernel path available: %s\n", isa_name(isa));
}

TEST(Qgemm, EveryPathMatchesTheNaiveReferenceExactly) {
  // M and K cross every blocking boundary a path has (AVX2: direct int8
  // reads up to 8 rows, row blocks of ~256 KB widened rows, 512-k weight
  // panels: K = 1025 gives 124-row blocks, so 129 rows end in a short block,
  // and a partial panel with an odd tail).
  const int64_t ms[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 33, 64, 100, 129};
  const int64_t ks[] = {1, 3, 17, 64, 100, 768, 1025};
  const int64_t ns[] = {1, 5, 16, 31, 768};
  const int32_t zps[] = {0, 1, 127, 128, 255};
  int idx = 0;
  for (int w_max : kWeightRanges)
    for (int64_t m : ms)
      for (int64_t k : ks)
        for (int64_t n : ns) {
          const int32_t zp = zps[idx % 5];
          const Problem p = random_problem(m, k, n, zp, 1000u + idx++, w_max);
          const std::vector<int32_t> want = naive(p);
          for (Isa isa : supported_isas()) {
            ASSERT_EQ(run<int32_t>(p, isa), want) << label(isa, m, k, n, zp, w_max);
          }
        }
}

TEST(Qgemm, EveryZeroPointOnAwkwardShapes) {
  for (int w_max : kWeightRanges)
    for (int32_t zp : {0, 1, 18, 75, 127, 128, 157, 231, 255})
      for (auto [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{7, 101, 37}, {13, 3, 70}, {6, 64, 64}}) {
        Problem p = random_problem(m, k, n, zp, static_cast<uint32_t>(zp * 7 + m), w_max);
        const std::vector<int32_t> want = naive(p);
        for (Isa isa : supported_isas()) EXPECT_EQ(run<int32_t>(p, isa), want) << label(isa, m, k, n, zp, w_max);
      }
}

TEST(Qgemm, PerRowZeroPoints) {
  Problem p = random_problem(19, 77, 45, 0, 7);
  for (int64_t i = 0; i < p.m; ++i) p.zp[i] = static_cast<int32_t>((i * 37) % 256);
  const std::vector<int32_t> want = naive(p);
  for (Isa isa : supported_isas()) EXPECT_EQ(run<int32_t>(p, isa), want) << isa_name(isa);
}

// 255 x -128 pairs overflow int16 (vpmaddubsw saturates to 32767): a path that
// saturates fails here.
TEST(Qgemm, ExtremeValuesDoNotSaturate) {
  for (int8_t wv : {int8_t{-128}, int8_t{127}})
    for (int32_t zp : {0, 255}) {
      Problem p = random_problem(17, 768, 31, zp, 1);
      std::fill(p.a.begin(), p.a.end(), uint8_t{255});
      std::fill(p.w.begin(), p.w.end(), wv);
      const std::vector<int32_t> want = naive(p);
      EXPECT_EQ(want[0], (255 - zp) * int32_t{wv} * 768);
      for (Isa isa : supported_isas()) EXPECT_EQ(run<int32_t>(p, isa), want) << isa_name(isa);
    }
}

// Narrow weights take the AVX2 vpmaddubsw kernel; its int16 pair sums are
// exact only while |w| <= 64. At the bound (255 x +-64 twice = +-32640, and
// pairs of opposite signs) every path must still equal the reference, and one
// weight past it (65 or -65) must send the matrix to the int16 kernel.
TEST(Qgemm, NarrowWeightsAtTheirBoundAreExact) {
  for (int8_t wv : {int8_t{-64}, int8_t{64}})
    for (int32_t zp : {0, 128, 255}) {
      Problem p = random_problem(9, 259, 50, zp, 4, kNarrowWeightMax);
      std::fill(p.a.begin(), p.a.end(), uint8_t{255});
      for (size_t i = 0; i < p.w.size(); ++i) p.w[i] = (i / 3) % 4 == 3 ? static_cast<int8_t>(-wv) : wv;
      const std::vector<int32_t> want = naive(p);
      for (Isa isa : supported_isas()) {
        EXPECT_TRUE(PackedWeights(p.w.data(), p.n, p.k, isa).narrow());
        EXPECT_EQ(run<int32_t>(p, isa), want) << label(isa, p.m, p.k, p.n, zp, kNarrowWeightMax);
      }
    }
  for (int8_t past : {int8_t{-65}, int8_t{65}}) {
    Problem p = random_problem(9, 259, 50, 0, 5, kNarrowWeightMax);
    std::fill(p.a.begin(), p.a.end(), uint8_t{255});
    p.w[p.w.size() / 2] = past;
    const std::vector<int32_t> want = naive(p);
    for (Isa isa : supported_isas()) {
      EXPECT_FALSE(PackedWeights(p.w.data(), p.n, p.k, isa).narrow());
      EXPECT_EQ(run<int32_t>(p, isa), want) << isa_name(isa) << " one weight " << int{past};
    }
  }
}

// 7-bit activations (a_max = 127) with narrow weights: the AVX2 kernel adds
// two k groups' vpmaddubsw results in int16, 4 products of up to 127 x 64 =
// +-32512 per lane. Shapes with odd group counts (a single group left over),
// K tails, 1-3 row tiles; then the bound itself with every product of a lane
// the same sign, and mixed signs.
TEST(Qgemm, SevenBitActivationsAreExact) {
  int idx = 0;
  for (int w_max : kWeightRanges)
    for (int64_t m : {1, 2, 3, 4, 5, 7, 100})
      for (int64_t k : {1, 4, 5, 8, 12, 17, 259, 1025})
        for (int64_t n : {1, 24, 31, 50}) {
          const int32_t zp = (idx % 3) * 63;  // 0, 63, 126
          const Problem p = random_problem(m, k, n, zp, 2000u + idx++, w_max, 127);
          const std::vector<int32_t> want = naive(p);
          for (Isa isa : supported_isas()) ASSERT_EQ(run<int32_t>(p, isa), want) << label(isa, m, k, n, zp, w_max);
        }
  for (int8_t wv : {int8_t{-64}, int8_t{64}})
    for (bool mixed : {false, true})
      for (int32_t zp : {0, 127}) {
        Problem p = random_problem(7, 263, 50, zp, 6, kNarrowWeightMax, 127);
        std::fill(p.a.begin(), p.a.end(), uint8_t{127});
        for (size_t i = 0; i < p.w.size(); ++i) p.w[i] = mixed && (i / 5) % 3 == 2 ? static_cast<int8_t>(-wv) : wv;
        const std::vector<int32_t> want = naive(p);
        for (Isa isa : supported_isas()) {
          EXPECT_EQ(run<int32_t>(p, isa), want) << label(isa, p.m, p.k, p.n, zp, kNarrowWeightMax) << " mixed=" << mixed;
        }
      }
}

// Any int8 weights packed for 7-bit activations: the AVX2 path packs them as
// bytes. With activations <= 127 every vpmaddubsw pair sum is within
// 2 x 127 x 128 (exact); with larger ones (a call the packing was not made
// for) each byte splits into its low 7 bits and its top bit. Both must equal
// the reference on every path, over odd shapes and K tails, and at the
// bounds: a = 127 with w = -128 / 127 (same and mixed signs), a = 255 and
// 128 (only the top bit set) with w = -128.
TEST(Qgemm, FullRangeWeightsPackedForSevenBitActivationsAreExact) {
  int idx = 0;
  for (uint8_t a_max : {uint8_t{127}, uint8_t{255}})
    for (int64_t m : {1, 2, 3, 5, 100})
      for (int64_t k : {1, 4, 5, 17, 259, 1025})
        for (int64_t n : {1, 24, 31, 50}) {
          const int32_t zp = a_max == 255 ? (idx % 3) * 127 : (idx % 3) * 63;
          const Problem p = random_problem(m, k, n, zp, 4000u + idx++, kFullWeights, a_max);
          const std::vector<int32_t> want = naive(p);
          for (Isa isa : supported_isas())
            ASSERT_EQ(run<int32_t>(p, isa, {}, 7), want) << label(isa, m, k, n, zp) << " a_max=" << int{a_max};
        }
  for (Isa isa : supported_isas()) {
    const Problem p = random_problem(2, 8, 3, 0, 1);
    const PackedWeights packed(p.w.data(), p.n, p.k, isa, 7);
    EXPECT_FALSE(packed.narrow());
    EXPECT_EQ(packed.bytes(), isa == Isa::Avx2) << isa_name(isa);
    EXPECT_FALSE(PackedWeights(p.w.data(), p.n, p.k, isa).bytes()) << isa_name(isa);  // 8-bit: int16 pairs
  }
  for (uint8_t a : {uint8_t{127}, uint8_t{128}, uint8_t{255}})
    for (int8_t wv : {int8_t{-128}, int8_t{127}})
      for (bool mixed : {false, true}) {
        Problem p = random_problem(5, 263, 50, 0, 7, kFullWeights, a);
        std::fill(p.a.begin(), p.a.end(), a);
        for (size_t i = 0; i < p.w.size(); ++i) p.w[i] = mixed && (i / 5) % 3 == 2 ? static_cast<int8_t>(-wv - 1) : wv;
        const std::vector<int32_t> want = naive(p);
        for (Isa isa : supported_isas())
          EXPECT_EQ(run<int32_t>(p, isa, {}, 7), want) << isa_name(isa) << " a=" << int{a} << " w=" << int{wv};
      }
  const Problem p = random_problem(2, 8, 3, 0, 1);
  EXPECT_THROW(PackedWeights(p.w.data(), p.n, p.k, Isa::Ref, 6), std::invalid_argument);
}

TEST(Qgemm, LargestK) {
  for (int8_t wv : {int8_t{-128}, int8_t{-kNarrowWeightMax}}) {  // the int16 and the narrow kernels
    Problem p = random_problem(3, 65536, 17, 0, 3);
    std::fill(p.a.begin(), p.a.end(), uint8_t{255});
    std::fill(p.w.begin(), p.w.end(), wv);
    const std::vector<int32_t> want = naive(p);
    for (Isa isa : supported_isas()) {
      EXPECT_EQ(run<int32_t>(p, isa), want) << isa_name(isa) << " w=" << int{wv};
      // packed for 7-bit activations: the AVX2 split chain at its largest sums
      EXPECT_EQ(run<int32_t>(p, isa, {}, 7), want) << isa_name(isa) << " w=" << int{wv} << " packed for 7 bits";
    }
  }
  std::vector<int8_t> w(65537);
  EXPECT_THROW(PackedWeights(w.data(), 1, 65537, Isa::Ref), std::invalid_argument);
  EXPECT_THROW(PackedWeights(w.data(), 0, 4, Isa::Ref), std::invalid_argument);
}

// The AMX path's own boundaries: activation panels of ~256 KB (K = 768: 336
// rows, so 700 rows take three chunks, the last ending in a tile padded with
// zero rows),
// K padded to whole 64-byte tile steps (65, 4100), k groups padded to 16 in
// the packed weights, and the longest K with whole tiles. (Every shape here is
// one AMX takes: >= 16 rows, >= 32 columns, >= 64 k.)
TEST(Qgemm, TileRowsPanelsAndKPaddingAreExact) {
  int idx = 0;
  for (auto [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{16, 64, 64}, {32, 65, 40}, {48, 4100, 70},
                         {700, 768, 100}, {33, 65536, 33}}) {
    const int32_t zp = idx % 2 ? 255 : 3;
    Problem p = random_problem(m, k, n, zp, 300u + idx++);
    if (k == 65536) {  // the extreme sums: 255 x -128 over the whole K
      std::fill(p.a.begin(), p.a.end(), uint8_t{255});
      std::fill(p.w.begin(), p.w.end(), int8_t{-128});
      std::fill(p.zp.begin(), p.zp.end(), 0);
    }
    const std::vector<int32_t> want = naive(p);
    for (Isa isa : supported_isas()) ASSERT_EQ(run<int32_t>(p, isa), want) << label(isa, m, k, n, zp);
  }
}

// Float (with and without a bias, with and without a ReLU) and uint8
// outputs: whole 24-column blocks take the AVX2 epilogue's block form, the
// partial last block its per-row form; 7-bit activations take the paired
// kernel.
TEST(Qgemm, FloatAndUint8EpiloguesAreBitIdenticalAcrossPaths) {
  const auto bits = [](const std::vector<float>& v) {
    std::vector<uint32_t> b(v.size());
    std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
    return b;
  };
  for (int w_max : kWeightRanges)
    for (uint8_t a_max : {uint8_t{255}, uint8_t{kPairedActivationMax}})
      for (auto [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{1, 768, 768}, {33, 100, 31}, {8, 3, 5}}) {
        Problem p = random_problem(m, k, n, 0, static_cast<uint32_t>(m + k + n), w_max, a_max);
        std::mt19937 rng(5);
        std::uniform_real_distribution<float> pos(1e-4f, 1e-2f), any(-3.0f, 3.0f);
        std::vector<float> row_scale(m), col_scale(n), bias(n);
        for (int64_t i = 0; i < m; ++i) p.zp[i] = static_cast<int32_t>(rng() % (a_max + 1)), row_scale[i] = pos(rng);
        for (int64_t j = 0; j < n; ++j) col_scale[j] = pos(rng), bias[j] = any(rng);
        const std::vector<int32_t> acc = naive(p);
        const std::string what = label(Isa::Ref, m, k, n, 0, w_max) + " a_max=" + std::to_string(a_max);

        Epilogue ep;
        ep.row_scale = row_scale.data();
        ep.col_scale = col_scale.data();
        ep.bias = bias.data();
        ep.clamp_min = 0.0f;  // fused ReLU
        ep.output = Epilogue::Output::Float;
        const std::vector<float> want = run<float>(p, Isa::Ref, ep);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            const float v = static_cast<float>(acc[i * n + j]) * (row_scale[i] * col_scale[j]) + bias[j];
            ASSERT_EQ(want[i * n + j], v > 0.0f ? v : 0.0f) << what;
          }
        for (Isa isa : supported_isas()) EXPECT_EQ(run<float>(p, isa, ep), want) << isa_name(isa) << " " << what;

        // No bias and no clamp: the scaled product alone.
        ep.bias = nullptr;
        ep.clamp_min = -std::numeric_limits<float>::infinity();
        const std::vector<float> plain = run<float>(p, Isa::Ref, ep);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j)
            ASSERT_EQ(plain[i * n + j], static_cast<float>(acc[i * n + j]) * (row_scale[i] * col_scale[j])) << what;
        for (Isa isa : supported_isas()) EXPECT_EQ(bits(run<float>(p, isa, ep)), bits(plain)) << isa_name(isa) << " " << what;

        ep.output = Epilogue::Output::Uint8;
        ep.out_scale = 0.05f;
        ep.out_zero_point = 100;
        const std::vector<float> shared_scale(m, row_scale[0]);
        for (bool shared : {false, true}) {  // per-row activation qparams, or one set (static models)
          if (shared) std::fill(p.zp.begin(), p.zp.end(), p.zp[0]), ep.row_scale = shared_scale.data();
          for (const float* b : {static_cast<const float*>(bias.data()), static_cast<const float*>(nullptr)}) {
            ep.bias = b;
            const std::vector<uint8_t> want_q = run<uint8_t>(p, Isa::Ref, ep);
            for (Isa isa : supported_isas())
              EXPECT_EQ(run<uint8_t>(p, isa, ep), want_q) << isa_name(isa) << " " << what << (shared ? " shared" : "");
          }
        }
      }
}

// The fused GELU (Float output): the same bits on every path, NaN where the
// reference has NaN, over outputs across erf's clamp (|v| / sqrt(2) past
// 3.925), a ReLU-free clamp pair, non-finite biases, narrow and full
// weights, 8- and 7-bit activations (AVX2's paired kernel).
TEST(Qgemm, FusedGeluIsBitIdenticalAcrossPaths) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::isnan(a[i]) != std::isnan(b[i])) return false;
      if (!std::isnan(a[i]) && std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
    }
    return a.size() == b.size();
  };
  int cases = 0;
  for (int w_max : kWeightRanges)
    for (uint8_t a_max : {uint8_t{255}, uint8_t{kPairedActivationMax}})
      for (auto [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{1, 384, 1536}, {37, 100, 70}, {8, 3, 5}}) {
        Problem p = random_problem(m, k, n, 0, static_cast<uint32_t>(m * k + n), w_max, a_max);
        std::mt19937 rng(7);
        std::uniform_real_distribution<float> pos(1e-5f, 3e-4f), any(-12.0f, 12.0f);
        std::vector<float> row_scale(m), col_scale(n), bias(n);
        for (int64_t i = 0; i < m; ++i) p.zp[i] = static_cast<int32_t>(rng() % (a_max + 1)), row_scale[i] = pos(rng);
        for (int64_t j = 0; j < n; ++j) col_scale[j] = pos(rng), bias[j] = any(rng);
        if (n > 4) bias[1] = nan, bias[2] = inf, bias[3] = -inf, bias[4] = 1e30f;
        Epilogue ep;
        ep.output = Epilogue::Output::Float;
        ep.row_scale = row_scale.data();
        ep.col_scale = col_scale.data();
        ep.bias = bias.data();
        ep.gelu = true;
        const std::vector<float> want = run<float>(p, Isa::Ref, ep);
        for (Isa isa : supported_isas()) {
          EXPECT_TRUE(same(run<float>(p, isa, ep), want)) << label(isa, m, k, n, 0, w_max) << " a_max=" << int{a_max};
          ++cases;
        }
        ep.clamp_min = -1.0f;  // the clamps come first, then GELU
        ep.clamp_max = 2.0f;
        const std::vector<float> clamped = run<float>(p, Isa::Ref, ep);
        for (size_t i = 0; i < clamped.size(); ++i)
          if (!std::isnan(clamped[i])) ASSERT_LE(clamped[i], gelu::gelu_erf_one(2.0f));
        for (Isa isa : supported_isas()) EXPECT_TRUE(same(run<float>(p, isa, ep), clamped)) << isa_name(isa);
      }
  EXPECT_GE(cases, 12);
  Epilogue to_u8;
  to_u8.output = Epilogue::Output::Uint8;
  to_u8.gelu = true;
  const Problem p = random_problem(2, 8, 3, 0, 1);
  EXPECT_THROW(run<uint8_t>(p, Isa::Ref, to_u8), std::invalid_argument);
}

// gelu_erf against the exact function in double: within 1.2e-6 over
// [-10, 10] (docs/numerics.md), exactly x for large x and -0..-1e-6 for
// large negative x, NaN for NaN.
TEST(Qgemm, GeluErfIsWithinItsStatedBound) {
  double worst = 0.0;
  for (int i = -2000000; i <= 2000000; ++i) {
    const float x = static_cast<float>(i) * 5e-6f;
    const double exact = 0.5 * x * (1.0 + std::erf(static_cast<double>(x) / std::sqrt(2.0)));
    worst = std::max(worst, std::abs(static_cast<double>(gelu::gelu_erf_one(x)) - exact));
  }
  EXPECT_LE(worst, 1.2e-6);
  EXPECT_GT(worst, 0.0);  // an approximation: if this is 0, the reference is not what it claims
  for (float x : {20.0f, 1e4f, 3e38f}) EXPECT_EQ(gelu::gelu_erf_one(x), x);
  for (float x : {-20.0f, -1e4f}) {
    EXPECT_LE(gelu::gelu_erf_one(x), 0.0f);
    EXPECT_GE(gelu::gelu_erf_one(x), -1e-6f * -x);
  }
  EXPECT_TRUE(std::isnan(gelu::gelu_erf_one(std::numeric_limits<float>::quiet_NaN())));
}

// The uint8 epilogue over its corners: fused clamps inside, across and
// outside the output range, zero points at both ends, exact halves (ties),
// outputs far past [0, 255], and NaN / inf biases. Every path equals the
// reference byte for byte.
TEST(Qgemm, Uint8EpilogueClampsTiesAndNonFiniteBiasesMatchTheReference) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  Problem p = random_problem(45, 40, 37, 0, 3);  // 2 whole 16-row tiles and a rest
  for (auto& v : p.w) v = static_cast<int8_t>(v % 2);  // small sums, so many land in range
  std::vector<float> ones_m(p.m, 1.0f), ones_n(p.n, 1.0f), bias(p.n, 0.0f);
  bias[3] = nan;
  bias[5] = inf;
  bias[6] = -inf;
  bias[7] = 1e30f;
  const std::pair<float, float> clamps[] = {{-inf, inf}, {0.0f, inf}, {0.0f, 6.0f}, {-50.0f, 50.0f},
                                            {1e6f, inf}, {-inf, -1e6f}, {3.0f, 3.0f}};
  // Activation zero points per row, or one for all rows (a static model's,
  // which the vector paths' shared-row epilogue takes).
  for (bool shared : {false, true})
    for (auto [lo, hi] : clamps)
      for (int32_t zp : {0, 100, 255})
        for (float scale : {2.0f, 0.5f, 97.0f}) {  // 2: odd sums halve to ties; 0.5: most outputs clip
          for (int64_t i = 0; i < p.m; ++i) p.zp[i] = shared ? 77 : static_cast<int32_t>((i * 41) % 256);
          Epilogue ep;
          ep.output = Epilogue::Output::Uint8;
          ep.row_scale = ones_m.data();
          ep.col_scale = ones_n.data();
          ep.bias = bias.data();
          ep.clamp_min = lo;
          ep.clamp_max = hi;
          ep.out_scale = scale;
          ep.out_zero_point = zp;
          const std::vector<uint8_t> want = run<uint8_t>(p, Isa::Ref, ep);
          for (Isa isa : supported_isas())
            EXPECT_EQ(run<uint8_t>(p, isa, ep), want)
                << isa_name(isa) << " clamp [" << lo << ", " << hi << "] zp=" << zp << " scale=" << scale
                << (shared ? " shared" : " per-row") << " activation zero points";
        }
}

#if defined(__x86_64__) || defined(_M_X64)
// The AVX2 epilogue converts with the MXCSR's rounding when that is round to
// nearest even (the default) and rounds explicitly otherwise: a changed mode
// must not change its output.
TEST(Qgemm, Avx2EpilogueDoesNotDependOnTheMxcsrRoundingMode) {
  if (!cpu_supports(Isa::Avx2)) GTEST_SKIP() << "no AVX2";
  for (int w_max : kWeightRanges) {
    Problem p = random_problem(13, 40, 50, 77, 9, w_max);
    std::vector<float> row_scale(p.m, 1.0f), col_scale(p.n, 1.0f);
    Epilogue ep;
    ep.output = Epilogue::Output::Uint8;
    ep.row_scale = row_scale.data();
    ep.col_scale = col_scale.data();
    ep.out_scale = 2.0f;  // odd sums halve to ties
    ep.out_zero_point = 128;
    const std::vector<uint8_t> want = run<uint8_t>(p, Isa::Ref, ep);
    const unsigned int mxcsr = _mm_getcsr();
    for (unsigned int mode : {_MM_ROUND_DOWN, _MM_ROUND_UP, _MM_ROUND_TOWARD_ZERO}) {
      _mm_setcsr((mxcsr & ~_MM_ROUND_MASK) | mode);
      const std::vector<uint8_t> got = run<uint8_t>(p, Isa::Avx2, ep);
      _mm_setcsr(mxcsr);
      EXPECT_EQ(got, want) << "MXCSR rounding mode " << mode << " |w|<=" << w_max;
    }
  }
}
#endif

TEST(Qgemm, SubRangesComposeToTheWhole) {
  for (int w_max : kWeightRanges) {
    const Problem p = random_problem(50, 50, 200, 9, 11, w_max);
    for (Isa isa : supported_isas()) {
      const PackedWeights packed(p.w.data(), p.n, p.k, isa);
      std::vector<int32_t> c(p.m * p.n, -1);
      const GemmArgs args = dense_args(p, c.data());
      const int64_t mid_m = 20, mid_b = packed.num_blocks() / 2;  // AMX: tiles padded with zero rows
      qgemm(args, packed, {}, 0, mid_m, 0, mid_b);
      qgemm(args, packed, {}, mid_m, p.m, 0, mid_b);
      qgemm(args, packed, {}, 0, p.m, mid_b, packed.num_blocks());
      EXPECT_EQ(c, naive(p)) << isa_name(isa) << " |w|<=" << w_max;
    }
  }
}

// Implicit im2col: rows given by pointers into one buffer (overlapping, as a
// convolution's windows do), K split into runs at offsets; the result must
// equal the GEMM over the same rows written out. Layouts: 3 short runs; 9
// runs of 64 k groups and 3 of 300 (long im2col rows: runs that cross the
// AVX2 int16 kernel's 512-k weight panels).
TEST(Qgemm, RowPointersAndRunsEqualTheRowsWrittenOut) {
  struct Layout {
    int64_t run_bytes;
    std::vector<int64_t> offsets;
  };
  const Layout layouts[] = {{20, {0, 301, 750}},
                            {256, {0, 300, 600, 900, 1200, 1500, 1800, 2100, 2400}},
                            {1200, {0, 1500, 3100}}};
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> u8(0, 255);
  std::vector<uint8_t> image(8192);
  for (const Layout& layout : layouts) {
    const int64_t runs = static_cast<int64_t>(layout.offsets.size());
    for (int64_t m : {1, 7, 23, 100, 5, 22}) {
      for (auto& v : image) v = static_cast<uint8_t>(u8(rng));
      const uint8_t a_max = m < 5 || m > 23 ? 255 : 127;  // runs of 5 groups: one left over when paired
      if (a_max == 127) std::transform(image.begin(), image.end(), image.begin(), [](uint8_t v) { return v / 2; });
      for (int32_t zp : {0, 77, int32_t{a_max}}) {
        const int w_max = kWeightRanges[m % 2];  // (m = 100: full range; the others narrow)
        Problem p = random_problem(m, runs * layout.run_bytes, 70, zp, static_cast<uint32_t>(m + zp), w_max);
        std::vector<const uint8_t*> rows(m);
        for (int64_t r = 0; r < m; ++r) {
          rows[r] = image.data() + 6 * r + (r % 3);
          for (int64_t s = 0; s < runs; ++s)
            std::copy_n(rows[r] + layout.offsets[s], layout.run_bytes, p.a.begin() + r * p.k + s * layout.run_bytes);
        }
        for (Isa isa : supported_isas()) {
          const PackedWeights packed(p.w.data(), p.n, p.k, isa);
          std::vector<int32_t> c(p.m * p.n);
          GemmArgs args;
          args.a_rows = rows.data();
          args.a_segment_offsets = layout.offsets.data();
          args.a_segments = runs;
          args.a_zero_point = p.zp.data();
          args.a_max = a_max;
          args.c = c.data();
          args.ldc = p.n;
          qgemm(args, packed, {}, 0, p.m, 0, packed.num_blocks());
          EXPECT_EQ(c, naive(p)) << label(isa, m, p.k, p.n, zp, w_max) << " a<=" << int{a_max} << " runs=" << runs;
        }
      }
    }
  }
  // Runs that are not whole 4-byte groups are refused.
  const Problem p = random_problem(2, 60, 8, 0, 1);
  std::vector<const uint8_t*> rows{image.data(), image.data() + 7};
  const std::vector<int64_t> offsets{0, 100};
  for (Isa isa : supported_isas()) {
    const PackedWeights packed(p.w.data(), p.n, p.k, isa);
    std::vector<int32_t> c(p.m * p.n);
    GemmArgs args;
    args.a_rows = rows.data();
    args.a_segment_offsets = offsets.data();
    args.a_segments = 2;  // runs of 30 bytes
    args.a_zero_point = p.zp.data();
    args.c = c.data();
    args.ldc = p.n;
    EXPECT_THROW(qgemm(args, packed, {}, 0, p.m, 0, packed.num_blocks()), std::invalid_argument) << isa_name(isa);
  }
}

TEST(Qgemm, UnpackRestoresTheWeights) {
  for (int w_max : kWeightRanges) {
    const Problem p = random_problem(1, 101, 77, 0, 2, w_max);
    for (Isa isa : supported_isas()) {
      const PackedWeights packed(p.w.data(), p.n, p.k, isa);
      std::vector<int8_t> back(p.w.size());
      packed.unpack(back.data());
      EXPECT_EQ(back, p.w) << isa_name(isa) << " |w|<=" << w_max;
    }
  }
}

TEST(Qgemm, ForcingAnIsaByName) {
  EXPECT_EQ(isa_from_name("avx2"), Isa::Avx2);
  EXPECT_THROW(isa_from_name("sse9"), std::invalid_argument);
  for (Isa isa : supported_isas()) {
    set_active_isa(isa);
    EXPECT_EQ(active_isa(), isa);
  }
}
