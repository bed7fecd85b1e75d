// Element-wise int8 kernels for static quantization.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace qext::kernels {

// out = quantize(clamp(float(a - za) * sa + float(b - zb) * sb), so, zo): the
// sum of two uint8 tensors with different qparams, requantized, with an
// optional fused ReLU (clamp at 0). Same rounding rule as every other op.
void add_requant_u8(const uint8_t* a, float sa, int32_t za, const uint8_t* b, float sb, int32_t zb,
                    int64_t n, float so, int32_t zo, bool relu, uint8_t* out, Isa isa);

// out[i] = quantize(float(a[i] - za) * sa * f[i % f_len], so, zo) for i < n
// (ref::mul_requant_one): a product of two uint8 tensors, requantized. The
// second factor comes dequantized (f = float(b - zb) * sb), repeating every
// f_len values, so that a broadcast one is dequantized once: an SE gate's C
// values over every pixel of a channels-last image (f_len = C), one value
// over an NCHW plane (f_len = 1), or none (f_len = n). f_len >= 1.
void mul_requant_u8(const uint8_t* a, float sa, int32_t za, const float* f, int64_t f_len, int64_t n,
                    float so, int32_t zo, uint8_t* out, Isa isa);

// The largest byte of x[0, n) (0 when n is 0). Ops measure a GEMM's
// activations with it where a small bound pays (GemmArgs::a_max).
uint8_t max_u8(const uint8_t* x, int64_t n, Isa isa);

}  // namespace qext::kernels
