// The grouped kernel, reference path: the spec of the multiply-accumulate,
// from the weights in torch's layout.
#include "kernels/grouped_impl.h"

namespace qext::kernels::detail {

namespace {

void macs(const GroupedWeights& w, const int64_t* tap_offsets, const uint8_t* origin, int64_t pixel_step,
          int64_t pixels, int32_t* acc) {
  const int64_t g = w.group_width, padded = w.padded_channels();
  for (int64_t p = 0; p < pixels; ++p) {
    const uint8_t* window = origin + p * pixel_step;
    for (int64_t o = 0; o < padded; ++o) {
      int32_t sum = 0;
      for (int64_t j = 0; o < w.channels && j < g; ++j) {
        const uint8_t* x = window + o / g * g + j;
        const int8_t* wj = w.plain.data() + (o * g + j) * w.taps;
        for (int64_t t = 0; t < w.taps; ++t) sum += int32_t{x[tap_offsets[t]]} * wj[t];
      }
      acc[p * padded + o] = sum;
    }
  }
}

}  // namespace

void grouped_u8_ref(const GroupedArgs& args, int64_t row_begin, int64_t row_end) {
  grouped_rows<macs, RowRequantizer<quantize_u8_ref>>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
