// The attention kernel, written once over an 8-lane float vector type `V`
// (kernels/attention.h states the rule). Included by one file per path with
// its V:
//   V::T                          the vector
//   zero(), splat(f)
//   load(p), load_n(p, n)         8 floats; the first n (1..8), zeros after
//   store(p, x), store_n(p, x, n)
//   fma(a, b, c) = a * b + c rounded once; mul, add, sub, div
//   max(a, b) = a > b ? a : b, lane by lane
//   mask_from(x, first, limit)    lane l: first + l < limit ? x : -inf
//   zero_below(x, t, y)           lane l: x < t ? 0 : y
//   pow2i(n)                      2^n for integral n in [-126, 127]
//   any_nan(x)
//   abs(x)                        |x|, lane by lane
//   hsum(x), hmax(x)              lanes (l, l + 4), then (l, l + 2), then (0, 1)
//   transpose8(src, ss, dst, ds)  dst[i * ds + j] = src[j * ss + i], i, j < 8
// Nothing here depends on the path: the tiling only decides which rows and
// lanes are computed together, never the order of any lane's operations.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/attention.h"

namespace qext::kernels::detail {

namespace attention {

constexpr int kLanes = 8;
constexpr int kTileRows = 6;
constexpr float kExpMin = -87.0f;  // exp below is 0 here (softmax weights < 2^-125)
constexpr float kLog2e = 1.44269504f;
// ln 2 split so that n * kLn2Hi is exact for |n| < 2^9 (Cody and Waite).
constexpr float kLn2Hi = 0.693145751953125f;
constexpr float kLn2Lo = 1.42860677e-6f;
constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: (v + it) - it rounds v to an integer

// Dead keys (see dead_vectors): a mask value at most kDeadMask (-inf, or
// Hugging Face's finfo(float32).min) is the whole score when every
// |q k * scale| of the tile's rows is at most kProductBound: its half ulp
// (>= 2^102) swallows the product in round-to-nearest.
constexpr float kDeadMask = -0x1p126f;
constexpr double kProductBound = 0x1p90;
// A row whose maximum is at least this gives its dead keys weight 0 exactly:
// exp(score - max) <= exp(-2^125), below kExpMin.
constexpr float kLiveMaxFloor = -0x1p125f;

// exp(x) for x <= 0 (a score minus its row's maximum): 2^n * P(r), n the
// nearest integer to x / ln 2, r = x - n ln 2 in [-ln2 / 2, ln2 / 2], P the
// degree-6 Taylor polynomial (relative error < 1.2e-7 there); 0 below kExpMin.
// Always inlined: GCC otherwise calls it once per 8 weights.
template <class V>
__attribute__((always_inline)) inline typename V::T exp_nonpositive(typename V::T x) {
  const auto xc = V::max(x, V::splat(kExpMin));  // -inf -> kExpMin, replaced by 0 below
  const auto n = V::sub(V::add(V::mul(xc, V::splat(kLog2e)), V::splat(kRoundMagic)), V::splat(kRoundMagic));
  auto r = V::fma(n, V::splat(-kLn2Hi), xc);
  r = V::fma(n, V::splat(-kLn2Lo), r);
  auto p = V::splat(1.0f / 720.0f);
  p = V::fma(p, r, V::splat(1.0f / 120.0f));
  p = V::fma(p, r, V::splat(1.0f / 24.0f));
  p = V::fma(p, r, V::splat(1.0f / 6.0f));
  p = V::fma(p, r, V::splat(0.5f));
  p = V::fma(p, r, V::splat(1.0f));
  p = V::fma(p, r, V::splat(1.0f));
  return V::zero_below(x, kExpMin, V::mul(p, V::pow2i(n)));
}

enum class RowState { Normal, AllMasked, Nan };

// Query row i's keys end here: past S, or past i when causal (their scores
// are -inf).
inline int64_t key_limit(const AttentionArgs& a, int64_t i) { return a.causal ? std::min(a.s, i + 1) : a.s; }

// acc[r][x] = the q k dot products of R rows with the NV * 8 keys at kt + j0.
// Fixed counts, so the accumulators stay in registers.
template <class V, int R, int NV>
void dot_keys(const AttentionArgs& a, const float* const* q, const float* kt, int64_t s_pad, int64_t j0,
              typename V::T (&acc)[R][NV]) {
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int x = 0; x < NV; ++x) acc[r][x] = V::zero();
  for (int64_t e = 0; e < a.e; ++e) {
    const float* kr = kt + e * s_pad + j0;
    typename V::T kx[NV];
#pragma GCC unroll 3
    for (int x = 0; x < NV; ++x) kx[x] = V::load(kr + x * kLanes);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const auto qb = V::splat(q[r][e]);
#pragma GCC unroll 3
      for (int x = 0; x < NV; ++x) acc[r][x] = V::fma(qb, kx[x], acc[r][x]);
    }
  }
}

// Scores of rows [i0, i0 + R) for the NV * 8 keys from j0: scaled, masked,
// stored to scores[r * s_pad + j].
template <class V, int R, int NV>
void score_keys(const AttentionArgs& a, const float* const* q, const float* kt, const float* const* mask,
                int64_t i0, int64_t s_pad, int64_t j0, float* scores) {
  typename V::T acc[R][NV];
  dot_keys<V, R, NV>(a, q, kt, s_pad, j0, acc);
  const auto scale = V::splat(a.scale);
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    const int64_t limit = key_limit(a, i0 + r);
#pragma GCC unroll 3
    for (int x = 0; x < NV; ++x) {
      const int64_t j = j0 + x * kLanes;
      auto s = V::mul(acc[r][x], scale);
      if (mask[r] && j < a.s) {
        const float* m = mask[r] + j * a.mask_col;
        s = V::add(s, !a.mask_col          ? V::splat(*m)
                      : j + kLanes <= a.s ? V::load(m)
                                          : V::load_n(m, a.s - j));
      }
      V::store(scores + r * s_pad + j, V::mask_from(s, j, limit));
    }
  }
}

// A row's scores at its tile's dead vectors (dead_vectors), known without
// their products: each is its mask value (row_mask: the row's), or -inf
// where causal or past S (limit), as score_keys would compute it. Written only
// when the softmax needs them (softmax_row).
template <class V>
void dead_row_scores(const AttentionArgs& a, const float* row_mask, int64_t limit, int64_t s_pad,
                     const uint8_t* dead, float* row) {
  for (int64_t j0 = 0; j0 < s_pad; j0 += kLanes) {
    if (!dead[j0 / kLanes]) continue;
    auto s = V::splat(-std::numeric_limits<float>::infinity());
    if (row_mask && j0 < a.s) {
      const float* m = row_mask + j0 * a.mask_col;
      s = !a.mask_col ? V::splat(*m) : j0 + kLanes <= a.s ? V::load(m) : V::load_n(m, a.s - j0);
    }
    V::store(row + j0, V::mask_from(s, j0, limit));
  }
}

// Scores of rows [i0, i0 + R) against every key: scores[r * s_pad + j].
// Key vectors marked in `dead` (if not null) are skipped: nothing is written
// there (dead_row_scores).
template <class V, int R>
void score_rows(const AttentionArgs& a, const float* const* q, const float* kt, const float* const* mask,
                int64_t i0, int64_t s_pad, const uint8_t* dead, float* scores) {
  int64_t j0 = 0;
  for (; j0 + 2 * kLanes <= s_pad; j0 += 2 * kLanes) {
    const bool dead0 = dead && dead[j0 / kLanes], dead1 = dead && dead[j0 / kLanes + 1];
    if (!dead0 && !dead1) score_keys<V, R, 2>(a, q, kt, mask, i0, s_pad, j0, scores);
    else if (!dead0) score_keys<V, R, 1>(a, q, kt, mask, i0, s_pad, j0, scores);
    else if (!dead1) score_keys<V, R, 1>(a, q, kt, mask, i0, s_pad, j0 + kLanes, scores);
  }
  if (s_pad - j0 == kLanes && !(dead && dead[j0 / kLanes])) score_keys<V, R, 1>(a, q, kt, mask, i0, s_pad, j0, scores);
}

// Row r of `scores` -> exp(s - max) in place; returns the state and the sum.
// When the live vectors' maximum is at least kLiveMaxFloor it is the row's
// (dead scores are below it, and never NaN or +inf), and the dead vectors'
// weights are 0: they are stored as zeros, without their scores or exps,
// and left out of the sum (adding +0 to it changes nothing). *dead_zero says
// so. Otherwise fill_dead() writes the dead scores first, and every key
// counts.
template <class V, class FillDead>
RowState softmax_row(float* row, int64_t s_pad, const uint8_t* dead, FillDead fill_dead, float* total,
                     bool* dead_zero) {
  const auto max_of = [&](const uint8_t* skip, bool* nan) {
    auto mx = V::splat(-std::numeric_limits<float>::infinity());
    for (int64_t j = 0; j < s_pad; j += kLanes) {
      if (skip && skip[j / kLanes]) continue;
      const auto s = V::load(row + j);
      *nan = *nan || V::any_nan(s);
      mx = V::max(s, mx);
    }
    return V::hmax(mx);
  };
  bool nan = false;
  float m = max_of(dead, &nan);
  const uint8_t* zero = m >= kLiveMaxFloor ? dead : nullptr;  // the vectors whose weights are 0
  if (dead && !zero) {
    fill_dead();
    m = max_of(nullptr, &nan);
  }
  *dead_zero = zero != nullptr;
  if (nan || m == std::numeric_limits<float>::infinity()) return RowState::Nan;
  if (m == -std::numeric_limits<float>::infinity()) return RowState::AllMasked;
  const auto mv = V::splat(m);
  const auto weight = [&](int64_t j) { return exp_nonpositive<V>(V::sub(V::load(row + j), mv)); };
  const auto skip = [&](int64_t j) {
    if (!zero || !zero[j / kLanes]) return false;
    V::store(row + j, V::zero());
    return true;
  };
  auto sum = V::zero();
  int64_t j = 0;
  for (; j + 2 * kLanes <= s_pad; j += 2 * kLanes) {
    const bool skip0 = skip(j), skip1 = skip(j + kLanes);
    if (!skip0 && !skip1) {  // two exps in flight
      const auto p0 = weight(j), p1 = weight(j + kLanes);
      V::store(row + j, p0);
      V::store(row + j + kLanes, p1);
      sum = V::add(V::add(sum, p0), p1);
    } else if (!skip0 || !skip1) {
      const int64_t at = skip0 ? j + kLanes : j;
      const auto p = weight(at);
      V::store(row + at, p);
      sum = V::add(sum, p);
    }
  }
  if (j < s_pad && !skip(j)) {
    const auto p = weight(j);
    V::store(row + j, p);
    sum = V::add(sum, p);
  }
  *total = V::hsum(sum);
  return RowState::Normal;
}

// out rows [i0, i0 + R) (those not null) = p v / total, for the `cols` value
// columns from c0 (NV vectors; the last one partial when cols < NV * 8); v is
// the head's values packed [S][Ev]. Keys outside [j_begin, j_end) have
// weight 0 in every row and finite values: their terms would add +0 (the
// sums start at +0 and never become -0), so they are left out.
template <class V, int R, int NV>
void weigh_columns(const AttentionArgs& a, const float* v, const float* scores, int64_t s_pad, const float* total,
                   float* const* out, int64_t c0, int64_t cols, int64_t j_begin, int64_t j_end) {
  typename V::T acc[R][NV];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int x = 0; x < NV; ++x) acc[r][x] = V::zero();
  const int64_t last = cols - (NV - 1) * kLanes;  // lanes of the last vector
  for (int64_t j = j_begin; j < j_end; ++j) {
    const float* vr = v + j * a.ev + c0;
    typename V::T vx[NV];
#pragma GCC unroll 2
    for (int x = 0; x < NV; ++x) vx[x] = x + 1 < NV || last == kLanes ? V::load(vr + x * kLanes) : V::load_n(vr + x * kLanes, last);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const auto pb = V::splat(scores[r * s_pad + j]);
#pragma GCC unroll 2
      for (int x = 0; x < NV; ++x) acc[r][x] = V::fma(pb, vx[x], acc[r][x]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    if (!out[r]) continue;
    const auto t = V::splat(total[r]);
#pragma GCC unroll 2
    for (int x = 0; x < NV; ++x) V::store_n(out[r] + c0 + x * kLanes, V::div(acc[r][x], t), x + 1 < NV ? kLanes : last);
  }
}

template <class V, int R>
void weigh_values(const AttentionArgs& a, const float* v, const float* scores, int64_t s_pad, const float* total,
                  float* const* out, int64_t j_begin, int64_t j_end) {
  constexpr int kVecs = 2;
  int64_t c0 = 0;
  for (; c0 + kVecs * kLanes <= a.ev; c0 += kVecs * kLanes)
    weigh_columns<V, R, kVecs>(a, v, scores, s_pad, total, out, c0, kVecs * kLanes, j_begin, j_end);
  const int64_t rest = a.ev - c0;
  if (rest > kLanes) weigh_columns<V, R, 2>(a, v, scores, s_pad, total, out, c0, rest, j_begin, j_end);
  else if (rest > 0) weigh_columns<V, R, 1>(a, v, scores, s_pad, total, out, c0, rest, j_begin, j_end);
}

// What skipping a head's dead keys needs to know of its packed K and V (made
// when a tile first has padded keys): the largest |k| (+inf when one is not
// finite), and whether every value is finite. With a tile's largest |q| it
// bounds the tile's |q k * scale|.
struct HeadFacts {
  bool known = false;
  float k_max = 0.0f;
  bool values_finite = false;
};

// The per-call scratch of dead_vectors: the tile's marks, and the last mask
// row's (rows usually share one: a padding mask broadcast over rows and
// heads).
struct DeadKeys {
  std::vector<uint8_t> tile, mask_row;
  const float* mask_row_of = nullptr;
  bool mask_row_any = false;
};

// Marks the key vectors of rows [i0, i0 + rows) whose scores need no
// products ("dead"): in every row each of the vector's keys is causal-masked
// or past S (-inf whatever the product), or, when the tile's products are
// bounded (`bounded()`, asked only when a mask value could make a key dead),
// has a mask value at most kDeadMask (the score is the mask value). Returns
// the marks (s_pad / 8 bytes), or nullptr when none is dead.
template <class Bounded>
const uint8_t* dead_vectors(const AttentionArgs& a, const float* const* mask, int rows, int64_t i0, int64_t s_pad,
                            Bounded bounded, DeadKeys& d) {
  if (!a.skip_dead_keys || (!a.mask && !a.causal)) return nullptr;
  const int64_t vecs = s_pad / kLanes;
  // (Hugging Face materialises its padding mask per row: rows are compared
  // by content, not by address.)
  const int64_t row_floats = a.mask_col ? a.s : 1;
  const auto same_row = [&](const float* x, const float* y) {
    return x == y || std::memcmp(x, y, static_cast<size_t>(row_floats) * sizeof(float)) == 0;
  };
  const auto mark_mask_row = [&](const float* row) {
    if (d.mask_row_of && same_row(row, d.mask_row_of)) return;
    d.mask_row_any = false;
    for (int64_t v = 0; v < vecs; ++v) {
      bool masked = true;
      for (int64_t j = v * kLanes; masked && j < std::min(a.s, (v + 1) * kLanes); ++j)
        masked = row[a.mask_col ? j : 0] <= kDeadMask;  // (NaN: not masked)
      d.mask_row[v] = masked;
      d.mask_row_any = d.mask_row_any || masked;
    }
    d.mask_row_of = row;
  };
  if (!a.causal) {
    bool shared = true;
    for (int r = 1; r < rows; ++r) shared = shared && same_row(mask[r], mask[0]);
    if (shared) {  // (the common case: the marks of one mask row, made once)
      mark_mask_row(mask[0]);
      return d.mask_row_any && bounded() ? d.mask_row.data() : nullptr;
    }
  }
  const bool by_mask = a.mask && bounded();
  if (!a.causal && !by_mask) return nullptr;
  uint8_t* dead = d.tile.data();
  std::fill(dead, dead + vecs, uint8_t{1});
  for (int r = 0; r < rows; ++r) {
    const int64_t limit = key_limit(a, i0 + r);
    if (by_mask) mark_mask_row(mask[r]);
    for (int64_t v = 0; v < vecs; ++v) dead[v] = dead[v] && (v * kLanes >= limit || (by_mask && d.mask_row[v]));
  }
  return std::find(dead, dead + vecs, uint8_t{1}) != dead + vecs ? dead : nullptr;
}

// The largest |x| of the floats added; +inf when one is not finite (x * 0
// is NaN then, where vmaxps would skip a NaN). Four independent chains: one
// would wait on each add's latency.
template <class V>
struct AbsMax {
  static constexpr int kChains = 4;
  typename V::T largest[kChains] = {V::zero(), V::zero(), V::zero(), V::zero()};
  typename V::T nonfinite[kChains] = {V::zero(), V::zero(), V::zero(), V::zero()};
  void add(const float* p, int64_t n) {
    int64_t i = 0;
    for (; i + kChains * kLanes <= n; i += kChains * kLanes)
      for (int c = 0; c < kChains; ++c) take(c, V::load(p + i + c * kLanes));
    for (; i < n; i += kLanes) take(0, i + kLanes <= n ? V::load(p + i) : V::load_n(p + i, n - i));
  }
  float value() const {
    auto l = largest[0], nf = nonfinite[0];
    for (int c = 1; c < kChains; ++c) l = V::max(largest[c], l), nf = V::add(nonfinite[c], nf);
    return V::any_nan(nf) ? std::numeric_limits<float>::infinity() : V::hmax(l);
  }

 private:
  void take(int c, typename V::T x) {
    largest[c] = V::max(V::abs(x), largest[c]);
    nonfinite[c] = V::add(nonfinite[c], V::mul(x, V::zero()));
  }
};

template <class V>
HeadFacts head_facts(const AttentionArgs& a, int64_t s_pad, const float* kt, const float* vp) {
  HeadFacts f;
  f.known = true;
  AbsMax<V> k, v;
  k.add(kt, a.e * s_pad);
  v.add(vp, a.s * a.ev);
  f.k_max = k.value();
  f.values_finite = v.value() < std::numeric_limits<float>::infinity();
  return f;
}

template <class V, int R>
void attend_rows(const AttentionArgs& a, int64_t b, int64_t h, int64_t i0, const float* kt, const float* vp,
                 int64_t s_pad, HeadFacts& head, DeadKeys& dead_keys, float* scores) {
  const float* q[R];
  const float* mask[R];
  float* out[R];
  for (int r = 0; r < R; ++r) {
    q[r] = a.q + b * a.q_batch + h * a.q_head + (i0 + r) * a.q_row;
    mask[r] = a.mask ? a.mask + b * a.mask_batch + h * a.mask_head + (i0 + r) * a.mask_row : nullptr;
    out[r] = a.out + ((b * a.heads + h) * a.l + i0 + r) * a.ev;
  }
  const auto facts = [&]() -> const HeadFacts& {
    if (!head.known) head = head_facts<V>(a, s_pad, kt, vp);
    return head;
  };
  // every |q k * scale| of the tile within kProductBound (false for +inf, NaN)
  const auto bounded = [&] {
    AbsMax<V> q_max;
    for (int r = 0; r < R; ++r) q_max.add(q[r], a.e);
    const double bound = double{q_max.value()} * facts().k_max * static_cast<double>(a.e) * std::fabs(a.scale);
    return bound <= kProductBound;
  };
  const uint8_t* dead = dead_vectors(a, mask, R, i0, s_pad, bounded, dead_keys);
  score_rows<V, R>(a, q, kt, mask, i0, s_pad, dead, scores);
  float total[R];
  float* normal[R];
  bool dead_zero = true;  // every normal row gave the dead keys weight 0
  for (int r = 0; r < R; ++r) {
    bool row_dead_zero;
    float* row = scores + r * s_pad;
    const auto fill_dead = [&] {
      dead_row_scores<V>(a, mask[r], key_limit(a, i0 + r), s_pad, dead, row);
    };
    const RowState state = softmax_row<V>(row, s_pad, dead, fill_dead, &total[r], &row_dead_zero);
    normal[r] = state == RowState::Normal ? out[r] : nullptr;
    if (state == RowState::Normal) dead_zero = dead_zero && row_dead_zero;
    if (state != RowState::Normal) {
      // unused rows of the tile: weights 0 (never NaN into the sums)
      std::fill(scores + r * s_pad, scores + (r + 1) * s_pad, 0.0f);
      total[r] = 1.0f;
      std::fill(out[r], out[r] + a.ev, state == RowState::Nan ? std::numeric_limits<float>::quiet_NaN() : 0.0f);
    }
  }
  // The dead vectors before the first live one and after the last weigh 0.
  int64_t j_begin = 0, j_end = a.s;
  if (dead && dead_zero && facts().values_finite) {
    const int64_t vecs = s_pad / kLanes;
    int64_t first = 0, last = vecs;
    while (first < vecs && dead[first]) ++first;
    while (last > first && dead[last - 1]) --last;
    j_begin = first * kLanes, j_end = std::min(a.s, last * kLanes);
  }
  weigh_values<V, R>(a, vp, scores, s_pad, total, normal, j_begin, j_end);
}

// Head (b, h)'s keys transposed into kt [e][s_pad] (padding left as zeros)
// and its values copied into vp [S][Ev]. Copies only: no arithmetic. Whole
// 8 x 8 blocks go through V::transpose8 (element by element, the transpose
// took about a tenth of MiniLM's attention).
template <class V>
void pack_head(const AttentionArgs& a, int64_t b, int64_t h, int64_t s_pad, float* kt, float* vp) {
  const float* k = a.k + b * a.k_batch + h * a.k_head;
  const float* v = a.v + b * a.v_batch + h * a.v_head;
  for (int64_t j0 = 0; j0 < a.s; j0 += kLanes) {
    const int64_t keys = std::min<int64_t>(kLanes, a.s - j0);
    int64_t e = 0;
    if (keys == kLanes)
      for (; e + kLanes <= a.e; e += kLanes) V::transpose8(k + j0 * a.k_row + e, a.k_row, kt + e * s_pad + j0, s_pad);
    for (; e < a.e; ++e)
      for (int64_t j = 0; j < keys; ++j) kt[e * s_pad + j0 + j] = k[(j0 + j) * a.k_row + e];
  }
  for (int64_t j = 0; j < a.s; ++j) std::copy(v + j * a.v_row, v + j * a.v_row + a.ev, vp + j * a.ev);
}

// Rows [r0, r1) of `width` floats, `row_stride` apart from base, into the
// cache. Reads nothing, changes nothing.
inline void prefetch_rows(const float* base, int64_t row_stride, int64_t r0, int64_t r1, int64_t width) {
  constexpr int64_t kLineFloats = 16;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t e = 0; e < width; e += kLineFloats) __builtin_prefetch(base + r * row_stride + e);
}

// Keys [j0, j1) of head (b, h): their K and V rows, into the cache.
inline void prefetch_keys(const AttentionArgs& a, int64_t b, int64_t h, int64_t j0, int64_t j1) {
  prefetch_rows(a.k + b * a.k_batch + h * a.k_head, a.k_row, j0, j1, a.e);
  prefetch_rows(a.v + b * a.v_batch + h * a.v_head, a.v_row, j0, j1, a.ev);
}

// Query rows [i0, i1) of head (b, h) into the cache, the next tile's while
// this one computes: a [batch, S, heads, E] view's rows are a line or two
// each, far apart, and missed when the tile's bound first read them.
inline void prefetch_queries(const AttentionArgs& a, int64_t b, int64_t h, int64_t i0, int64_t i1) {
  prefetch_rows(a.q + b * a.q_batch + h * a.q_head, a.q_row, i0, i1, a.e);
}

}  // namespace attention

template <class V>
void attention_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  using namespace attention;
  const int64_t s_pad = (a.s + kLanes - 1) / kLanes * kLanes;
  const int64_t blocks = (a.l + kAttentionRowBlock - 1) / kAttentionRowBlock;
  // Made once per head: K transposed ([e][key], keys padded with zeros to
  // whole vectors) and V packed ([key][Ev]; the rows of a [batch, S, heads,
  // Ev] view are heads * Ev floats apart, and at such strides a head's rows
  // share a few cache sets and fall out of L1 between row tiles). Then a
  // tile's score rows.
  std::vector<float> kt(static_cast<size_t>(a.e * s_pad), 0.0f), vp(static_cast<size_t>(a.s * a.ev)),
      scores(static_cast<size_t>(kTileRows * s_pad));
  DeadKeys dead_keys{std::vector<uint8_t>(static_cast<size_t>(s_pad / kLanes)),
                     std::vector<uint8_t>(static_cast<size_t>(s_pad / kLanes))};
  HeadFacts facts;
  int64_t head_packed = -1;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t head = item / blocks, b = head / a.heads, h = head % a.heads;
    if (head != head_packed) {
      pack_head<V>(a, b, h, s_pad, kt.data(), vp.data());
      facts = HeadFacts{};
      head_packed = head;
    }
    const int64_t i_begin = item % blocks * kAttentionRowBlock, i_end = std::min(a.l, i_begin + kAttentionRowBlock);
    // The head's last item fetches the next head's K and V a few keys per row
    // tile: packing them cost cache misses on strided [batch, S, heads, E]
    // views (about 8 % of MiniLM's attention).
    const int64_t next = head + 1;
    const bool fetch_next = item + 1 < end && (item + 1) / blocks == next;
    const int64_t tiles = (i_end - i_begin + kTileRows - 1) / kTileRows, keys_per_tile = (a.s + tiles - 1) / tiles;
    for (int64_t i0 = i_begin; i0 < i_end; i0 += kTileRows) {
      if (fetch_next) {
        const int64_t j0 = (i0 - i_begin) / kTileRows * keys_per_tile;
        prefetch_keys(a, next / a.heads, next % a.heads, std::min(a.s, j0), std::min(a.s, j0 + keys_per_tile));
      }
      prefetch_queries(a, b, h, std::min(i_end, i0 + kTileRows), std::min(i_end, i0 + 2 * kTileRows));
      switch (std::min<int64_t>(kTileRows, i_end - i0)) {
        case 1: attend_rows<V, 1>(a, b, h, i0, kt.data(), vp.data(), s_pad, facts, dead_keys, scores.data()); break;
        case 2: attend_rows<V, 2>(a, b, h, i0, kt.data(), vp.data(), s_pad, facts, dead_keys, scores.data()); break;
        case 3: attend_rows<V, 3>(a, b, h, i0, kt.data(), vp.data(), s_pad, facts, dead_keys, scores.data()); break;
        case 4: attend_rows<V, 4>(a, b, h, i0, kt.data(), vp.data(), s_pad, facts, dead_keys, scores.data()); break;
        case 5: attend_rows<V, 5>(a, b, h, i0, kt.data(), vp.data(), s_pad, facts, dead_keys, scores.data()); break;
        default: attend_rows<V, kTileRows>(a, b, h, i0, kt.data(), vp.data(), s_pad, facts, dead_keys, scores.data()); break;
      }
    }
  }
}

}  // namespace qext::kernels::detail
