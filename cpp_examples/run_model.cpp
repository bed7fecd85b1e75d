// A plain LibTorch program that runs a qext-quantized model: it calls no qext
// function, it only links libqext (which registers the qext ops and classes).
//
//   run_model MODEL.pt OUTPUT.pt --input-shape 2,64 [--input INPUT.pt]
// Writes the output tensor with torch::pickle_save (readable by torch.load).
#include <torch/script.h>
#include <torch/serialize.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

// The first line of an error that says something: LibTorch's messages may
// start with a newline and end with a C++ backtrace.
std::string first_line(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::stringstream what(c10_error ? c10_error->what_without_backtrace() : e.what());
  for (std::string line; std::getline(what, line);) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) return line;
  }
  return "unknown error";
}

// Writes bytes to a temporary file beside `path`, then renames it into place.
void write_atomically(const std::string& path, const std::vector<char>& bytes) {
  const std::string tmp = path + ".partial-" + std::to_string(::getpid());
  std::ofstream out(tmp, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot write '" + path + "'");
  }
  std::filesystem::rename(tmp, path);
}

int main(int argc, char** argv) {
  if (argc < 5 || std::string(argv[3]) != "--input-shape") {
    std::cerr << "usage: run_model MODEL.pt OUTPUT.pt --input-shape 2,64 [--input INPUT.pt]\n";
    return 2;
  }
  try {
    torch::NoGradGuard no_grad;
    std::vector<int64_t> shape;
    std::stringstream in(argv[4]);
    for (std::string item; std::getline(in, item, ',');) {
      size_t used = 0;
      const long long v = std::stoll(item, &used);  // throws on a non-number
      if (used != item.size() || v < 0) throw std::invalid_argument("bad --input-shape '" + std::string(argv[4]) + "'");
      shape.push_back(v);
    }
    torch::Tensor x = torch::ones(shape);
    if (argc == 7 && std::string(argv[5]) == "--input") {
      std::ifstream f(argv[6], std::ios::binary);
      if (!f) throw std::runtime_error(std::string("cannot read input file '") + argv[6] + "'");
      const std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      const torch::IValue loaded = torch::pickle_load(bytes);
      if (!loaded.isTensor()) throw std::runtime_error(std::string("'") + argv[6] + "' does not hold one tensor");
      x = loaded.toTensor();
    }
    torch::jit::Module model = torch::jit::load(argv[1]);
    const torch::Tensor y = model.forward({x}).toTensor();
    write_atomically(argv[2], torch::pickle_save(y));
    std::cout << "ran " << argv[1] << ": output " << y.sizes() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "run_model: error: " << first_line(e) << "\n";
    return 1;
  }
  return 0;
}
