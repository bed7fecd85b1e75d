// The instruction chains of qext's AVX2 GEMMs as timed asm loops, on one
// core with no memory traffic: shared by qext_avx2_peak (the peaks) and
// qext_gemm_fraction (the GEMM against its chain, in alternating rounds).
// Each function runs `iters` loops and returns the seconds taken; the
// k*OpsPerIter constants turn that into ops (1 MAC = 2 ops).
#pragma once

#include <chrono>

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

// Per iteration: 12 vpmaddwd x 16 int16 products, 12 vpmaddubsw x 32 byte
// products, 24 vpmaddubsw x 32, or 12 vfmadd231ps x 8; 2 ops each.
constexpr double kAvx2OpsPerIter = 12.0 * 16 * 2, kAvx2NarrowOpsPerIter = 12.0 * 32 * 2,
                 kAvx2PairedOpsPerIter = 24.0 * 32 * 2, kFp32FmaOpsPerIter = 12.0 * 8 * 2;
