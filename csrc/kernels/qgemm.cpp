// Weight packing (one generic packer driven by each path's PackLayout) and the
// run-time choice of GEMM path.
#include "kernels/qgemm.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/kernel_table.h"

namespace qext::kernels {

namespace {

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Padded width of block b: its real columns rounded up to the vector width.
int64_t block_width(const PackLayout& l, int64_t n, int64_t b) {
  const int64_t cols = std::min(l.block_cols, n - b * l.block_cols);
  return round_up(cols, l.col_align);
}

// Byte offset of w[col, k] inside a block of padded width `width`.
int64_t offset_in_block(const PackLayout& l, int64_t width, int64_t col, int64_t k) {
  const int64_t g = k / l.k_group, kk = k % l.k_group;
  return (g * width + col) * l.k_group + kk;
}

}  // namespace

PackLayout pack_layout(Isa isa, bool bytes) {
  switch (isa) {
    case Isa::Ref: return detail::kRefLayout;
    case Isa::Avx2: return bytes ? detail::kAvx2NarrowLayout : detail::kAvx2Layout;
    case Isa::Avx512Vnni: return detail::kAvx512VnniLayout;
    case Isa::Amx: return detail::kAmxLayout;
  }
  throw std::invalid_argument("qext: unknown ISA");
}

PackedWeights::PackedWeights(const int8_t* w, int64_t n, int64_t k, Isa isa, int activation_bits)
    : PackedWeights(w, n, k, /*row_stride=*/k, /*k_stride=*/1, isa, activation_bits) {}

PackedWeights::PackedWeights(const int8_t* w, int64_t n, int64_t k, int64_t row_stride, int64_t k_stride, Isa isa,
                             int activation_bits)
    : n_(n), k_(k), isa_(isa) {
  if (activation_bits != 8 && activation_bits != 7) {
    throw std::invalid_argument("qext: weights are packed for 8- or 7-bit activations; got " +
                                std::to_string(activation_bits));
  }
  if (n <= 0 || k <= 0) {
    throw std::invalid_argument("qext: packed weights need N > 0 and K > 0; got N=" +
                                std::to_string(n) + ", K=" + std::to_string(k));
  }
  if (k > kMaxGemmK) {
    throw std::invalid_argument("qext: K=" + std::to_string(k) + " exceeds " + std::to_string(kMaxGemmK) +
                                ", the most an int32 accumulator holds exactly");
  }
  if (!cpu_supports(isa)) {
    throw std::runtime_error(std::string("qext: cannot pack weights for ISA path '") +
                             isa_name(isa) + "': this CPU does not support it");
  }
  narrow_ = true;
  for (int64_t row = 0; row < n && narrow_; ++row)
    for (int64_t kk = 0; kk < k; ++kk) {
      const int v = w[row * row_stride + kk * k_stride];
      if (v < -kNarrowWeightMax || v > kNarrowWeightMax) {
        narrow_ = false;
        break;
      }
    }
  bytes_ = isa == Isa::Avx2 && (narrow_ || activation_bits == 7);
  layout_ = pack_layout(isa, bytes_);
  num_blocks_ = (n + layout_.block_cols - 1) / layout_.block_cols;
  k_groups_ = (k + layout_.k_group - 1) / layout_.k_group;
  block_bytes_ = round_up(round_up(k_groups_, layout_.k_groups_align) * layout_.block_cols * layout_.k_group, 64);
  const size_t bytes = static_cast<size_t>(num_blocks_ * block_bytes_);
  data_ = AlignedBuffer<uint8_t>(bytes, /*zeroed=*/true);  // padding columns and k stay zero
  col_sums_.reset(new int32_t[n]());

  // Written in the block's own order ([k group][column][k in group]), so the
  // stores stream; w[row, kk] is read at row * row_stride + kk * k_stride
  // (a [K, N] matrix packs without being transposed first).
  const int64_t kg = layout_.k_group;
  for (int64_t b = 0; b < num_blocks_; ++b) {
    const int64_t width = block_width(layout_, n, b);
    const int64_t first = b * layout_.block_cols;
    const int64_t cols = std::min(layout_.block_cols, n - first);
    uint8_t* dst = data_.data() + b * block_bytes_;
    int32_t* sums = col_sums_.get() + first;
    for (int64_t g = 0; g < k_groups_; ++g) {
      const int64_t ks = std::min(kg, k - g * kg);
      for (int64_t col = 0; col < cols; ++col) {
        const int8_t* src = w + (first + col) * row_stride + g * kg * k_stride;
        uint8_t* out = dst + (g * width + col) * kg;
        for (int64_t j = 0; j < ks; ++j) {
          const int8_t v = src[j * k_stride];
          out[j] = static_cast<uint8_t>(v);
          sums[col] += v;
        }
      }
    }
  }
}

void PackedWeights::unpack(int8_t* w) const {
  for (int64_t row = 0; row < n_; ++row) {
    const int64_t b = row / layout_.block_cols, col = row % layout_.block_cols;
    const int64_t width = block_width(layout_, n_, b);
    const uint8_t* src = block(b);
    for (int64_t kk = 0; kk < k_; ++kk) {
      w[row * k_ + kk] = static_cast<int8_t>(src[offset_in_block(layout_, width, col, kk)]);
    }
  }
}

void qgemm(const GemmArgs& args, const PackedWeights& w, const Epilogue& ep, int64_t m_begin,
           int64_t m_end, int64_t block_begin, int64_t block_end) {
  if (m_begin >= m_end || block_begin >= block_end) return;
  if (ep.gelu && ep.output != Epilogue::Output::Float) {
    throw std::invalid_argument("qext: a fused GELU needs the GEMM's Float output");
  }
  if (args.a_rows) {
    const int64_t segs = args.a_segments;
    if (segs < 1 || w.k() % segs != 0 || (segs > 1 && ((w.k() / segs) % 4 != 0 || !args.a_segment_offsets))) {
      throw std::invalid_argument("qext: qgemm row segments must split K=" + std::to_string(w.k()) +
                                  " into runs of a multiple of 4 bytes, with offsets; got " +
                                  std::to_string(segs) + " segments");
    }
  }
  kernel_table(w.isa()).qgemm(args, w, ep, m_begin, m_end, block_begin, block_end);
}

}  // namespace qext::kernels
