// Instruction-set paths of qext's int8 kernels, and run-time selection of one.
// Torch-free: this header is shared by the kernels, the ops and the tests.
#pragma once

#include <string>
#include <vector>

namespace qext::kernels {

// Every path computes the same int32 accumulators as Isa::Ref, bit for bit.
// Amx: Intel AMX tiles for the GEMM (tdpbusd), the AVX-512 VNNI kernels for
// the rest.
enum class Isa { Ref, Avx2, Avx512Vnni, Amx };

const char* isa_name(Isa isa);
// Parses "ref", "avx2", "avx512_vnni" or "amx"; throws std::invalid_argument otherwise.
Isa isa_from_name(const std::string& name);

// True when this CPU (and OS) can run the path.
bool cpu_supports(Isa isa);
// All paths this CPU can run, reference first.
std::vector<Isa> supported_isas();

// The path used for new packed weights and quantize kernels: the best one the
// CPU supports, unless QEXT_ISA names another (an unsupported one throws).
Isa active_isa();
// Forces a path for the rest of the process (throws if the CPU lacks it).
void set_active_isa(Isa isa);

}  // namespace qext::kernels
