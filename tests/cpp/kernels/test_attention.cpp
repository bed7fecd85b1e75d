// The attention kernel of every path against the reference path bit for bit
// (the same IEEE operations per lane), and against attention computed in
// double precision within a stated bound, over awkward sizes, strides,
// masks (broadcast, -inf entries, fully masked rows), causal masking and
// non-finite scores; and skipping dead keys (padding masks, causal masking)
// against computing them, bit for bit, including where it must not skip.
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

std::vector<float> run(const Problem& p, Isa isa, bool skip_dead_keys = true) {
  AttentionArgs a = p.args();
  a.skip_dead_keys = skip_dead_keys;
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

namespace {

constexpr float kFloatMin = -std::numeric_limits<float>::max();  // Hugging Face's padding mask value

// Keys [first, last) of every row padded with `value` (a Row mask: one per
// batch element, shared by every head and row).
void pad_keys(Problem& p, int64_t first, int64_t last, float value) {
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t j = first; j < last; ++j) p.mask_values[b * p.s + j] = value;
}

void expect_skipping_changes_nothing(const Problem& p, const char* what) {
  const std::vector<float> reference = run(p, Isa::Ref, false);
  for (Isa isa : supported_isas()) {
    const std::vector<float> computed = run(p, isa, false), skipped = run(p, isa, true);
    EXPECT_EQ(0, std::memcmp(computed.data(), skipped.data(), computed.size() * sizeof(float)))
        << what << ": " << isa_name(isa) << " differs when it skips dead keys";
    EXPECT_EQ(0, std::memcmp(reference.data(), skipped.data(), reference.size() * sizeof(float)))
        << what << ": " << isa_name(isa) << " differs from the reference";
  }
}

}  // namespace

TEST(AttentionKernel, SkippingDeadKeysGivesTheSameBitsAsComputingThem) {
  // Padded keys [first, last) of a Row mask, with -inf and finfo.min: right
  // padding (MiniLM's batches: a third of the keys real), left padding, a
  // gap, tails around the 8-key vectors, and every key padded (finfo.min:
  // uniform weights, not zeros, so every key counts).
  struct Padded {
    Problem p;
    int64_t first, last;
    const char* what;
  };
  for (float pad : {kFloatMin, -kInf}) {
    Padded cases[] = {{make(2, 3, 40, 128, 32, 32, Problem::Row, false, 0, 31), 43, 128, "right padding"},
                      {make(1, 2, 13, 37, 16, 24, Problem::Row, false, 1, 32), 0, 21, "left padding"},
                      {make(1, 1, 20, 64, 8, 8, Problem::Row, false, 0, 33), 8, 40, "a gap"},
                      {make(2, 1, 7, 19, 8, 8, Problem::Row, false, 0, 34), 0, 19, "every key padded"}};
    for (Padded& c : cases) {
      pad_keys(c.p, c.first, c.last, pad);
      expect_skipping_changes_nothing(c.p, c.what);
    }
  }
  // Causal masking, alone and with padding; a mask per row, its padding
  // differing between rows (some rows fully padded).
  expect_skipping_changes_nothing(make(2, 2, 70, 70, 16, 16, Problem::None, true, 0, 35), "causal");
  Problem causal_padded = make(1, 2, 50, 50, 16, 8, Problem::Row, true, 0, 36);
  pad_keys(causal_padded, 30, 50, kFloatMin);
  expect_skipping_changes_nothing(causal_padded, "causal and padding");
  Problem per_row = make(1, 2, 30, 45, 8, 8, Problem::Full, false, 0, 37);
  for (int64_t row = 0; row < 2 * 30; ++row)
    for (int64_t j = (row * 7) % 45; j < 45; ++j) per_row.mask_values[row * 45 + j] = kFloatMin;
  expect_skipping_changes_nothing(per_row, "padding per row");
}

TEST(AttentionKernel, SkippingDeadKeysChangesNothingOnRandomProblems) {
  // Random sizes; masks with a run of padding (finfo.min or -inf) anywhere in
  // each batch element's or row's keys, a quarter of them padded whole;
  // causal masking; one query row scaled by up to 1e38 (products past the
  // 2^90 bound, or infinite); an infinite value now and then.
  std::mt19937 g(51);
  const auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(g); };
  for (int trial = 0; trial < 200; ++trial) {
    const auto kind = trial % 3 == 0 ? Problem::Full : Problem::Row;
    const int64_t s = pick(1, 70), e = pick(1, 40);
    Problem p = make(pick(1, 2), pick(1, 3), pick(1, 20), s, e, pick(1, 20), kind, trial % 4 == 1, pick(0, 2),
                     100 + trial);
    const float pad = trial % 2 ? kFloatMin : -kInf;
    for (size_t r = 0; r * s < p.mask_values.size(); ++r) {
      const bool whole = pick(0, 3) == 0;
      const int64_t first = whole ? 0 : pick(0, s), last = whole ? s : pick(first, s);
      for (int64_t j = first; j < last; ++j) p.mask_values[r * s + j] = pad;
    }
    const int64_t q_rows = static_cast<int64_t>(p.q.size()) / (e + p.pad), row = pick(0, q_rows - 1);
    const float scale = std::pow(10.0f, static_cast<float>(pick(0, 38)));
    for (int64_t c = 0; c < e; ++c) p.q[row * (e + p.pad) + c] *= scale;
    if (pick(0, 2) == 0) p.v[pick(0, static_cast<int64_t>(p.v.size()) - 1)] = kInf;
    expect_skipping_changes_nothing(p, "a random problem");
  }
}

TEST(AttentionKernel, DeadKeysAreComputedWhereTheirScoresAreNotTheirMaskValues) {
  // Products too large to vanish beside finfo.min (|q k| ~ 2^120 > half its
  // ulp, 2^103), or overflowing to inf (NaN rows), or NaN: the padded keys'
  // scores are not their mask values, so they are computed.
  for (float q_scale : {1e36f, 1e38f, std::numeric_limits<float>::quiet_NaN()}) {
    Problem p = make(1, 2, 9, 40, 8, 8, Problem::Row, false, 0, 41);
    pad_keys(p, 20, 40, kFloatMin);
    p.q[3] *= q_scale;
    expect_skipping_changes_nothing(p, "large products");
  }
  Problem nan_key = make(1, 1, 9, 40, 8, 8, Problem::Row, false, 0, 42);
  pad_keys(nan_key, 20, 40, kFloatMin);
  nan_key.k[30 * 8 + 2] = std::numeric_limits<float>::quiet_NaN();  // a padded key's NaN makes every row NaN
  expect_skipping_changes_nothing(nan_key, "a NaN key");
  // An infinite value at a padded key: 0 * inf is NaN, so its term counts.
  Problem inf_value = make(1, 1, 9, 40, 8, 8, Problem::Row, false, 0, 43);
  pad_keys(inf_value, 20, 40, kFloatMin);
  inf_value.v[35 * 8 + 1] = kInf;
  expect_skipping_changes_nothing(inf_value, "an infinite value");
  // Mask values above -2^126 are added to the products as usual: -1e30
  // (ulp 2^76) on every key, beside products ~1e25 (bounded, < 2^90, but
  // they change it): the weights follow the products, not uniform ones.
  Problem shallow = make(1, 1, 9, 40, 8, 8, Problem::Row, false, 0, 44);
  pad_keys(shallow, 0, 40, -1e30f);
  for (int64_t e = 0; e < 8; ++e) shallow.q[2 * 8 + e] *= 1e24f;
  expect_skipping_changes_nothing(shallow, "a shallow mask");
}
