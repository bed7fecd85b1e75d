// Measures this CPU's int8 VNNI peak on one core: 16 independent vpdpbusd chains
// on zmm registers, no memory traffic. Prints GOP/s (1 MAC = 2 ops) as JSON.
#include <chrono>
#include <cstdio>

#include "peak_probe.h"

static double vnni_gops(long iters) {
  const auto t0 = std::chrono::steady_clock::now();
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n"
      "1:\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm0\n vpdpbusd %%zmm30, %%zmm31, %%zmm1\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm2\n vpdpbusd %%zmm30, %%zmm31, %%zmm3\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm4\n vpdpbusd %%zmm30, %%zmm31, %%zmm5\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm6\n vpdpbusd %%zmm30, %%zmm31, %%zmm7\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm8\n vpdpbusd %%zmm30, %%zmm31, %%zmm9\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm10\n vpdpbusd %%zmm30, %%zmm31, %%zmm11\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm12\n vpdpbusd %%zmm30, %%zmm31, %%zmm13\n"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm14\n vpdpbusd %%zmm30, %%zmm31, %%zmm15\n"
      "dec %0\n jnz 1b\n"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

int main() {
  if (!__builtin_cpu_supports("avx512vnni")) {
    std::puts("{\"error\": \"no AVX-512 VNNI on this CPU\"}");
    return 1;
  }
  const long iters = 20'000'000;
  const double best = best_seconds(vnni_gops, iters);
  // 16 instructions x 64 u8*s8 products x 2 ops per iteration.
  std::printf("{\"vnni_peak_gops_1core\": %.1f}\n", 16.0 * iters * 64 * 2 / best / 1e9);
}
