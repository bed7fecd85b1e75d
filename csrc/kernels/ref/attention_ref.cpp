// The attention kernel, reference path: attention_impl.h over 8 plain floats,
// each lane's operations spelled out one IEEE operation at a time (std::fma
// rounds once, as vfmadd does).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/attention_impl.h"

namespace qext::kernels::detail {

namespace {

struct RefVec8 {
  struct T {
    float l[attention::kLanes];
  };
  template <class F>
  static T each(F f) {
    T r;
    for (int i = 0; i < attention::kLanes; ++i) r.l[i] = f(i);
    return r;
  }
  static T zero() { return splat(0.0f); }
  static T splat(float v) { return each([&](int) { return v; }); }
  static T load(const float* p) { return each([&](int i) { return p[i]; }); }
  static T load_n(const float* p, int64_t n) { return each([&](int i) { return i < n ? p[i] : 0.0f; }); }
  static void store(float* p, const T& x) { std::memcpy(p, x.l, sizeof x.l); }
  static void store_n(float* p, const T& x, int64_t n) { std::memcpy(p, x.l, static_cast<size_t>(n) * sizeof(float)); }
  static T fma(const T& a, const T& b, const T& c) { return each([&](int i) { return std::fma(a.l[i], b.l[i], c.l[i]); }); }
  static T mul(const T& a, const T& b) { return each([&](int i) { return a.l[i] * b.l[i]; }); }
  static T add(const T& a, const T& b) { return each([&](int i) { return a.l[i] + b.l[i]; }); }
  static T sub(const T& a, const T& b) { return each([&](int i) { return a.l[i] - b.l[i]; }); }
  static T div(const T& a, const T& b) { return each([&](int i) { return a.l[i] / b.l[i]; }); }
  static T max(const T& a, const T& b) { return each([&](int i) { return a.l[i] > b.l[i] ? a.l[i] : b.l[i]; }); }
  static T mask_from(const T& x, int64_t first, int64_t limit) {
    return each([&](int i) { return first + i < limit ? x.l[i] : -std::numeric_limits<float>::infinity(); });
  }
  static T zero_below(const T& x, float t, const T& y) { return each([&](int i) { return x.l[i] < t ? 0.0f : y.l[i]; }); }
  static T pow2i(const T& n) {
    return each([&](int i) {
      const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n.l[i]) + 127) << 23;
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    });
  }
  static T abs(const T& x) { return each([&](int i) { return std::fabs(x.l[i]); }); }
  static bool any_nan(const T& x) {
    bool nan = false;
    for (float v : x.l) nan = nan || v != v;
    return nan;
  }
  static void transpose8(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
    for (int i = 0; i < attention::kLanes; ++i)
      for (int j = 0; j < attention::kLanes; ++j) dst[i * dst_stride + j] = src[j * src_stride + i];
  }
  static float hsum(const T& x) {
    const float a0 = x.l[0] + x.l[4], a1 = x.l[1] + x.l[5], a2 = x.l[2] + x.l[6], a3 = x.l[3] + x.l[7];
    return (a0 + a2) + (a1 + a3);
  }
  static float hmax(const T& x) {
    const auto m = [](float a, float b) { return a > b ? a : b; };
    return m(m(m(x.l[0], x.l[4]), m(x.l[2], x.l[6])), m(m(x.l[1], x.l[5]), m(x.l[3], x.l[7])));
  }
};

}  // namespace

void attention_f32_ref(const AttentionArgs& args, int64_t begin, int64_t end) {
  attention_items<RefVec8>(args, begin, end);
}

}  // namespace qext::kernels::detail
