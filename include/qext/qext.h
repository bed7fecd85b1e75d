// qext's public C++ API. Link libqext (CMake: target qext) and include this.
#pragma once

#include <string>
#include <vector>

namespace qext {

// The library version, e.g. "0.1.0".
std::string version();

// The int8 kernel path in use: "ref", "avx2" or "avx512_vnni". The best path
// the CPU supports is chosen at start-up; the QEXT_ISA environment variable or
// set_isa() forces another (weights packed earlier keep their path).
std::string active_isa();
void set_isa(const std::string& name);
std::vector<std::string> supported_isas();

}  // namespace qext
