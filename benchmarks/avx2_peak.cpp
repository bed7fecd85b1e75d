// Measures this CPU's peak for the instruction chains of qext's AVX2 GEMMs,
// on one core, with no memory traffic; prints GOP/s (1 MAC = 2 ops) as JSON.
//   avx2: vpmaddwd (int16 pairs -> int32, exact) + vpaddd, 12 pairs per loop
//         into 8 accumulators through 6 temporaries (any int8 weights);
//   avx2_narrow: vpmaddubsw (u8 x s8 pairs -> int16) + vpmaddwd by ones +
//         vpaddd, 12 per loop likewise (weights within +-64, where the int16
//         pair sums are exact);
//   avx2_paired: two vpmaddubsw + vpaddw + vpmaddwd by ones + vpaddd, 12 per
//         loop (activations within 127 too: two k groups per widening);
//   fp32_fma: vfmadd231ps into 12 accumulators, 12 per loop: what float
//         convolutions and matmuls run at, the ceiling int8 is compared with
//         (int8 beats float by at most the ratio of the two peaks, plus what
//         moving 4x fewer bytes saves).
#include <chrono>
#include <cstdio>

#include "peak_probe.h"

#define QEXT_MADD_ADD(t, acc) "vpmaddwd %%ymm14, %%ymm15, %%ymm" #t "\n vpaddd %%ymm" #t ", %%ymm" #acc ", %%ymm" #acc "\n"

#define QEXT_MADDUBS_MADD_ADD(t, acc)                                                           \
  "vpmaddubsw %%ymm14, %%ymm15, %%ymm" #t "\n vpmaddwd %%ymm13, %%ymm" #t ", %%ymm" #t "\n vpaddd %%ymm" #t \
  ", %%ymm" #acc ", %%ymm" #acc "\n"

#define QEXT_FMA(acc) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #acc "\n"

#define QEXT_PAIRED(t, u, acc)                                                                              \
  "vpmaddubsw %%ymm14, %%ymm15, %%ymm" #t "\n vpmaddubsw %%ymm14, %%ymm15, %%ymm" #u "\n vpaddw %%ymm" #u      \
  ", %%ymm" #t ", %%ymm" #t "\n vpmaddwd %%ymm13, %%ymm" #t ", %%ymm" #t "\n vpaddd %%ymm" #t ", %%ymm" #acc      \
  ", %%ymm" #acc "\n"

static double avx2_paired_seconds(long iters) {
  const auto t0 = std::chrono::steady_clock::now();
  __asm__ volatile(
      "vpxor %%ymm14, %%ymm14, %%ymm14\n vpxor %%ymm15, %%ymm15, %%ymm15\n vpxor %%ymm13, %%ymm13, %%ymm13\n"
      "1:\n" QEXT_PAIRED(8, 9, 0) QEXT_PAIRED(10, 11, 1) QEXT_PAIRED(12, 8, 2) QEXT_PAIRED(9, 10, 3)
      QEXT_PAIRED(11, 12, 4) QEXT_PAIRED(8, 9, 5) QEXT_PAIRED(10, 11, 6) QEXT_PAIRED(12, 8, 7)
      QEXT_PAIRED(9, 10, 0) QEXT_PAIRED(11, 12, 1) QEXT_PAIRED(8, 9, 2) QEXT_PAIRED(10, 11, 3)
      "dec %0\n jnz 1b\n"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15", "cc");
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

static double avx2_narrow_seconds(long iters) {
  const auto t0 = std::chrono::steady_clock::now();
  __asm__ volatile(
      "vpxor %%ymm14, %%ymm14, %%ymm14\n vpxor %%ymm15, %%ymm15, %%ymm15\n vpxor %%ymm13, %%ymm13, %%ymm13\n"
      "1:\n" QEXT_MADDUBS_MADD_ADD(8, 0) QEXT_MADDUBS_MADD_ADD(9, 1) QEXT_MADDUBS_MADD_ADD(10, 2)
      QEXT_MADDUBS_MADD_ADD(11, 3) QEXT_MADDUBS_MADD_ADD(12, 4) QEXT_MADDUBS_MADD_ADD(8, 5)
      QEXT_MADDUBS_MADD_ADD(9, 6) QEXT_MADDUBS_MADD_ADD(10, 7) QEXT_MADDUBS_MADD_ADD(11, 0)
      QEXT_MADDUBS_MADD_ADD(12, 1) QEXT_MADDUBS_MADD_ADD(8, 2) QEXT_MADDUBS_MADD_ADD(9, 3)
      "dec %0\n jnz 1b\n"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15", "cc");
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

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

static double fp32_fma_seconds(long iters) {
  const auto t0 = std::chrono::steady_clock::now();
  __asm__ volatile(
      "vxorps %%ymm14, %%ymm14, %%ymm14\n vxorps %%ymm15, %%ymm15, %%ymm15\n"
      "1:\n" QEXT_FMA(0) QEXT_FMA(1) QEXT_FMA(2) QEXT_FMA(3) QEXT_FMA(4) QEXT_FMA(5) QEXT_FMA(6) QEXT_FMA(7)
      QEXT_FMA(8) QEXT_FMA(9) QEXT_FMA(10) QEXT_FMA(11)
      "dec %0\n jnz 1b\n"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm14", "xmm15", "cc");
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int main() {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::puts("{\"error\": \"no AVX2 and FMA on this CPU\"}");
    return 1;
  }
  const long iters = 20'000'000;
  const double wide = best_seconds(avx2_seconds, iters), narrow = best_seconds(avx2_narrow_seconds, iters);
  const double paired = best_seconds(avx2_paired_seconds, iters), fma = best_seconds(fp32_fma_seconds, iters);
  // Per iteration: 12 vpmaddwd x 16 int16 products, 12 vpmaddubsw x 32 byte
  // products, 24 vpmaddubsw x 32, or 12 vfmadd231ps x 8; 2 ops each.
  std::printf("{\"avx2_peak_gops_1core\": %.1f, \"avx2_narrow_peak_gops_1core\": %.1f, "
              "\"avx2_paired_peak_gops_1core\": %.1f, \"fp32_fma_peak_gflops_1core\": %.1f}\n",
              12.0 * iters * 16 * 2 / wide / 1e9, 12.0 * iters * 32 * 2 / narrow / 1e9,
              24.0 * iters * 32 * 2 / paired / 1e9, 12.0 * iters * 8 * 2 / fma / 1e9);
}
