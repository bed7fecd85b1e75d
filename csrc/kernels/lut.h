// Byte lookup tables over uint8 data: out[i] = table[in[i]]. Every uint8 ->
// uint8 function of one value (an activation, a requantization between two
// qparams) is such a table, exact on every path by construction.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace qext::kernels {

// out[i] = table[in[i]] for i < n; table has 256 entries.
void lut_u8(const uint8_t* in, int64_t n, const uint8_t* table, uint8_t* out, Isa isa);

// The same over `rows` rows of `cols` bytes, rows `in_stride` / `out_stride`
// bytes apart (a slice of channels-last data, one part of a cat).
void lut_u8_rows(const uint8_t* in, int64_t rows, int64_t cols, int64_t in_stride, const uint8_t* table,
                 uint8_t* out, int64_t out_stride, Isa isa);

// A table per channel over channels-last data: `pixels` runs of `channels`
// bytes, out[p * channels + c] = tables[c * 256 + in[p * channels + c]]
// (unfused BatchNorm with its activation).
void lut_u8_per_channel(const uint8_t* in, int64_t pixels, int64_t channels, const uint8_t* tables, uint8_t* out,
                        Isa isa);

// The table moving uint8 values from (s_in, z_in) to (s_out, z_out):
// quantize(float(q - z_in) * s_in, s_out, z_out), the reference rule.
void requantize_table(float s_in, int32_t z_in, float s_out, int32_t z_out, uint8_t* table);

}  // namespace qext::kernels
