#include "kernels/isa.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#if QEXT_HAVE_X86
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace qext::kernels {

namespace {

constexpr Isa kAllIsas[] = {Isa::Ref, Isa::Avx2, Isa::Avx512Vnni, Isa::Amx};

#if QEXT_HAVE_AMX
// AMX-TILE and AMX-INT8 in CPUID, the tile state enabled in XCR0, and (on
// Linux) the process's permission to use it, which must be asked for once
// (arch_prctl ARCH_REQ_XCOMP_PERM): without it the first tile instruction
// kills the process with SIGILL.
bool amx_usable() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool tile = (edx >> 24) & 1u, int8 = (edx >> 25) & 1u;
  if (!tile || !int8) return false;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !((ecx >> 27) & 1u)) return false;  // OSXSAVE
  uint32_t xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  constexpr uint32_t kTileCfgAndData = (1u << 17) | (1u << 18);
  if ((xcr0_lo & kTileCfgAndData) != kTileCfgAndData) return false;
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;  // no known way to ask for the tile state here
#endif
}
#endif

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Ref: return "ref";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512Vnni: return "avx512_vnni";
    case Isa::Amx: return "amx";
  }
  return "unknown";
}

Isa isa_from_name(const std::string& name) {
  for (Isa isa : kAllIsas) {
    if (name == isa_name(isa)) return isa;
  }
  throw std::invalid_argument("qext: unknown ISA '" + name +
                              "'; expected one of ref, avx2, avx512_vnni, amx");
}

bool cpu_supports(Isa isa) {
  if (isa == Isa::Ref) return true;
#if QEXT_HAVE_X86
  // __builtin_cpu_supports checks CPUID and that the OS saves the wide registers.
  switch (isa) {
    case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Avx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni");
    case Isa::Amx: {
#if QEXT_HAVE_AMX
      static const bool usable = cpu_supports(Isa::Avx512Vnni) && amx_usable();
      return usable;
#else
      return false;  // this compiler could not build the AMX kernel
#endif
    }
    default: break;
  }
#endif
  return false;  // the x86 paths are not built on this architecture
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAllIsas) {
    if (cpu_supports(isa)) out.push_back(isa);
  }
  return out;
}

namespace {

void check_supported(Isa isa) {
  if (!cpu_supports(isa)) {
    throw std::runtime_error(std::string("qext: ISA path '") + isa_name(isa) +
                             "' was requested but this CPU does not support it");
  }
}

Isa initial_isa() {
  if (const char* forced = std::getenv("QEXT_ISA"); forced && *forced) {
    Isa isa = isa_from_name(forced);
    check_supported(isa);
    return isa;
  }
  return supported_isas().back();
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}

}  // namespace

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) {
  check_supported(isa);
  active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace qext::kernels
