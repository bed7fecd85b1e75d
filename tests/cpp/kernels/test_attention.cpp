// The attention kernel of every path against the reference path bit for bit
// (the same IEEE operations per lane), and against attention computed in
// double precision within a stated bound, over awkward sizes, strides,
// masks (broadcast, -inf entries, fully masked rows), causal masking and
// non-finite scores.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/attention.h"

using namespace qext::kernels;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

struct Problem {
  int64_t batch, heads, l, s, e, ev;
  enum { None, Row, Full } mask;  // a mask broadcast over heads and rows, or one per (batch, head, row)
  bool causal;
  int64_t pad;  // extra floats between rows: strided q, k, v
  std::vector<float> q, k, v, mask_values;

  AttentionArgs args() const {
    AttentionArgs a;
    a.batch = batch, a.heads = heads, a.l = l, a.s = s, a.e = e, a.ev = ev;
    a.q = q.data(), a.q_row = e + pad, a.q_head = l * a.q_row, a.q_batch = heads * a.q_head;
    a.k = k.data(), a.k_row = e + pad, a.k_head = s * a.k_row, a.k_batch = heads * a.k_head;
    a.v = v.data(), a.v_row = ev + pad, a.v_head = s * a.v_row, a.v_batch = heads * a.v_head;
    if (mask == Row) a.mask = mask_values.data(), a.mask_batch = s, a.mask_col = 1;
    if (mask == Full) {
      a.mask = mask_values.data(), a.mask_col = 1, a.mask_row = s, a.mask_head = l * s, a.mask_batch = heads * l * s;
    }
    a.causal = causal;
    a.scale = 1.0f / std::sqrt(static_cast<float>(e));
    return a;
  }
};

Problem make(int64_t batch, int64_t heads, int64_t l, int64_t s, int64_t e, int64_t ev, decltype(Problem::mask) mask,
             bool causal, int64_t pad, uint32_t seed) {
  Problem p{batch, heads, l, s, e, ev, mask, causal, pad, {}, {}, {}, {}};
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.0f, 1.5f);
  p.q.resize(batch * heads * l * (e + pad));
  p.k.resize(batch * heads * s * (e + pad));
  p.v.resize(batch * heads * s * (ev + pad));
  for (auto* t : {&p.q, &p.k, &p.v})
    for (float& x : *t) x = n(g);
  const int64_t mask_size = mask == Problem::Row ? batch * s : mask == Problem::Full ? batch * heads * l * s : 0;
  p.mask_values.resize(mask_size);
  for (float& x : p.mask_values) x = g() % 5 == 0 ? -kInf : n(g);
  if (mask == Problem::Full && l > 1) {  // a fully masked row: zeros out
    for (int64_t j = 0; j < s; ++j) p.mask_values[1 * s + j] = -kInf;
  }
  return p;
}

std::vector<float> run(const Problem& p, Isa isa) {
  AttentionArgs a = p.args();
  std::vector<float> out(p.batch * p.heads * p.l * p.ev, -1.0f);
  a.out = out.data();
  const int64_t items = attention_items(a);
  // in two calls, as two threads would
  attention_f32(a, 0, items / 2, isa);
  attention_f32(a, items / 2, items, isa);
  return out;
}

// softmax(q k^T * scale + mask) v in double; fully masked rows give 0.
std::vector<double> exact(const Problem& p) {
  const AttentionArgs a = p.args();
  std::vector<double> out(p.batch * p.heads * p.l * p.ev, 0.0);
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t h = 0; h < p.heads; ++h)
      for (int64_t i = 0; i < p.l; ++i) {
        std::vector<double> w(p.s);
        double m = -INFINITY;
        for (int64_t j = 0; j < p.s; ++j) {
          double d = 0.0;
          for (int64_t e = 0; e < p.e; ++e)
            d += double{a.q[b * a.q_batch + h * a.q_head + i * a.q_row + e]} * a.k[b * a.k_batch + h * a.k_head + j * a.k_row + e];
          d *= a.scale;
          if (a.mask) d += a.mask[b * a.mask_batch + h * a.mask_head + i * a.mask_row + j * a.mask_col];
          if (p.causal && j > i) d = -INFINITY;
          w[j] = d;
          m = std::max(m, d);
        }
        if (m == -INFINITY) continue;
        double total = 0.0;
        for (double& x : w) total += x = std::exp(x - m);
        for (int64_t c = 0; c < p.ev; ++c) {
          double o = 0.0;
          for (int64_t j = 0; j < p.s; ++j) o += w[j] * a.v[b * a.v_batch + h * a.v_head + j * a.v_row + c];
          out[((b * p.heads + h) * p.l + i) * p.ev + c] = o / total;
        }
      }
  return out;
}

}  // namespace

TEST(AttentionKernel, EveryPathMatchesTheReferenceBitForBit) {
  // Sizes around the 8 lanes and 16-key tiles, the 6-row tiles and the 128-row items,
  // with and without strides, masks and causal masking; MiniLM's heads.
  const Problem problems[] = {
      make(1, 1, 1, 1, 1, 1, Problem::None, false, 0, 1),    make(2, 3, 5, 7, 3, 9, Problem::Row, false, 1, 2),
      make(1, 2, 9, 17, 33, 17, Problem::Full, false, 0, 3), make(2, 1, 13, 13, 8, 16, Problem::None, true, 3, 4),
      make(1, 4, 130, 24, 16, 8, Problem::Row, false, 0, 5), make(1, 1, 33, 130, 64, 40, Problem::Full, false, 2, 6),
      make(3, 2, 6, 25, 7, 3, Problem::Full, true, 0, 7),    make(1, 2, 200, 9, 5, 31, Problem::None, true, 1, 8),
      make(2, 2, 20, 32, 32, 32, Problem::Row, false, 0, 9), make(1, 3, 7, 48, 12, 33, Problem::Full, true, 1, 10),
      make(1, 1, 12, 16, 16, 48, Problem::None, false, 0, 11), make(1, 2, 128, 128, 32, 32, Problem::Row, false, 0, 12),
  };
  for (const Problem& p : problems) {
    const std::vector<float> want = run(p, Isa::Ref);
    for (Isa isa : supported_isas()) {
      const std::vector<float> got = run(p, isa);
      ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
          << isa_name(isa) << " differs from the reference: l " << p.l << " s " << p.s << " e " << p.e << " ev " << p.ev;
    }
  }
}

TEST(AttentionKernel, IsWithinItsBoundOfExactAttention) {
  // float accumulation over at most 130 terms of magnitude ~1: 1e-5 of the
  // largest value is far above its rounding and far below a wrong softmax
  const Problem problems[] = {
      make(2, 3, 5, 7, 3, 9, Problem::Row, false, 1, 11), make(1, 2, 9, 130, 33, 17, Problem::Full, false, 0, 12),
      make(2, 1, 40, 40, 64, 16, Problem::None, true, 3, 13)};
  for (const Problem& p : problems) {
    const std::vector<double> want = exact(p);
    const std::vector<float> got = run(p, active_isa());
    double largest = 0.0, worst = 0.0;
    for (size_t i = 0; i < want.size(); ++i) {
      largest = std::max(largest, std::abs(want[i]));
      worst = std::max(worst, std::abs(want[i] - got[i]));
    }
    EXPECT_LE(worst, 1e-5 * largest) << "l " << p.l << " s " << p.s;
  }
}

TEST(AttentionKernel, FullyMaskedRowsAreZeroAndNonFiniteScoresNaN) {
  Problem p = make(1, 1, 3, 5, 4, 6, Problem::Full, false, 0, 21);  // row 1 fully masked
  p.q[2 * 4] = std::numeric_limits<float>::quiet_NaN();                // row 2's scores NaN
  for (Isa isa : supported_isas()) {
    const std::vector<float> out = run(p, isa);
    for (int64_t c = 0; c < 6; ++c) {
      EXPECT_TRUE(std::isfinite(out[c])) << isa_name(isa);
      EXPECT_EQ(out[6 + c], 0.0f) << isa_name(isa);
      EXPECT_TRUE(std::isnan(out[12 + c])) << isa_name(isa);
    }
  }
}
