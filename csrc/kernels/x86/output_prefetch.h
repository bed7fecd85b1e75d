// Output prefetch for the GEMMs that store C tile by tile. A large int32 or
// float output (MBs: a 4096-token FFN) misses on every line the epilogue
// writes, and the core stalls on those stores; asking for the next tile's
// lines while this one multiplies hides that. Measured on a Zen 3 core
// (AVX2 byte kernel): 1.07-1.25x at M = 4096, K = 32..768; neutral to 5 %
// slower where the output fits in L2 or is uint8 (short-K convs), so those
// skip it. Plain C++, so files compiled for any x86 ISA include it.
#pragma once

#include <cstdint>

#include "kernels/qgemm.h"

namespace qext::kernels::detail {

// Whether a call writing `rows` x `cols` outputs should prefetch them: 4-byte
// outputs past L2's size.
inline bool prefetch_pays(const Epilogue& ep, int64_t rows, int64_t cols) {
  constexpr int64_t kL2Bytes = 1 << 20;
  return ep.output != Epilogue::Output::Uint8 && rows * cols * 4 > kL2Bytes;
}

// Rows [m_begin, m_end) of C's columns [n0, n0 + ncols), for writing.
inline void prefetch_output_rows(const GemmArgs& args, const Epilogue& ep, int64_t m_begin, int64_t m_end,
                                 int64_t n0, int64_t ncols) {
  constexpr int64_t kLine = 64;
  const int64_t bytes = ep.output == Epilogue::Output::Uint8 ? 1 : 4;
  for (int64_t m = m_begin; m < m_end; ++m) {
    const auto first = reinterpret_cast<uintptr_t>(static_cast<const char*>(args.c) + (m * args.ldc + n0) * bytes);
    const uintptr_t last = first + static_cast<uintptr_t>(ncols * bytes) - 1;
    for (uintptr_t line = first & ~uintptr_t{kLine - 1}; line <= last; line += kLine)
      __builtin_prefetch(reinterpret_cast<const void*>(line), /*rw=*/1, /*locality=*/3);
  }
}

}  // namespace qext::kernels::detail
