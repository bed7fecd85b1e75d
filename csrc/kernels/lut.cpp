#include "kernels/lut.h"

#include "kernels/kernel_table.h"
#include "kernels/ref/scalar_rules.h"

namespace qext::kernels {

void lut_u8(const uint8_t* in, int64_t n, const uint8_t* table, uint8_t* out, Isa isa) {
  kernel_table(isa).lut_u8(in, n, table, out);
}

void lut_u8_rows(const uint8_t* in, int64_t rows, int64_t cols, int64_t in_stride, const uint8_t* table,
                 uint8_t* out, int64_t out_stride, Isa isa) {
  const auto fn = kernel_table(isa).lut_u8;
  for (int64_t r = 0; r < rows; ++r) fn(in + r * in_stride, cols, table, out + r * out_stride);
}

void lut_u8_per_channel(const uint8_t* in, int64_t pixels, int64_t channels, const uint8_t* tables, uint8_t* out,
                        Isa isa) {
  kernel_table(isa).lut_u8_per_channel(in, pixels, channels, tables, out);
}

void requantize_table(float s_in, int32_t z_in, float s_out, int32_t z_out, uint8_t* table) {
  for (int q = 0; q < 256; ++q) {
    table[q] = static_cast<uint8_t>(ref::quantize_one(ref::dequantize_one(static_cast<uint8_t>(q), s_in, z_in),
                                                      s_out, z_out, 0, 255));
  }
}

namespace detail {

void lut_u8_ref(const uint8_t* in, int64_t n, const uint8_t* table, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = table[in[i]];
}

void lut_u8_per_channel_ref(const uint8_t* in, int64_t pixels, int64_t channels, const uint8_t* tables,
                            uint8_t* out) {
  for (int64_t p = 0; p < pixels; ++p, in += channels, out += channels) {
    for (int64_t c = 0; c < channels; ++c) out[c] = tables[c * 256 + in[c]];
  }
}

}  // namespace detail
}  // namespace qext::kernels
