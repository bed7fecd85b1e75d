// GELU in its erf form, 0.5 x (1 + erf(x / sqrt(2))), written once as a fixed
// sequence of IEEE float operations that every path instantiates with its own
// arithmetic (a float, an AVX2 or AVX-512 vector, an ATen tensor on a GPU).
// Same operations in the same order, none fused (kernels build with
// -ffp-contract=off), so the int8 Linear's fused GELU gives the same bits on
// every path.
//
// erf(u) = u * P(u^2) / Q(u^2) for |u| <= kClamp, a rational fit of degree 5
// over 5 in u^2 (weighted least squares iterated toward minimax); past
// kClamp float erf is +-1. In float it is within 4e-7 of erf, and GELU within
// 1.2e-6 of the exact function over [-10, 10], as torch.nn.functional.gelu's
// float result is (tests/cpp/kernels/test_qgemm.cpp checks the bound;
// scripts/fit_gelu_erf.py makes the coefficients).
#pragma once

namespace qext::kernels::gelu {

constexpr float kInvSqrt2 = 0.70710677f;
constexpr float kClamp = 3.925f;
constexpr float kP[6] = {1.128379f, 0.1929725f, 0.053084332f, 0.003876322f, 0.00028749154f, 2.0308623e-06f};
constexpr float kQ[6] = {1.0f, 0.50434905f, 0.115167424f, 0.015188346f, 0.0011897478f, 3.8031343e-05f};

// `o` supplies V's arithmetic: splat(float), mul, add, div, and max(a, b) =
// a > b ? a : b, min(a, b) = a < b ? a : b (vmaxps / vminps: b when either is
// NaN; here b is the value, so NaN propagates).
template <class Ops, class V>
V gelu_erf(const Ops& o, const V& x) {
  V u = o.mul(x, o.splat(kInvSqrt2));
  u = o.min(o.splat(kClamp), o.max(o.splat(-kClamp), u));
  const V t = o.mul(u, u);
  V p = o.splat(kP[5]);
  V q = o.splat(kQ[5]);
  for (int i = 4; i >= 0; --i) {
    p = o.add(o.mul(p, t), o.splat(kP[i]));
    q = o.add(o.mul(q, t), o.splat(kQ[i]));
  }
  V e = o.div(o.mul(u, p), q);
  e = o.min(o.splat(1.0f), o.max(o.splat(-1.0f), e));
  return o.mul(o.mul(o.splat(0.5f), x), o.add(o.splat(1.0f), e));
}

struct ScalarOps {
  static float splat(float v) { return v; }
  static float mul(float a, float b) { return a * b; }
  static float add(float a, float b) { return a + b; }
  static float div(float a, float b) { return a / b; }
  static float max(float a, float b) { return a > b ? a : b; }
  static float min(float a, float b) { return a < b ? a : b; }
};

inline float gelu_erf_one(float x) { return gelu_erf(ScalarOps{}, x); }

}  // namespace qext::kernels::gelu
