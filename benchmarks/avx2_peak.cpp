// Measures this CPU's peak for the instruction chain qext's AVX2 GEMM uses, on
// one core: vpmaddwd (int16 pairs -> int32, exact) + vpaddd, 12 pairs per
// loop into 8 accumulators through 6 temporaries; no memory traffic.
// Prints GOP/s (1 MAC = 2 ops) as JSON.
#include <chrono>
#include <cstdio>

#include "peak_probe.h"

#define QEXT_MADD_ADD(t, acc) "vpmaddwd %%ymm14, %%ymm15, %%ymm" #t "\n vpaddd %%ymm" #t ", %%ymm" #acc ", %%ymm" #acc "\n"

static double avx2_seconds(long iters) {
  const auto t0 = std::chrono::steady_clock::now();
  __asm__ volatile(
      "vpxor %%ymm14, %%ymm14, %%ymm14\n vpxor %%ymm15, %%ymm15, %%ymm15\n"
      "1:\n" QEXT_MADD_ADD(8, 0) QEXT_MADD_ADD(9, 1) QEXT_MADD_ADD(10, 2) QEXT_MADD_ADD(11, 3)
      QEXT_MADD_ADD(12, 4) QEXT_MADD_ADD(13, 5) QEXT_MADD_ADD(8, 6) QEXT_MADD_ADD(9, 7)
      QEXT_MADD_ADD(10, 0) QEXT_MADD_ADD(11, 1) QEXT_MADD_ADD(12, 2) QEXT_MADD_ADD(13, 3)
      "dec %0\n jnz 1b\n"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15", "cc");
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int main() {
  if (!__builtin_cpu_supports("avx2")) {
    std::puts("{\"error\": \"no AVX2 on this CPU\"}");
    return 1;
  }
  const long iters = 20'000'000;
  const double best = best_seconds(avx2_seconds, iters);
  // 12 vpmaddwd x 8 lanes x 2 int16 products x 2 ops per iteration.
  std::printf("{\"avx2_peak_gops_1core\": %.1f}\n", 12.0 * iters * 16 * 2 / best / 1e9);
}
