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
#include <cstdio>

#include "avx2_chains.h"
#include "peak_probe.h"

int main() {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::puts("{\"error\": \"no AVX2 and FMA on this CPU\"}");
    return 1;
  }
  const long iters = 20'000'000;
  const double wide = best_seconds(avx2_seconds, iters), narrow = best_seconds(avx2_narrow_seconds, iters);
  const double paired = best_seconds(avx2_paired_seconds, iters), fma = best_seconds(fp32_fma_seconds, iters);
  std::printf("{\"avx2_peak_gops_1core\": %.1f, \"avx2_narrow_peak_gops_1core\": %.1f, "
              "\"avx2_paired_peak_gops_1core\": %.1f, \"fp32_fma_peak_gflops_1core\": %.1f}\n",
              kAvx2OpsPerIter * iters / wide / 1e9, kAvx2NarrowOpsPerIter * iters / narrow / 1e9,
              kAvx2PairedOpsPerIter * iters / paired / 1e9, kFp32FmaOpsPerIter * iters / fma / 1e9);
}
