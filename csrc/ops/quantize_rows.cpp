#include "ops/quantize_rows.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/quantize.h"
#include "quant/qparams.h"

namespace qext::ops {

QuantizedRows quantize_rows(const float* x, int64_t m, int64_t k, bool per_row, kernels::Isa isa,
                            int64_t row_bytes, int32_t qmax) {
  QuantizedRows r{at::empty({m, row_bytes}, at::kByte), std::vector<float>(m), std::vector<int32_t>(m),
                  std::vector<uint8_t>(m)};
  uint8_t* q = r.q.data_ptr<uint8_t>();
  std::vector<float> lo(m), hi(m);
  const int64_t grain = std::max<int64_t>(1, 16384 / k);
  auto quantize_row = [&](int64_t i) {
    kernels::quantize_u8(x + i * k, k, r.scale[i], r.zero_point[i], 0, qmax, q + i * row_bytes, isa);
    std::memset(q + i * row_bytes + k, r.zero_point[i], static_cast<size_t>(row_bytes - k));
  };
  // Per row, each row is quantized right after its range, while still in L1.
  at::parallel_for(0, m, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      r.finite[i] = kernels::finite_min_max(x + i * k, k, &lo[i], &hi[i], isa);
      if (!per_row) continue;
      const quant::QParams p = quant::choose_qparams(lo[i], hi[i], 0, qmax, false);
      r.scale[i] = p.scale;
      r.zero_point[i] = p.zero_point;
      quantize_row(i);
    }
  });
  if (per_row) return r;
  float all_lo = 0.0f, all_hi = 0.0f;
  for (int64_t i = 0; i < m; ++i) {
    if (!r.finite[i]) continue;
    all_lo = std::min(all_lo, lo[i]);
    all_hi = std::max(all_hi, hi[i]);
  }
  const quant::QParams p = quant::choose_qparams(all_lo, all_hi, 0, qmax, false);
  std::fill(r.scale.begin(), r.scale.end(), p.scale);
  std::fill(r.zero_point.begin(), r.zero_point.end(), p.zero_point);
  at::parallel_for(0, m, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) quantize_row(i);
  });
  return r;
}

void mark_nonfinite_rows(const QuantizedRows& rows, float* out, int64_t m, int64_t n) {
  for (int64_t i = 0; i < m; ++i) {
    if (!rows.finite[i]) std::fill(out + i * n, out + (i + 1) * n, std::numeric_limits<float>::quiet_NaN());
  }
}

}  // namespace qext::ops
