// What a LibTorch user writes: load my_model.pt, run it, quantize it with qext,
// save it, reload it, and compare outputs and speed.
//
//   quantize_model IN.pt OUT.pt --input-shape 1,3,224,224 [--mode dynamic|static]
//                  [--calib CALIB.pt] [--exclude PATTERN]... [--per-tensor-activations]
//                  [--weight-bits 8|7|4|2|1 [--group-size G]] [--activation-bits 8|7]
//                  [--check-max-abs-error E]
//                  [--equalize] [--bias-correction]   (static: the accuracy tools)
// CALIB.pt (static mode): a list of input tensors saved from Python with
// torch.save([...], "calib.pt"), one calibration batch each, or one tensor
// (batches of 32 along its first dimension).
#include <torch/script.h>
#include <torch/serialize.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "qext/qext.h"

namespace {

struct Options {
  std::string input, output, mode = "dynamic", calib;
  std::vector<int64_t> shape;
  qext::DynamicConfig config;
  bool equalize = false, bias_correction = false;  // static mode
  double max_abs_error = -1.0;  // < 0: do not check
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "quantize_model: " << why << "\n"
            << "usage: quantize_model IN.pt OUT.pt --input-shape 1,3,224,224 [--mode dynamic|static]\n"
            << "       [--calib CALIB.pt] [--exclude PATTERN]... [--per-tensor-activations]\n"
            << "       [--weight-bits 8|7|4|2|1 [--group-size G]] [--activation-bits 8|7] [--check-max-abs-error E]\n"
            << "       [--equalize] [--bias-correction]\n";
  std::exit(2);
}

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v < 0) throw std::invalid_argument(item);
      shape.push_back(v);
    } catch (const std::exception&) {
      usage("bad --input-shape '" + text + "': expected comma-separated sizes like 1,3,224,224");
    }
  }
  if (shape.empty()) usage("--input-shape is empty");
  return shape;
}

double parse_number(const std::string& option, const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  usage("bad " + option + " '" + text + "': expected a number");
}

int64_t parse_integer(const std::string& option, const std::string& text) {
  const double v = parse_number(option, text);
  if (v != static_cast<double>(static_cast<int64_t>(v))) usage("bad " + option + " '" + text + "': expected an integer");
  return static_cast<int64_t>(v);
}

Options parse(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--input-shape") o.shape = parse_shape(value());
    else if (a == "--mode") o.mode = value();
    else if (a == "--calib") o.calib = value();
    else if (a == "--exclude") o.config.exclude.push_back(value());
    else if (a == "--per-tensor-activations") o.config.per_row_activations = false;
    else if (a == "--weight-bits") o.config.weight_bits = parse_integer(a, value());
    else if (a == "--group-size") o.config.group_size = parse_integer(a, value());
    else if (a == "--activation-bits") o.config.activation_bits = parse_integer(a, value());
    else if (a == "--check-max-abs-error") o.max_abs_error = parse_number(a, value());
    else if (a == "--equalize") o.equalize = true;
    else if (a == "--bias-correction") o.bias_correction = true;
    else if (a.rfind("--", 0) == 0) usage("unknown option " + a);
    else positional.push_back(a);
  }
  if (positional.size() != 2) usage("expected IN.pt and OUT.pt");
  if (o.shape.empty()) usage("--input-shape is required");
  if (o.mode != "dynamic" && o.mode != "static") usage("--mode must be dynamic or static");
  if (o.mode == "static" && o.calib.empty()) usage("--mode static needs --calib CALIB.pt");
  if (o.mode == "dynamic" && (o.equalize || o.bias_correction)) usage("--equalize and --bias-correction apply to --mode static");
  o.input = positional[0];
  o.output = positional[1];
  return o;
}

// The batches of a calibration file written by torch.save: a list of input
// tensors (or tuples of them), one batch each, or one tensor, split into
// batches of 32 along its first dimension (as `qext quantize` reads it).
std::vector<std::vector<torch::jit::IValue>> load_calibration(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read calibration file '" + path + "'");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const torch::jit::IValue data = torch::pickle_load(bytes);
  std::vector<std::vector<torch::jit::IValue>> batches;
  if (data.isTensor()) {
    const torch::Tensor all = data.toTensor();
    if (all.dim() == 0 || all.size(0) == 0) throw std::runtime_error("'" + path + "' holds an empty tensor");
    for (const torch::Tensor& batch : all.split(32)) batches.push_back({batch});
    return batches;
  }
  if (!data.isList()) throw std::runtime_error("'" + path + "' does not hold a list of tensors (or one tensor)");
  for (const torch::jit::IValue& item : data.toListRef()) {
    if (item.isTensor()) {
      batches.push_back({item});
    } else if (item.isTuple()) {
      const auto& e = item.toTupleRef().elements();
      batches.emplace_back(e.begin(), e.end());
    } else {
      throw std::runtime_error("'" + path + "': each item must be a tensor or a tuple of tensors");
    }
  }
  return batches;
}

double median_ms(torch::jit::Module& m, const std::vector<torch::jit::IValue>& inputs) {
  for (int i = 0; i < 3; ++i) m.forward(inputs);
  std::vector<double> times;
  for (int i = 0; i < 15; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    m.forward(inputs);
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  try {
    torch::NoGradGuard no_grad;
    torch::jit::Module model = qext::load(opt.input);
    model.eval();
    const std::vector<torch::jit::IValue> inputs{torch::ones(opt.shape)};
    const torch::Tensor expected = model.forward(inputs).toTensor();

    torch::jit::Module quantized;
    if (opt.mode == "static") {
      qext::StaticConfig config;
      config.exclude = opt.config.exclude;
      config.weight_bits = opt.config.weight_bits;  // static: 2..8, stored as int8
      config.activation_bits = opt.config.activation_bits;
      config.equalize = opt.equalize;
      config.bias_correction = opt.bias_correction;
      quantized = qext::quantize_static(model, load_calibration(opt.calib), config);
    } else {
      quantized = qext::quantize_dynamic(model, opt.config);
    }
    const qext::QuantizationReport report = qext::report(quantized);
    for (const auto& layer : report.layers) {
      std::printf("  %-40s %-7s %-6s %s", layer.name.c_str(), layer.kind.c_str(),
                  layer.status.c_str(), layer.reason.c_str());
      if (layer.scale && layer.zero_point) {
        std::printf("out scale %.4g zp %lld", *layer.scale, static_cast<long long>(*layer.zero_point));
      }
      if (layer.sqnr_db) std::printf(", SQNR %.1f dB", *layer.sqnr_db);
      std::printf("\n");
    }
    std::printf("%lld of %zu layers %s; weights %lld -> %lld bytes\n",
                static_cast<long long>(report.quantized()), report.layers.size(),
                opt.config.weight_bits == 8 || opt.mode == "static" ? "int8"
                                                                    : ("int" + std::to_string(opt.config.weight_bits)).c_str(),
                static_cast<long long>(report.bytes_before()), static_cast<long long>(report.bytes_after()));

    qext::save(quantized, opt.output);
    torch::jit::Module reloaded = qext::load(opt.output);
    const torch::Tensor got = reloaded.forward(inputs).toTensor();
    const double err = (got - expected).abs().max().item<double>();
    const double t_float = median_ms(model, inputs), t_int8 = median_ms(reloaded, inputs);
    std::printf("saved %s (kernel path %s)\n", opt.output.c_str(), qext::active_isa().c_str());
    std::printf("max abs error vs float: %.6g (float output max abs %.6g)\n", err,
                expected.abs().max().item<double>());
    std::printf("latency: float %.3f ms, int8 %.3f ms, %.2fx\n", t_float, t_int8, t_float / t_int8);
    if (opt.max_abs_error >= 0 && !(err <= opt.max_abs_error)) {
      std::fprintf(stderr, "quantize_model: max abs error %.6g exceeds %.6g\n", err, opt.max_abs_error);
      return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quantize_model: error: %s\n", qext::error_summary(e).c_str());
    return 1;
  }
  return 0;
}
