#include <torch/csrc/jit/serialization/import.h>

#include <filesystem>

#include "api/atomic_file.h"
#include "qext/qext.h"

namespace qext {

namespace fs = std::filesystem;

void save(const torch::jit::Module& module, const std::string& path) {
  api::write_file_atomically(path, [&](std::ostream& out) { module.save(out); });
}

torch::jit::Module load(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw std::runtime_error("qext::load: no such file: '" + path + "'");
  if (fs::is_directory(path, ec)) throw std::runtime_error("qext::load: '" + path + "' is a folder, not a model file");
  try {
    return torch::jit::load(path);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    what = what.substr(0, what.find('\n'));
    throw std::runtime_error("qext::load: '" + path +
                             "' is not a readable TorchScript model (corrupt, truncated, or not "
                             "saved with torch.jit.save): " + what);
  }
}

}  // namespace qext
