#include "kernels/quantize.h"

#include "kernels/kernel_table.h"
#include "kernels/ref/scalar_rules.h"

namespace qext::kernels {

bool finite_min_max(const float* x, int64_t n, float* min_out, float* max_out, Isa isa) {
  return kernel_table(isa).finite_min_max(x, n, min_out, max_out);
}

void quantize_u8(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                 int32_t qmax, uint8_t* q, Isa isa) {
  kernel_table(isa).quantize_u8(x, n, scale, zero_point, qmin, qmax, q);
}

void quantize_s8(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                 int32_t qmax, int8_t* q) {
  for (int64_t i = 0; i < n; ++i) {
    q[i] = static_cast<int8_t>(ref::quantize_one(x[i], scale, zero_point, qmin, qmax));
  }
}

void dequantize_u8(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = ref::dequantize_one(q[i], scale, zero_point);
}

void dequantize_s8(const int8_t* q, int64_t n, float scale, int32_t zero_point, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = ref::dequantize_one(q[i], scale, zero_point);
}

void fake_quantize(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                   int32_t qmax, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = ref::dequantize_one(ref::quantize_one(x[i], scale, zero_point, qmin, qmax), scale,
                                 zero_point);
  }
}

}  // namespace qext::kernels
