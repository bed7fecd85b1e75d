// What the GEMMs that read activation rows in place (AVX-512 VNNI, AVX2
// narrow) share: 4-byte group loads and the row chunking. Plain C++, so
// files compiled for any x86 ISA include it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace qext::kernels::detail {

inline int32_t load_u32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The first `bytes` (< 4) of a group, zeros after: never reads past a row.
inline int32_t load_partial_u32(const uint8_t* p, int64_t bytes) {
  int32_t v = 0;
  std::memcpy(&v, p, static_cast<size_t>(bytes));
  return v;
}

// Rows per chunk: the chunk's activations stay in L2 while every weight
// block of the range streams past them. When all `rows` fit in 512 KB
// (batch-1 deep convs: 49 x 4608 bytes) one chunk takes them all, so the
// weights (MBs there) stream only once; otherwise ~64 KB of whole row tiles.
inline int64_t row_chunk(int64_t rows, int64_t k, int64_t tile_rows) {
  constexpr int64_t kChunkBytes = 64 * 1024, kWholeRowsBytes = 512 * 1024;
  k = std::max<int64_t>(k, 1);
  if (rows * k <= kWholeRowsBytes) return rows;
  return std::max<int64_t>(tile_rows, (kChunkBytes / k) / tile_rows * tile_rows);
}

}  // namespace qext::kernels::detail
