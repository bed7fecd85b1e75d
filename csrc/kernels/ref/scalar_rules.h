// The scalar definitions every ISA path must reproduce bit for bit. Kernels are
// compiled with -ffp-contract=off so a multiply and an add never fuse into an FMA
// in one path and not in another.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdint>

#include "kernels/gelu_erf.h"
#include "kernels/qgemm.h"

namespace qext::kernels::ref {

// round-half-even(x / scale) + zero_point, clamped to [qmin, qmax]; NaN -> qmin.
inline int32_t quantize_one(float x, float scale, int32_t zero_point, int32_t qmin,
                            int32_t qmax) {
  float t = std::nearbyint(x / scale) + static_cast<float>(zero_point);
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  t = t > lo ? t : lo;  // written so that NaN picks qmin, like vmaxps(t, lo)
  t = t < hi ? t : hi;
  return static_cast<int32_t>(t);
}

inline float dequantize_one(int32_t q, float scale, int32_t zero_point) {
  return static_cast<float>(q - zero_point) * scale;
}

// Folds the finite values of x[0, n) into [*lo, *hi]; false if any is NaN/inf.
inline bool fold_finite_min_max(const float* x, int64_t n, float* lo, float* hi) {
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      finite = false;
      continue;
    }
    *lo = x[i] < *lo ? x[i] : *lo;
    *hi = x[i] > *hi ? x[i] : *hi;
  }
  return finite;
}

// The clamp the vector quantizers apply before a divider-free quotient: the
// activation's [clamp_min, clamp_max] narrowed to the floats that quantize into
// [qmin, qmax] (quantizing is monotonic, so clamp -> quantize -> clamp equals
// narrowed clamp -> quantize). `narrowed` is false where that trick is not
// exact (1/scale not a normal float, bounds overflowing): the paths divide.
struct QuantizeBounds {
  bool narrowed;
  float lo, hi;
};
inline QuantizeBounds quantize_bounds(float scale, int32_t zero_point, int32_t qmin, int32_t qmax,
                                      float clamp_min, float clamp_max) {
  const float lo_q = static_cast<float>(qmin - zero_point) * scale;
  const float hi_q = static_cast<float>(qmax - zero_point) * scale;
  const bool narrowed = std::isnormal(1.0f / scale) && std::abs(qmin - zero_point) < (1 << 16) &&
                        std::abs(qmax - zero_point) < (1 << 16) && std::isfinite(lo_q) && std::isfinite(hi_q);
  if (!narrowed) return {false, clamp_min, clamp_max};
  return {true, std::clamp(clamp_min, lo_q, hi_q), std::clamp(clamp_max, lo_q, hi_q)};
}

// The Float epilogue for one accumulator; the Uint8 one quantizes its result.
inline float epilogue_float(int32_t acc, float row_scale, float col_scale, const float* bias,
                            int64_t n, float clamp_min, float clamp_max) {
  float v = static_cast<float>(acc) * (row_scale * col_scale);
  if (bias) v = v + bias[n];
  v = v > clamp_min ? v : clamp_min;
  v = v < clamp_max ? v : clamp_max;
  return v;
}

// The requantizing add of two uint8 values (static residual adds).
inline uint8_t add_requant_one(uint8_t a, float sa, int32_t za, uint8_t b, float sb, int32_t zb,
                               float so, int32_t zo, float lo) {
  float v = static_cast<float>(a - za) * sa + static_cast<float>(b - zb) * sb;
  v = v > lo ? v : lo;
  return static_cast<uint8_t>(quantize_one(v, so, zo, 0, 255));
}

// The requantizing product of a uint8 value and a second factor given
// dequantized (f = float(b - zb) * sb; static x * gate, x * y).
inline uint8_t mul_requant_one(uint8_t a, float sa, int32_t za, float f, float so, int32_t zo) {
  return static_cast<uint8_t>(quantize_one(dequantize_one(a, sa, za) * f, so, zo, 0, 255));
}

// Stores one accumulator through the epilogue.
inline void store_one(const Epilogue& ep, int32_t acc, int64_t m, int64_t n, void* c,
                      int64_t ldc) {
  const int64_t at = m * ldc + n;
  if (ep.output == Epilogue::Output::Int32) {
    static_cast<int32_t*>(c)[at] = acc;
    return;
  }
  const float v = epilogue_float(acc, ep.row_scale[m], ep.col_scale[n], ep.bias, n,
                                 ep.clamp_min, ep.clamp_max);
  if (ep.output == Epilogue::Output::Float) {
    static_cast<float*>(c)[at] = ep.gelu ? gelu::gelu_erf_one(v) : v;
  } else {
    static_cast<uint8_t*>(c)[at] =
        static_cast<uint8_t>(quantize_one(v, ep.out_scale, ep.out_zero_point, 0, 255));
  }
}

}  // namespace qext::kernels::ref
