#include <torch/csrc/jit/serialization/import.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "qext/qext.h"

namespace qext {

namespace fs = std::filesystem;

void save(const torch::jit::Module& module, const std::string& path) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(dir)) {
    throw std::runtime_error("qext::save: cannot write '" + path + "': folder '" + dir.string() +
                             "' does not exist");
  }
  if (fs::is_directory(target)) {
    throw std::runtime_error("qext::save: cannot write '" + path + "': it is a folder");
  }
  // Write beside the target, then rename: readers never see a partial file.
  const fs::path tmp = dir / ("." + target.filename().string() + ".qext-tmp-" + std::to_string(::getpid()));
  {
    std::ofstream probe(tmp, std::ios::binary);
    if (!probe) {
      throw std::runtime_error("qext::save: cannot write '" + path + "': " + std::strerror(errno));
    }
  }
  try {
    module.save(tmp.string());
    fs::rename(tmp, target);
  } catch (const std::exception& e) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw std::runtime_error("qext::save: writing '" + path + "' failed: " + e.what());
  }
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
