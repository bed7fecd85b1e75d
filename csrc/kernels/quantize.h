// Element-wise quantization kernels, the one rounding rule of qext:
//
//   q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)   (NaN -> qmin)
//   x' = float(q - zero_point) * scale
//
// Every op that quantizes (activations on the fly, weights, requantization in
// the GEMM epilogue, fake-quant for QAT) goes through these definitions.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace qext::kernels {

// Min and max over the finite values of x[0, n) (0 when there are none);
// returns false when x holds a NaN or an infinity.
bool finite_min_max(const float* x, int64_t n, float* min_out, float* max_out, Isa isa);

void quantize_u8(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                 int32_t qmax, uint8_t* q, Isa isa);
void quantize_s8(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                 int32_t qmax, int8_t* q);
void dequantize_u8(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x);
void dequantize_s8(const int8_t* q, int64_t n, float scale, int32_t zero_point, float* x);
// dequantize(quantize(x)) in one pass, for QAT.
void fake_quantize(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                   int32_t qmax, float* out);

}  // namespace qext::kernels
