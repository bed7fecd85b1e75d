// Measures this CPU's AMX int8 peak on one core: four independent tdpbusd
// chains (tiles 0-3) on operand tiles already loaded (4, 5), no memory
// traffic. Prints GOP/s (1 MAC = 2 ops) as JSON, like the VNNI probe.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>

#include "peak_probe.h"

namespace {

struct alignas(64) TileConfig {
  uint8_t palette_id = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

double amx_seconds(long iters) {
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < iters; ++i) {
    _tile_dpbusd(0, 4, 5);
    _tile_dpbusd(1, 4, 5);
    _tile_dpbusd(2, 4, 5);
    _tile_dpbusd(3, 4, 5);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  __asm__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(0));
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (!((edx >> 25) & 1u) || syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
    std::puts("{\"error\": \"no usable AMX-INT8 on this CPU / OS\"}");
    return 1;
  }
  TileConfig cfg;
  for (int t = 0; t < 6; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  _tile_loadconfig(&cfg);
  static uint8_t zeros[16 * 64];
  _tile_loadd(4, zeros, 64);
  _tile_loadd(5, zeros, 64);
  const long iters = 2'000'000;
  const double best = best_seconds(amx_seconds, iters);
  _tile_release();
  // 4 instructions x (16 x 16 outputs x 64 products) x 2 ops per iteration.
  std::printf("{\"amx_peak_gops_1core\": %.1f}\n", 4.0 * iters * 16 * 16 * 64 * 2 / best / 1e9);
}
