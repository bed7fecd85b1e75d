// Copies of modules that the passes may rewrite.
#pragma once

#include <torch/csrc/jit/api/module.h>

namespace qext::passes {

// A deep copy of `module` in a CompilationUnit of its own. Module::clone()
// registers the copy's (mangled) class types in the source's unit -- for a
// model scripted in Python that is the global one -- where they stay for the
// life of the process: every quantize call leaked its graphs. This copy (a
// round trip through the serialized form) is freed with the last module that
// uses it. Falls back to clone() for a module that cannot be serialized.
torch::jit::Module private_copy(const torch::jit::Module& module);

}  // namespace qext::passes
