#include "kernels/isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace qext::kernels {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Ref: return "ref";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512Vnni: return "avx512_vnni";
  }
  return "unknown";
}

Isa isa_from_name(const std::string& name) {
  for (Isa isa : {Isa::Ref, Isa::Avx2, Isa::Avx512Vnni}) {
    if (name == isa_name(isa)) return isa;
  }
  throw std::invalid_argument("qext: unknown ISA '" + name +
                              "'; expected one of ref, avx2, avx512_vnni");
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
    default: break;
  }
#endif
  return false;  // the x86 paths are not built on this architecture
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::Ref, Isa::Avx2, Isa::Avx512Vnni}) {
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
