// Packing of low-bit weights and the dispatch of lowbit_gemm to its paths.
#include "kernels/lowbit_gemm.h"

#include <stdexcept>
#include <vector>
#include <string>

#include "kernels/kernel_table.h"

namespace qext::kernels {

namespace {

// What padding columns of K hold: 0 where the levels have it (binary has no 0).
int filler_level(int bits) { return bits == 1 ? 1 : 0; }

}  // namespace

LowBitWeights::LowBitWeights(const int8_t* levels, const float* scales, int64_t n, int64_t k, int bits,
                             int64_t group_size)
    : n_(n), k_(k), bits_(bits) {
  if (!lowbit_supported(bits)) {
    throw std::invalid_argument("qext: low-bit weights take 1, 2 or 4 bits; got " + std::to_string(bits));
  }
  if (n <= 0 || k <= 0) {
    throw std::invalid_argument("qext: low-bit weights need N > 0 and K > 0; got N=" + std::to_string(n) +
                                ", K=" + std::to_string(k));
  }
  if (group_size < 0 || group_size % 4 != 0) {
    throw std::invalid_argument("qext: group_size must be a multiple of 4 (or 0 for one group per row); got " +
                                std::to_string(group_size));
  }
  k_steps_ = (k + 3) / 4;
  group_size_ = lowbit_group_size(group_size, k);
  groups_ = (k + group_size_ - 1) / group_size_;
  num_blocks_ = (n + kLowBitBlockCols - 1) / kLowBitBlockCols;
  codes_ = AlignedBuffer<uint8_t>(static_cast<size_t>(num_blocks_ * k_steps_ * step_bytes()), /*zeroed=*/true);
  scales_.assign(static_cast<size_t>(num_blocks_ * groups_ * kLowBitBlockCols), 0.0f);
  code_sums_.assign(scales_.size(), 0);

  const int lo = lowbit_min_level(bits), hi = lowbit_max_level(bits);
  for (int64_t row = 0; row < n; ++row) {
    const int64_t b = row / kLowBitBlockCols, col = row % kLowBitBlockCols;
    for (int64_t g = 0; g < groups_; ++g) {
      scales_[(b * groups_ + g) * kLowBitBlockCols + col] = scales[row * groups_ + g];
    }
    for (int64_t kk = 0; kk < k_steps_ * 4; ++kk) {
      const int v = kk < k ? levels[row * k + kk] : filler_level(bits);
      if (v < lo || v > hi || (bits == 1 && v == 0)) {
        throw std::invalid_argument("qext: level " + std::to_string(v) + " at [" + std::to_string(row) + ", " +
                                    std::to_string(kk) + "] is outside the " + std::to_string(bits) +
                                    "-bit levels [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
      }
      const int64_t t = col * 4 + kk % 4, nbytes = step_bytes();
      uint8_t& byte = codes_.data()[(b * k_steps_ + kk / 4) * nbytes + t % nbytes];
      byte = static_cast<uint8_t>(byte | (lowbit_code(v, bits) << ((t / nbytes) * bits)));
      code_sums_[(b * groups_ + kk / group_size_) * kLowBitBlockCols + col] += lowbit_code(v, bits);
    }
  }
}

int LowBitWeights::level(int64_t n, int64_t k) const {
  const int64_t b = n / kLowBitBlockCols, t = (n % kLowBitBlockCols) * 4 + k % 4, nbytes = step_bytes();
  const uint8_t byte = block(b)[(k / 4) * nbytes + t % nbytes];
  return lowbit_level((byte >> ((t / nbytes) * bits_)) & ((1 << bits_) - 1), bits_);
}

void LowBitWeights::dequantize_row(int64_t n, float* out) const {
  const int64_t b = n / kLowBitBlockCols, col = n % kLowBitBlockCols, nbytes = step_bytes();
  const uint8_t* codes = block(b);
  const float* scales = block_scales(b);
  const int mask = (1 << bits_) - 1;
  for (int64_t k = 0; k < k_; ++k) {
    const int64_t t = col * 4 + k % 4;
    const int code = (codes[(k / 4) * nbytes + t % nbytes] >> ((t / nbytes) * bits_)) & mask;
    out[k] = static_cast<float>(lowbit_level(code, bits_)) * scales[(k / group_size_) * kLowBitBlockCols + col];
  }
}

void lowbit_gemm(const LowBitGemmArgs& args, const LowBitWeights& w, int64_t m_begin, int64_t m_end,
                 int64_t block_begin, int64_t block_end, Isa isa) {
  if (m_begin >= m_end || block_begin >= block_end) return;
  if (args.lda < w.k_padded()) {
    throw std::invalid_argument("qext: lowbit_gemm needs activation rows of at least " +
                                std::to_string(w.k_padded()) + " bytes; got lda=" + std::to_string(args.lda));
  }
  // Each row's activation sum per group (padding included), once per call:
  // every column block's zero-point correction reads them.
  std::vector<int32_t> row_sums(static_cast<size_t>((m_end - m_begin) * w.groups()));
  for (int64_t m = m_begin; m < m_end; ++m) {
    const uint8_t* a = args.a + m * args.lda;
    for (int64_t g = 0; g < w.groups(); ++g) {
      int32_t sum = 0;
      for (int64_t k = g * w.group_size(); k < g * w.group_size() + w.group_len(g); ++k) sum += a[k];
      row_sums[(m - m_begin) * w.groups() + g] = sum;
    }
  }
  kernel_table(isa).lowbit_gemm(args, w, row_sums.data(), m_begin, m_end, block_begin, block_end);
}

}  // namespace qext::kernels
