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
//   hsum(x), hmax(x)              lanes (l, l + 4), then (l, l + 2), then (0, 1)
//   transpose8(src, ss, dst, ds)  dst[i * ds + j] = src[j * ss + i], i, j < 8
// Nothing here depends on the path: the tiling only decides which rows and
// lanes are computed together, never the order of any lane's operations.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
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

// exp(x) for x <= 0 (a score minus its row's maximum): 2^n * P(r), n the
// nearest integer to x / ln 2, r = x - n ln 2 in [-ln2 / 2, ln2 / 2], P the
// degree-6 Taylor polynomial (relative error < 1.2e-7 there); 0 below kExpMin.
template <class V>
typename V::T exp_nonpositive(typename V::T x) {
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
    const int64_t limit = a.causal ? std::min(a.s, i0 + r + 1) : a.s;
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

// Scores of rows [i0, i0 + R) against every key: scores[r * s_pad + j].
template <class V, int R>
void score_rows(const AttentionArgs& a, const float* const* q, const float* kt, const float* const* mask,
                int64_t i0, int64_t s_pad, float* scores) {
  constexpr int kVecs = 2;
  int64_t j0 = 0;
  for (; j0 + kVecs * kLanes <= s_pad; j0 += kVecs * kLanes) score_keys<V, R, kVecs>(a, q, kt, mask, i0, s_pad, j0, scores);
  if (s_pad - j0 == kLanes) score_keys<V, R, 1>(a, q, kt, mask, i0, s_pad, j0, scores);
}

// Row r of `scores` -> exp(s - max) in place; returns the state and the sum.
template <class V>
RowState softmax_row(float* row, int64_t s_pad, float* total) {
  auto mx = V::splat(-std::numeric_limits<float>::infinity());
  bool nan = false;
  for (int64_t j = 0; j < s_pad; j += kLanes) {
    const auto s = V::load(row + j);
    nan = nan || V::any_nan(s);
    mx = V::max(s, mx);
  }
  const float m = V::hmax(mx);
  if (nan || m == std::numeric_limits<float>::infinity()) return RowState::Nan;
  if (m == -std::numeric_limits<float>::infinity()) return RowState::AllMasked;
  const auto mv = V::splat(m);
  auto sum = V::zero();
  int64_t j = 0;
  for (; j + 2 * kLanes <= s_pad; j += 2 * kLanes) {  // two exps in flight
    const auto p0 = exp_nonpositive<V>(V::sub(V::load(row + j), mv));
    const auto p1 = exp_nonpositive<V>(V::sub(V::load(row + j + kLanes), mv));
    V::store(row + j, p0);
    V::store(row + j + kLanes, p1);
    sum = V::add(V::add(sum, p0), p1);
  }
  if (j < s_pad) {
    const auto p = exp_nonpositive<V>(V::sub(V::load(row + j), mv));
    V::store(row + j, p);
    sum = V::add(sum, p);
  }
  *total = V::hsum(sum);
  return RowState::Normal;
}

// out rows [i0, i0 + R) (those not null) = p v / total, for the `cols` value
// columns from c0 (NV vectors; the last one partial when cols < NV * 8); v is
// the head's values packed [S][Ev].
template <class V, int R, int NV>
void weigh_columns(const AttentionArgs& a, const float* v, const float* scores, int64_t s_pad, const float* total,
                   float* const* out, int64_t c0, int64_t cols) {
  typename V::T acc[R][NV];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int x = 0; x < NV; ++x) acc[r][x] = V::zero();
  const int64_t last = cols - (NV - 1) * kLanes;  // lanes of the last vector
  for (int64_t j = 0; j < a.s; ++j) {
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
                  float* const* out) {
  constexpr int kVecs = 2;
  int64_t c0 = 0;
  for (; c0 + kVecs * kLanes <= a.ev; c0 += kVecs * kLanes)
    weigh_columns<V, R, kVecs>(a, v, scores, s_pad, total, out, c0, kVecs * kLanes);
  const int64_t rest = a.ev - c0;
  if (rest > kLanes) weigh_columns<V, R, 2>(a, v, scores, s_pad, total, out, c0, rest);
  else if (rest > 0) weigh_columns<V, R, 1>(a, v, scores, s_pad, total, out, c0, rest);
}

template <class V, int R>
void attend_rows(const AttentionArgs& a, int64_t b, int64_t h, int64_t i0, const float* kt, const float* vp,
                 int64_t s_pad, float* scores) {
  const float* q[R];
  const float* mask[R];
  float* out[R];
  for (int r = 0; r < R; ++r) {
    q[r] = a.q + b * a.q_batch + h * a.q_head + (i0 + r) * a.q_row;
    mask[r] = a.mask ? a.mask + b * a.mask_batch + h * a.mask_head + (i0 + r) * a.mask_row : nullptr;
    out[r] = a.out + ((b * a.heads + h) * a.l + i0 + r) * a.ev;
  }
  score_rows<V, R>(a, q, kt, mask, i0, s_pad, scores);
  float total[R];
  float* normal[R];
  for (int r = 0; r < R; ++r) {
    const RowState state = softmax_row<V>(scores + r * s_pad, s_pad, &total[r]);
    normal[r] = state == RowState::Normal ? out[r] : nullptr;
    if (state != RowState::Normal) {
      // unused rows of the tile: weights 0 (never NaN into the sums)
      std::fill(scores + r * s_pad, scores + (r + 1) * s_pad, 0.0f);
      total[r] = 1.0f;
      std::fill(out[r], out[r] + a.ev, state == RowState::Nan ? std::numeric_limits<float>::quiet_NaN() : 0.0f);
    }
  }
  weigh_values<V, R>(a, vp, scores, s_pad, total, normal);
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

// Keys [j0, j1) of head (b, h): their K and V rows, into the cache. Reads
// nothing, changes nothing.
inline void prefetch_keys(const AttentionArgs& a, int64_t b, int64_t h, int64_t j0, int64_t j1) {
  constexpr int64_t kLineFloats = 16;
  const float* k = a.k + b * a.k_batch + h * a.k_head;
  const float* v = a.v + b * a.v_batch + h * a.v_head;
  for (int64_t j = j0; j < j1; ++j) {
    for (int64_t e = 0; e < a.e; e += kLineFloats) __builtin_prefetch(k + j * a.k_row + e);
    for (int64_t e = 0; e < a.ev; e += kLineFloats) __builtin_prefetch(v + j * a.v_row + e);
  }
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
  int64_t head_packed = -1;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t head = item / blocks, b = head / a.heads, h = head % a.heads;
    if (head != head_packed) {
      pack_head<V>(a, b, h, s_pad, kt.data(), vp.data());
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
      switch (std::min<int64_t>(kTileRows, i_end - i0)) {
        case 1: attend_rows<V, 1>(a, b, h, i0, kt.data(), vp.data(), s_pad, scores.data()); break;
        case 2: attend_rows<V, 2>(a, b, h, i0, kt.data(), vp.data(), s_pad, scores.data()); break;
        case 3: attend_rows<V, 3>(a, b, h, i0, kt.data(), vp.data(), s_pad, scores.data()); break;
        case 4: attend_rows<V, 4>(a, b, h, i0, kt.data(), vp.data(), s_pad, scores.data()); break;
        case 5: attend_rows<V, 5>(a, b, h, i0, kt.data(), vp.data(), s_pad, scores.data()); break;
        default: attend_rows<V, kTileRows>(a, b, h, i0, kt.data(), vp.data(), s_pad, scores.data()); break;
      }
    }
  }
}

}  // namespace qext::kernels::detail
