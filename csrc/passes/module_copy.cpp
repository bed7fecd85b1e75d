#include "passes/module_copy.h"

#include <torch/csrc/jit/serialization/import.h>

#include <sstream>

namespace qext::passes {

torch::jit::Module private_copy(const torch::jit::Module& module) {
  std::stringstream bytes;
  try {
    module.save(bytes);
  } catch (const std::exception&) {
    return module.clone();  // e.g. an attribute type the serializer does not know
  }
  return torch::jit::load(bytes);  // training flags travel as attributes
}

}  // namespace qext::passes
