// AMX path (Intel Advanced Matrix Extensions, Sapphire Rapids and later;
// compiled with the AVX-512 VNNI flags plus -mamx-tile -mamx-int8; only called
// when CPUID reports AMX and the OS grants the tile state, see isa.cpp).
//
// One tdpbusd multiplies a 16-row x 64-byte tile of uint8 activations by a
// 64-k x 16-column tile of int8 weights into 16 x 16 int32 sums: u8 x s8
// products summed in int32, nothing saturates, so the sums are vpdpbusd's (and
// the reference's) bit for bit. The weights keep the AVX-512 VNNI block layout
// ([k/4][column][4 bytes]): a 16-column slice of a 64-column block *is* a B
// tile, read with the block's row stride. Their k groups are padded with zeros
// to whole tiles (16 groups) at pack time, and the activations are copied into
// a zero-padded panel per chunk of rows (implicit-im2col rows gathered there),
// so every tile load is whole and in bounds; a range's last tile is padded
// with zero rows (one pass over the weights: handing the leftover rows to
// another kernel streamed them twice, which doubled batch-1 deep layers).
// Calls with fewer than 16 rows, 32 columns or 64 k go to the VNNI kernel,
// which reads the same packed weights (there most of a tile would be padding).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/aligned_buffer.h"
#include "kernels/x86/avx512_epilogue.h"

namespace qext::kernels::detail {

namespace {

constexpr int64_t kTileRows = 16;            // rows of an activation / accumulator tile
constexpr int64_t kTileK = 64;               // bytes of k in an activation tile row
constexpr int64_t kPanelBytes = 256 * 1024;  // activations per row chunk: stays in L2
constexpr int64_t kWholeRowsBytes = 512 * 1024;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Palette 1, every tile 16 rows x 64 bytes (see tile_block).
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// The tile configuration is per thread: loaded for one qgemm call, released
// after it (so the thread's tile state is not kept alive between calls).
class TileScope {
 public:
  TileScope() {
    TileConfig cfg;
    for (int t = 0; t < 8; ++t) {
      cfg.colsb[t] = 64;
      cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
  }
  ~TileScope() { _tile_release(); }
  TileScope(const TileScope&) = delete;
  TileScope& operator=(const TileScope&) = delete;
};

// MT x NT accumulator tiles (MT 16-row activation tiles x NT 16-column slices
// of one weight block) over `steps` k steps of 64: C tile (i, j) is tile
// register 2i + j, activations 4 and 5, weights 6 and 7. Each k step loads
// MT + NT tiles for MT * NT products (2 x 2: one load per tdpbusd). `a` is the
// first activation row (panel rows kpad bytes apart), `wb` the block's first
// slice, `w_stride` its k-group stride; C tile (i, j) is stored at
// acc + i * 16 * 64 + j * 16 (row stride 64).
template <int MT, int NT>
void tile_block(const uint8_t* a, int64_t kpad, int64_t steps, const uint8_t* wb, int64_t w_stride,
                int32_t* acc) {
  _tile_zero(0);
  if constexpr (NT > 1) _tile_zero(1);
  if constexpr (MT > 1) _tile_zero(2);
  if constexpr (MT > 1 && NT > 1) _tile_zero(3);
  const int64_t a_rows16 = kTileRows * kpad, w_step = (kTileK / 4) * w_stride;
  for (int64_t s = 0; s < steps; ++s) {
    const uint8_t* as = a + s * kTileK;
    const uint8_t* ws = wb + s * w_step;
    _tile_loadd(4, as, kpad);
    _tile_loadd(6, ws, w_stride);
    _tile_dpbusd(0, 4, 6);
    if constexpr (NT > 1) {
      _tile_loadd(7, ws + 64, w_stride);
      _tile_dpbusd(1, 4, 7);
    }
    if constexpr (MT > 1) {
      _tile_loadd(5, as + a_rows16, kpad);
      _tile_dpbusd(2, 5, 6);
      if constexpr (NT > 1) _tile_dpbusd(3, 5, 7);
    }
  }
  constexpr int64_t stride = 64 * sizeof(int32_t);
  _tile_stored(0, acc, stride);
  if constexpr (NT > 1) _tile_stored(1, acc + 16, stride);
  if constexpr (MT > 1) _tile_stored(2, acc + 16 * 64, stride);
  if constexpr (MT > 1 && NT > 1) _tile_stored(3, acc + 16 * 64 + 16, stride);
}

using TileBlockFn = void (*)(const uint8_t*, int64_t, int64_t, const uint8_t*, int64_t, int32_t*);

TileBlockFn tile_block_for(int64_t mt, int64_t nt) {
  if (mt == 2) return nt == 2 ? tile_block<2, 2> : tile_block<2, 1>;
  return nt == 2 ? tile_block<1, 2> : tile_block<1, 1>;
}

// The first n (< 64) lanes of a byte mask.
inline __mmask64 first_bytes(int64_t n) { return (uint64_t{1} << n) - 1; }

// dst[0, n) = src[0, n): 64-byte steps and one masked tail, inline (conv
// windows are many short runs -- 7 x 24 bytes for a 7x7 stem -- where a
// memcpy call per run cost more than the tiles).
inline void copy_run(uint8_t* dst, const uint8_t* src, int64_t n) {
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) _mm512_storeu_si512(dst + i, _mm512_loadu_si512(src + i));
  if (i < n) {
    const __mmask64 mask = first_bytes(n - i);
    _mm512_mask_storeu_epi8(dst + i, mask, _mm512_maskz_loadu_epi8(mask, src + i));
  }
}

// Rows [m0, m0 + rows) of A (either addressing) into panel rows of kpad bytes,
// zero past k.
void pack_rows(const GemmArgs& args, int64_t k, int64_t m0, int64_t rows, int64_t kpad, uint8_t* panel) {
  const int64_t segments = args.a_rows ? args.a_segments : 1, run = k / segments;
  for (int64_t r = 0; r < rows; ++r) {
    const ARow row = a_row(args, m0 + r);
    uint8_t* dst = panel + r * kpad;
    for (int64_t s = 0; s < segments; ++s) copy_run(dst + s * run, row.run(s), run);
    _mm512_mask_storeu_epi8(dst + k, first_bytes(kpad - k), _mm512_setzero_si512());  // kpad - k < 64
  }
}

}  // namespace

void qgemm_amx(const GemmArgs& args, const PackedWeights& w, const Epilogue& ep, int64_t m_begin,
               int64_t m_end, int64_t block_begin, int64_t block_end) {
  // Tiles pay off from 16 rows, 32 columns and 64 k on (measured: narrower
  // or shorter products ran no faster than the VNNI kernel, or slower).
  const int64_t cols = std::min(w.n(), block_end * w.layout().block_cols) - block_begin * w.layout().block_cols;
  const bool tiles_pay = cols >= 2 * kVecCols && w.k() >= kTileK;
  const int64_t m = m_end - m_begin;
  if (!tiles_pay || m < kTileRows) return qgemm_avx512_vnni(args, w, ep, m_begin, m_end, block_begin, block_end);

  const int64_t k = w.k(), kpad = round_up(k, kTileK);
  // One chunk when all the rows fit in half of L2 (batch-1 deep layers: 49 x
  // 4608 bytes), so the weights (MBs there) stream once.
  const int64_t all_rows = round_up(m, kTileRows);
  const int64_t chunk = all_rows * kpad <= kWholeRowsBytes
                            ? all_rows
                            : std::min(all_rows, std::max(kTileRows, kPanelBytes / kpad / kTileRows * kTileRows));
  const AlignedBuffer<uint8_t> panel(static_cast<size_t>(chunk * kpad));
  const Quantizer16 quantize(ep.out_scale, ep.out_zero_point, 0, 255, ep.clamp_min, ep.clamp_max);
  SharedU8Columns columns;
  const int64_t bc = w.layout().block_cols;
  alignas(64) int32_t acc[2 * kTileRows * 64];
  const TileScope tiles;
  // Per row chunk (its panel in L2), every block of the range; each block's
  // weights stay in L1/L2 while the chunk's row tiles use them.
  for (int64_t c0 = m_begin; c0 < m_end; c0 += chunk) {
    const int64_t rows = std::min(chunk, m_end - c0);
    pack_rows(args, k, c0, rows, kpad, panel.data());
    std::memset(panel.data() + rows * kpad, 0, static_cast<size_t>((round_up(rows, kTileRows) - rows) * kpad));
    for (int64_t b = block_begin; b < block_end; ++b) {
      const int64_t n0 = b * bc, ncols = std::min(bc, w.n() - n0);
      const int64_t slices = (ncols + kVecCols - 1) / kVecCols, w_stride = slices * 64;
      for (int64_t r0 = 0; r0 < rows; r0 += 2 * kTileRows) {
        const int64_t tile_rows = std::min(2 * kTileRows, rows - r0), mt = (tile_rows + kTileRows - 1) / kTileRows;
        const uint8_t* a = panel.data() + r0 * kpad;
        for (int64_t j = 0; j < slices; j += 2) {
          const int64_t nt = std::min<int64_t>(2, slices - j);
          tile_block_for(mt, nt)(a, kpad, kpad / kTileK, w.block(b) + j * 64, w_stride, acc + j * 16);
        }
        store_rows(args, w, ep, quantize, c0 + r0, tile_rows, n0, ncols, acc, 64, &columns);
      }
    }
  }
}

}  // namespace qext::kernels::detail
