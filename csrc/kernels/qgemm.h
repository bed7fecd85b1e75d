// qext's int8 GEMM: uint8 activations x int8 weights -> int32, with activation
// zero-point correction and a fused epilogue. Torch-free on purpose: the kernels
// build and test without LibTorch headers.
//
//   acc[m, n] = sum_k (a[m, k] - a_zero_point[m]) * w[n, k]        (exact int32)
//
// Weights use PyTorch's Linear layout w[N, K] and are symmetric (zero point 0).
#pragma once

#include <cstdint>
#include <limits>
#include <memory>

#include "kernels/aligned_buffer.h"
#include "kernels/isa.h"

namespace qext::kernels {

// The longest reduction the int32 accumulator holds exactly: 255 * 128 * K
// must stay below 2^31. Longer layers stay float (the passes say so).
constexpr int64_t kMaxGemmK = 65536;

// How one ISA path lays out packed weights: N is cut into blocks of
// `block_cols` columns (the last block padded to `col_align`), K into groups of
// `k_group`; inside a block the int8 weights run [k group][column][k in group].
// A block holds its k groups rounded up to `k_groups_align` (zeros after K).
struct PackLayout {
  int64_t block_cols;
  int64_t col_align;
  int64_t k_group;
  int64_t k_groups_align = 1;
};

// Weights are narrow when every value is in [-64, 64] (7-bit weights are): a
// uint8 x int8 pair sum then fits int16 exactly (255 * 64 * 2 = 32640), and
// the AVX2 path multiplies them with vpmaddubsw on a layout of its own.
constexpr int kNarrowWeightMax = 64;

// With activations at most this (7-bit: GemmArgs::a_max) as well, 4 products
// fit int16 (4 * 127 * 64 = 32512) and that kernel sums two k groups per
// widening. With activations this small, any int8 weights fit a pair sum
// (2 * 127 * 128 = 32512), so the AVX2 path can multiply them as bytes too.
constexpr int kPairedActivationMax = 127;

// `bytes`: the AVX2 path's vpmaddubsw layout (PackedWeights::bytes()).
PackLayout pack_layout(Isa isa, bool bytes = false);

// Weights packed once for one ISA path. Move-only; the packed form is internal
// (what gets saved is the unpacked int8 matrix, see unpack()).
//
// `activation_bits` is what the caller will mostly multiply them with: 7
// (GemmArgs::a_max <= 127) lets the AVX2 path pack any int8 weights as bytes
// for vpmaddubsw (torch.ao x86's reduce_range recipe, exact there); a call
// with larger activations then splits each byte into its low 7 bits and its
// top bit (two exact products; slower, same integers). Other paths ignore it.
class PackedWeights {
 public:
  PackedWeights(const int8_t* w, int64_t n, int64_t k, Isa isa, int activation_bits = 8);
  // w[row, kk] read at w[row * row_stride + kk * k_stride]: (n, 1) packs a
  // [K, N] matrix's columns as the rows.
  PackedWeights(const int8_t* w, int64_t n, int64_t k, int64_t row_stride, int64_t k_stride, Isa isa,
                int activation_bits = 8);

  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  Isa isa() const { return isa_; }
  // Every |w| <= kNarrowWeightMax.
  bool narrow() const { return narrow_; }
  // Packed as bytes for the AVX2 vpmaddubsw kernel: narrow weights, or any
  // weights packed for 7-bit activations.
  bool bytes() const { return bytes_; }
  const PackLayout& layout() const { return layout_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t k_groups() const { return k_groups_; }
  const uint8_t* block(int64_t b) const { return data_.data() + b * block_bytes_; }
  // sum_k w[n, k], used for the activation zero-point correction.
  const int32_t* col_sums() const { return col_sums_.get(); }
  // Writes the original w[N, K] back out.
  void unpack(int8_t* w) const;

 private:
  int64_t n_, k_;
  Isa isa_;
  bool narrow_, bytes_;
  PackLayout layout_;
  int64_t num_blocks_, k_groups_, block_bytes_;
  AlignedBuffer<uint8_t> data_;
  std::unique_ptr<int32_t[]> col_sums_;
};

// What to do with acc before it is stored.
struct Epilogue {
  enum class Output {
    Int32,  // c = acc                                             (int32_t*)
    Float,  // c = clamp(float(acc) * (row_scale[m] * col_scale[n]) + bias[n])  (float*)
    Uint8,  // c = quantize_u8(Float result, out_scale, out_zero_point)       (uint8_t*)
  };
  Output output = Output::Int32;
  const float* row_scale = nullptr;  // [M]; activation scale per row
  const float* col_scale = nullptr;  // [N]; weight scale per output channel
  const float* bias = nullptr;       // [N] or nullptr
  float clamp_min = -std::numeric_limits<float>::infinity();  // fused ReLU / ReLU6
  float clamp_max = std::numeric_limits<float>::infinity();
  // Float only: c = gelu::gelu_erf(the clamped value), a fused GELU (erf form;
  // kernels/gelu_erf.h), the same bits on every path.
  bool gelu = false;
  float out_scale = 1.0f;       // Uint8 only
  int32_t out_zero_point = 0;   // Uint8 only; in [0, 255]
};

struct GemmArgs {
  const uint8_t* a = nullptr;          // [M, lda] activations
  int64_t lda = 0;
  // Implicit im2col (optional; a and lda are then unused): row m of A is
  // `a_segments` runs of K / a_segments bytes laid end to end, run s starting
  // at a_rows[m] + a_segment_offsets[s] -- a convolution window's kernel rows
  // read straight from an NHWC image. Runs must be a multiple of 4 bytes long.
  const uint8_t* const* a_rows = nullptr;      // [M]
  const int64_t* a_segment_offsets = nullptr;  // [a_segments]; nullptr means {0}
  int64_t a_segments = 1;
  const int32_t* a_zero_point = nullptr;  // [M]; activation zero point per row
  // An upper bound on every A byte read (padding included). Only a speed
  // hint (see gemm_uses_a_max): callers that know a smaller one (7-bit
  // activations, or measured with max_u8) pass it; a wrong one gives wrong
  // sums on AVX2.
  uint8_t a_max = 255;
  void* c = nullptr;                   // [M, ldc] output, type given by the epilogue
  int64_t ldc = 0;
};

// A's row m (either addressing) as `segments` runs; `run(s)` is where run s starts.
struct ARow {
  const uint8_t* base;
  const int64_t* offsets;
  const uint8_t* run(int64_t s) const { return offsets ? base + offsets[s] : base; }
};
inline ARow a_row(const GemmArgs& args, int64_t m) {
  if (args.a_rows) return {args.a_rows[m], args.a_segment_offsets};
  return {args.a + m * args.lda, nullptr};
}

// Whether GemmArgs::a_max <= kPairedActivationMax speeds up weights packed
// like `w` (the AVX2 path's byte kernel): only then is it worth a pass over
// the activations to measure it.
inline bool gemm_uses_a_max(const PackedWeights& w) { return w.isa() == Isa::Avx2 && w.bytes(); }

// Computes rows [m_begin, m_end) and the columns of weight blocks
// [block_begin, block_end) with the path the weights were packed for. Disjoint
// ranges may run concurrently (that is how the ops parallelise).
void qgemm(const GemmArgs& args, const PackedWeights& w, const Epilogue& ep,
           int64_t m_begin, int64_t m_end, int64_t block_begin, int64_t block_end);

}  // namespace qext::kernels
