// A plain LibTorch program that runs a qext-quantized model: it calls no qext
// function, it only links libqext (which registers the qext ops and classes).
//
//   run_model MODEL.pt OUTPUT.pt --input-shape 2,64 [--input INPUT.pt]
// Writes the output tensor with torch::pickle_save (readable by torch.load).
#include <torch/script.h>
#include <torch/serialize.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 5 || std::string(argv[3]) != "--input-shape") {
    std::cerr << "usage: run_model MODEL.pt OUTPUT.pt --input-shape 2,64 [--input INPUT.pt]\n";
    return 2;
  }
  try {
    torch::NoGradGuard no_grad;
    std::vector<int64_t> shape;
    std::stringstream in(argv[4]);
    for (std::string item; std::getline(in, item, ',');) shape.push_back(std::stoll(item));
    torch::Tensor x = torch::ones(shape);
    if (argc == 7 && std::string(argv[5]) == "--input") {
      std::ifstream f(argv[6], std::ios::binary);
      const std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      x = torch::pickle_load(bytes).toTensor();
    }
    torch::jit::Module model = torch::jit::load(argv[1]);
    const torch::Tensor y = model.forward({x}).toTensor();
    const std::vector<char> out = torch::pickle_save(y);
    std::ofstream(argv[2], std::ios::binary).write(out.data(), static_cast<std::streamsize>(out.size()));
    std::cout << "ran " << argv[1] << ": output " << y.sizes() << "\n";
  } catch (const std::exception& e) {
    std::string what = e.what();
    std::cerr << "run_model: error: " << what.substr(0, what.find('\n')) << "\n";
    return 1;
  }
  return 0;
}
