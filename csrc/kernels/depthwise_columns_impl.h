// The depthwise walk of the ColumnQuads layout (kernels/depthwise.h), shared
// by the AVX2 and AVX-512 paths; each supplies its vector operations (`Ops`)
// and compiles this with its own flags.
//
// Per output row and block of Ops::kLanes channels (or of 2-4 pixels of 16 or
// 32 channels): the bytes of four kernel rows at each image column are
// interleaved once (byte, then word unpacks within 128-bit lanes: 8 shuffles
// per column and row quad) into a small L1 buffer; every output pixel then
// takes one multiply-accumulate per vector per kernel column and row quad
// from it, and its sums go back to channel order once. Interleaving four taps
// per pixel instead cost 8 shuffles per 4 taps and pixel, and the shuffles
// bounded the kernel: at stride 1 a 3x3 kernel's column serves 3 pixels.
//
// Ops provides (Vec: one vector of int32 / byte lanes):
//   kLanes                         bytes (channels) per vector
//   Vec load(p, bytes)             `bytes` (a multiple of 16, <= kLanes) from p, zeros after
//   Vec zero()
//   void interleave(x[4], out[4])  4 rows' bytes -> out[k]: in 128-bit lane l,
//                                  lanes 16l+4k..16l+4k+3, 4 rows each (aligned stores)
//   Vec mac(sum, x, w)             sum + the 4-byte dot products of x (u8) and w (s8), exact
//   void store_sums(sum[4], stored, out)  the sums in lane order, `stored` int32
//   Requantizer(args, weight_sums, padded), operator()(acc, padded, row)
//
// A path may pass `HalfOps` too: the same operations on vectors of half the
// lanes, for a last block of at most half a block's channels (96 channels
// are a block of 64 and one of 32). In the packed layout such a block's
// channels sit in the low half of each of its four weight vectors, so the
// half-width walk reads the same words; on cores that split 512-bit
// operations in two it costs half as much.
#pragma once

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernels/aligned_buffer.h"
#include "kernels/depthwise.h"

namespace qext::kernels::detail {

// One output row's sums for one block, from its interleaved image columns
// and the block's weights (kLanes words per tap word, aligned).
template <class Ops>
struct ColumnRun {
  using Vec = typename Ops::Vec;
  const Vec* columns;      // [image column][row quad][4]
  const int32_t* weights;  // [kernel column][row quad][kLanes]
  int64_t kw, quads, sw, dw, ow, group, stored;
  int32_t* acc;  // the block's first lane of pixel 0; pixel stride `padded`
  int64_t padded;
};

// kKw, kQuads: the kernel's columns and row quads when known at compile time
// (then unrolled, the weights kept in registers); 0: read from `r`.
template <class Ops, int kKw, int kQuads>
void column_mac_pixels(const ColumnRun<Ops>& r) {
  using Vec = typename Ops::Vec;
  constexpr int64_t kVec = Ops::kLanes / 4;  // int32 words per vector
  const int64_t kw = kKw ? kKw : r.kw, quads = kQuads ? kQuads : r.quads;
  for (int64_t ox = 0; ox < r.ow; ox += r.group) {
    const int64_t first = std::min(ox, r.ow - r.group);  // a short last group redoes pixels (same values)
    Vec sum[4] = {Ops::zero(), Ops::zero(), Ops::zero(), Ops::zero()};
#pragma GCC unroll 8
    for (int64_t j = 0; j < kw; ++j) {
      const Vec* col = r.columns + (first * r.sw + j * r.dw) * quads * 4;
#pragma GCC unroll 2
      for (int64_t q = 0; q < quads; ++q) {
        const int32_t* wq = r.weights + (j * quads + q) * Ops::kLanes;
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k)
          sum[k] = Ops::mac(sum[k], col[4 * q + k], *reinterpret_cast<const Vec*>(wq + kVec * k));
      }
    }
    Ops::store_sums(sum, r.stored, r.acc + first * r.padded);
  }
}

// Where column x of one kernel row is read: p + (x - x0) * channels.
struct RowBytes {
  const uint8_t* p = nullptr;  // nullptr: a row past the kernel's (zeros)
  int64_t x0 = 0;
};

// Image columns [begin, end) and where each of the 4 * quads kernel rows
// reads them.
struct ColumnSpan {
  int64_t begin = 0, end = 0;
  const RowBytes* rows = nullptr;
};

// `count` bytes of a padded row from virtual byte v0 on: the stored row's
// `row_bytes` sit at virtual byte `offset`, zero points elsewhere.
inline void padded_row_bytes(const uint8_t* row, int64_t row_bytes, int64_t offset, int64_t v0, int64_t count,
                             uint8_t zero_point, uint8_t* dst) {
  std::fill_n(dst, count, zero_point);
  const int64_t from = std::max(v0, offset), to = std::min(v0 + count, offset + row_bytes);
  if (from < to) std::copy(row + (from - offset), row + (to - offset), dst + (from - v0));
}

using ColumnSpans = ColumnSpan[3];

// The image rows under one output row's windows, with the padding virtual.
// Image columns [x_lo, x_hi) read all `lanes` bytes of every block from the
// image row itself; the columns before and after read copies of the row's
// ends with the padding's zero points in place (a few hundred bytes per
// row), and rows of padding a row of zero points: no byte outside the image
// is read.
class PaddedRows {
 public:
  PaddedRows(const DepthwiseArgs& a, int64_t kernel_rows, int64_t columns, int64_t lanes)
      : a_(a),
        kernel_rows_(kernel_rows),
        row_bytes_(a.w() * a.channels),
        x_lo_(std::min(a.pad_w, columns)),
        x_hi_(std::clamp(row_bytes_ >= lanes ? a.pad_w + (row_bytes_ - lanes) / a.channels + 1 : x_lo_, x_lo_, columns)),
        left_bytes_(x_lo_ > 0 ? (x_lo_ - 1) * a.channels + lanes : 0),
        right_bytes_(columns > x_hi_ ? (columns - 1 - x_hi_) * a.channels + lanes : 0),
        zero_row_(static_cast<size_t>((columns - 1) * a.channels + lanes), static_cast<uint8_t>(a.x_zero_point)),
        ends_(static_cast<size_t>(kernel_rows * (left_bytes_ + right_bytes_))),
        rows_(static_cast<size_t>(3 * kernel_rows)),
        spans_{{0, x_lo_, rows_.data()},
               {x_lo_, x_hi_, rows_.data() + kernel_rows},
               {x_hi_, columns, rows_.data() + 2 * kernel_rows}} {}

  // Where output row oy of image n reads each kernel row, per span.
  const ColumnSpans& spans(int64_t n, int64_t oy) {
    const int64_t c = a_.channels, pad_bytes = a_.pad_w * c;
    const auto zp = static_cast<uint8_t>(a_.x_zero_point);
    for (int64_t i = 0; i < kernel_rows_; ++i) {
      RowBytes &left = rows_[i], &middle = rows_[kernel_rows_ + i], &right = rows_[2 * kernel_rows_ + i];
      const int64_t y = oy * a_.sh + i * a_.dh - a_.pad_h;
      if (i >= a_.kh) {
        left = middle = right = RowBytes{};
      } else if (y < 0 || y >= a_.h()) {
        left = middle = right = RowBytes{zero_row_.data(), 0};
      } else {
        const uint8_t* image_row = a_.image + (n * a_.h() + y) * row_bytes_;
        uint8_t* left_copy = ends_.data() + i * (left_bytes_ + right_bytes_);
        uint8_t* right_copy = left_copy + left_bytes_;
        padded_row_bytes(image_row, row_bytes_, pad_bytes, 0, left_bytes_, zp, left_copy);
        padded_row_bytes(image_row, row_bytes_, pad_bytes, x_hi_ * c, right_bytes_, zp, right_copy);
        left = {left_copy, 0};
        middle = {image_row, a_.pad_w};
        right = {right_copy, x_hi_};
      }
    }
    return spans_;
  }

 private:
  const DepthwiseArgs& a_;
  const int64_t kernel_rows_, row_bytes_, x_lo_, x_hi_, left_bytes_, right_bytes_;
  const std::vector<uint8_t> zero_row_;
  std::vector<uint8_t> ends_;
  std::vector<RowBytes> rows_;
  const ColumnSpans spans_;
};

// One output row's sums for the block of channels [at, at + stored), with
// O's vectors (O::kLanes <= the packed block, Ops::kLanes of the caller):
// the rows' bytes interleaved per image column, then every pixel's sums.
template <class O, class Ops>
void column_block(const DepthwiseArgs& a, const ColumnSpans& spans, int64_t at, int64_t stored, int64_t group,
                  typename Ops::Vec* buffer, int32_t* block_weights, int32_t* acc) {
  using Vec = typename O::Vec;
  const DepthwiseWeights& w = *a.weights;
  const int64_t c = a.channels, quads = w.row_quads();
  constexpr int64_t kVecWords = O::kLanes / 4, kPackedVecWords = Ops::kLanes / 4;
  auto* interleaved = reinterpret_cast<Vec*>(buffer);
  for (const ColumnSpan& span : spans) {
    for (int64_t x = span.begin; x < span.end; ++x) {
      for (int64_t q = 0; q < quads; ++q) {
        Vec v[4];
        for (int i = 0; i < 4; ++i) {
          const RowBytes& r = span.rows[4 * q + i];
          v[i] = r.p ? O::load(r.p + (x - r.x0) * c + at, stored) : O::zero();
        }
        O::interleave(v, interleaved + (x * quads + q) * 4);
      }
    }
  }
  // Each of a tap word's four vectors, cut to O's width (the low lanes hold
  // the block's first channels when it has at most O::kLanes of them).
  for (int64_t word = 0; word < w.tap_words(); ++word)
    for (int k = 0; k < 4; ++k)
      std::copy_n(w.words.data() + word * w.word_stride() + at + k * kPackedVecWords, kVecWords,
                  block_weights + word * O::kLanes + k * kVecWords);
  const ColumnRun<O> run{interleaved, block_weights, a.kw, quads, a.sw, a.dw, a.ow, group, stored, acc + at,
                         depthwise_padded_channels(c)};
  if (a.kw == 3 && quads == 1) column_mac_pixels<O, 3, 1>(run);       // 3x3 (MobileNet, EfficientNet)
  else if (a.kw == 5 && quads == 2) column_mac_pixels<O, 5, 2>(run);  // 5x5 (EfficientNet)
  else if (a.kw == 7 && quads == 2) column_mac_pixels<O, 7, 2>(run);  // 7x7 (ConvNeXt)
  else column_mac_pixels<O, 0, 0>(run);
}

template <class Ops, class HalfOps = Ops>
void depthwise_column_rows(const DepthwiseArgs& a, int64_t row_begin, int64_t row_end) {
  using Vec = typename Ops::Vec;
  const DepthwiseWeights& w = *a.weights;
  if (w.layout() != DepthwiseLayout::ColumnQuads || w.block != Ops::kLanes || w.channels != a.channels ||
      w.kh != a.kh || w.kw != a.kw)
    throw std::invalid_argument("qext: depthwise weights packed for another path or shape");
  const int64_t c = a.channels, padded = depthwise_padded_channels(c), quads = w.row_quads();
  // Pixels per block (16 or 32 channels at stride 1): lane L of a block is
  // channel L % c of pixel x + L / c, so one load at column x reads them all.
  const int64_t group = w.pixels_per_block() > 1 && a.sw == 1 && a.ow >= w.pixels_per_block() ? w.pixels_per_block() : 1;
  const int64_t lanes = group * padded, blocks = (lanes + Ops::kLanes - 1) / Ops::kLanes;
  const int64_t columns = (a.ow - group) * a.sw + (a.kw - 1) * a.dw + 1;  // image columns the windows start in
  constexpr int64_t kVecWords = Ops::kLanes / 4;
  AlignedBuffer<int32_t> interleaved_words(static_cast<size_t>(columns * quads * 4 * kVecWords));
  auto* interleaved = reinterpret_cast<Vec*>(interleaved_words.data());
  // The block's weights, copied to aligned memory once per row and block:
  // the packed words are not vector-aligned (split loads doubled their
  // cost), and reading them in place even from 64-byte aligned, block-major
  // packing measured 10-20 % slower than this small copy.
  AlignedBuffer<int32_t> block_weights(static_cast<size_t>(w.tap_words() * Ops::kLanes));
  std::vector<int32_t> acc(static_cast<size_t>(a.ow * padded));
  const typename Ops::Requantizer requantize(a, w.sums.data(), padded);
  PaddedRows padded_rows(a, 4 * quads, columns, lanes);
  for (int64_t row = row_begin; row < row_end; ++row) {
    const ColumnSpans& spans = padded_rows.spans(row / a.oh, row % a.oh);
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t at = Ops::kLanes * b, stored = std::min<int64_t>(Ops::kLanes, lanes - at);
      if (stored <= HalfOps::kLanes && HalfOps::kLanes < Ops::kLanes) {
        column_block<HalfOps, Ops>(a, spans, at, stored, group, interleaved, block_weights.data(), acc.data());
      } else {
        column_block<Ops, Ops>(a, spans, at, stored, group, interleaved, block_weights.data(), acc.data());
      }
    }
    requantize(acc.data(), padded, row);
  }
}

}  // namespace qext::kernels::detail
