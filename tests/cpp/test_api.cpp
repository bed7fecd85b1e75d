// The public C++ API on modules defined in C++ (no Python involved).
#include <gtest/gtest.h>
#include <torch/script.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "qext/qext.h"

namespace {

// Two Linear-like layers via F.linear and a matmul with bias, plus control flow.
torch::jit::Module make_model() {
  torch::manual_seed(0);
  torch::jit::Module fc("Fc");
  fc.register_parameter("weight", torch::randn({64, 32}) / 6, false);
  fc.register_parameter("bias", torch::randn({64}), false);
  fc.define(R"(
    def forward(self, x):
        return torch.linear(x, self.weight, self.bias)
  )");
  torch::jit::Module m("Model");
  m.register_module("fc", fc);
  m.register_parameter("w2", torch::randn({64, 16}) / 8, false);
  m.register_parameter("b2", torch::randn({16}), false);
  m.define(R"(
    def forward(self, x):
        h = torch.relu(self.fc.forward(x))
        if bool(h.sum() > 1e9):
            h = h * 0.5
        return torch.matmul(h, self.w2) + self.b2
  )");
  return m;
}

double sqnr_db(const torch::Tensor& ref, const torch::Tensor& q) {
  return 10 * std::log10((ref.pow(2).mean() / (ref - q).pow(2).mean()).item<double>());
}

std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("qext_test_api_" + name);
}

}  // namespace

TEST(Api, QuantizeDynamicRewritesEveryLayerAndStaysAccurate) {
  torch::jit::Module model = make_model();
  const torch::Tensor x = torch::randn({10, 32});
  const torch::Tensor ref = model.forward({x}).toTensor();
  torch::jit::Module q = qext::quantize_dynamic(model);
  const auto report = qext::report(q);
  ASSERT_EQ(report.layers.size(), 2u);
  EXPECT_EQ(report.layers[0].name, "fc");
  EXPECT_EQ(report.layers[1].name, "w2");
  EXPECT_EQ(report.quantized(), 2);
  EXPECT_EQ(report.mode, "dynamic");
  EXPECT_GT(sqnr_db(ref, q.forward({x}).toTensor()), 30.0);
  // The input is untouched.
  EXPECT_TRUE(torch::equal(model.forward({x}).toTensor(), ref));
}

// Two Linears reading one input (attention's Q and K) run as one grouped call
// that quantizes the input once; a third on another input stays on its own.
TEST(Api, QuantizeDynamicGroupsLinearsThatShareAnInput) {
  torch::manual_seed(1);
  torch::jit::Module m("Siblings");
  m.register_parameter("wq", torch::randn({24, 32}) / 6, false);
  m.register_parameter("bq", torch::randn({24}), false);
  m.register_parameter("wk", torch::randn({24, 32}) / 6, false);
  m.register_parameter("wo", torch::randn({8, 24}) / 5, false);
  m.define(R"(
    def forward(self, x):
        return torch.linear(torch.linear(x, self.wq, self.bq) * torch.linear(x, self.wk, None), self.wo, None)
  )");
  const torch::Tensor x = torch::randn({5, 32});
  const torch::Tensor ref = m.forward({x}).toTensor();
  torch::jit::Module q = qext::quantize_dynamic(m);
  const auto count = [&](const char* kind) {
    const auto nodes = q.get_method("forward").graph()->nodes();
    return std::count_if(nodes.begin(), nodes.end(),
                         [&](const torch::jit::Node* n) { return n->kind() == c10::Symbol::fromQualString(kind); });
  };
  EXPECT_EQ(count("qext::linear_dynamic_group"), 1);
  EXPECT_EQ(count("qext::linear_dynamic"), 1);
  EXPECT_EQ(qext::report(q).quantized(), 3);
  const torch::Tensor got = q.forward({x}).toTensor();
  EXPECT_GT(sqnr_db(ref, got), 25.0);
  const auto path = temp_path("grouped.pt");
  qext::save(q, path.string());
  EXPECT_TRUE(torch::equal(qext::load(path.string()).forward({x}).toTensor(), got));
  std::filesystem::remove(path);
}

TEST(Api, ConfigExcludesByName) {
  qext::DynamicConfig cfg;
  cfg.exclude = {"w*"};
  const auto report = qext::report(qext::quantize_dynamic(make_model(), cfg));
  EXPECT_EQ(report.layers[1].status, "float");
  EXPECT_EQ(report.layers[1].reason, "excluded by pattern 'w*'");
  EXPECT_EQ(report.layers[0].status, "int8");
}

TEST(Api, SaveLoadRoundTripKeepsOutputsAndReport) {
  torch::jit::Module q = qext::quantize_dynamic(make_model());
  const torch::Tensor x = torch::randn({3, 32});
  const auto path = temp_path("roundtrip.pt");
  qext::save(q, path.string());
  torch::jit::Module back = qext::load(path.string());
  EXPECT_TRUE(torch::equal(back.forward({x}).toTensor(), q.forward({x}).toTensor()));
  EXPECT_EQ(qext::report(back).quantized(), 2);
  std::filesystem::remove(path);
}

TEST(Api, ClearErrorsForBadFiles) {
  const auto junk = temp_path("junk.pt");
  std::ofstream(junk) << "not a model";
  EXPECT_THROW(
      {
        try {
          qext::load(junk.string());
        } catch (const std::runtime_error& e) {
          EXPECT_NE(std::string(e.what()).find("not a readable TorchScript model"), std::string::npos);
          throw;
        }
      },
      std::runtime_error);
  EXPECT_THROW(qext::load(temp_path("missing.pt").string()), std::runtime_error);
  EXPECT_THROW(qext::save(make_model(), "/nonexistent-dir/q.pt"), std::runtime_error);
  std::filesystem::remove(junk);
}

TEST(Api, IsaControl) {
  const auto isas = qext::supported_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), "ref");
  EXPECT_THROW(qext::set_isa("sse9"), std::invalid_argument);
  EXPECT_FALSE(qext::version().empty());
}

// qext::add_int8 of a with itself: a uint8 output of a's size from qext's pool.
torch::Tensor add_bytes(const torch::Tensor& a) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("qext::add_int8", "")
                             .typed<at::Tensor(const at::Tensor&, double, int64_t, const at::Tensor&, double, int64_t,
                                               double, int64_t, bool)>();
  return op.call(a, 0.1, 3, a, 0.1, 3, 0.2, 5, false);
}

// Blocks of freed op outputs stay for the next tensors of their size until
// release_memory_pool() hands them back.
TEST(Api, MemoryPoolKeepsAndReleasesBlocks) {
  const torch::Tensor a = torch::randint(0, 256, {300000}, torch::kUInt8);
  qext::release_memory_pool();
  EXPECT_EQ(qext::memory_pool_bytes(), 0);
  torch::Tensor out = add_bytes(a);
  const void* block = out.data_ptr();
  out.reset();
  EXPECT_GE(qext::memory_pool_bytes(), 300000);
  EXPECT_EQ(add_bytes(a).data_ptr(), block);
  qext::release_memory_pool();
  EXPECT_EQ(qext::memory_pool_bytes(), 0);
}

#if defined(__SANITIZE_ADDRESS__)
// Under AddressSanitizer (scripts/sanitize.sh) a pooled block stays checked:
// writing past a tensor's end, or into it after it was freed, reports.
TEST(ApiDeathTest, PooledTensorsStayCheckedByAddressSanitizer) {
  const torch::Tensor a = torch::randint(0, 256, {300000}, torch::kUInt8);
  torch::Tensor out = add_bytes(a);
  volatile uint8_t* bytes = out.data_ptr<uint8_t>();
  EXPECT_DEATH(bytes[300000] = 1, "use-after-poison");
  out.reset();
  EXPECT_DEATH(bytes[0] = 1, "use-after-poison");
}
#endif

// conv -> relu -> conv + residual add -> linear, defined in TorchScript here.
torch::jit::Module make_conv_model() {
  torch::manual_seed(0);
  torch::jit::Module m("ConvModel");
  m.register_parameter("w1", torch::randn({8, 3, 3, 3}) / 4, false);
  m.register_parameter("b1", torch::randn({8}) / 4, false);
  m.register_parameter("w2", torch::randn({8, 8, 3, 3}) / 8, false);
  m.register_parameter("fc", torch::randn({10, 8 * 8 * 8}) / 20, false);
  m.define(R"(
    def forward(self, x):
        h = torch.relu(torch.conv2d(x, self.w1, self.b1, [1, 1], [1, 1]))
        h = h + torch.conv2d(h, self.w2, None, [1, 1], [1, 1])
        return torch.linear(torch.flatten(h, 1), self.fc)
  )");
  return m;
}

TEST(Api, QuantizeStaticReportsQParamsAndSqnr) {
  torch::jit::Module model = make_conv_model();
  std::vector<std::vector<c10::IValue>> calib;
  for (int i = 0; i < 4; ++i) calib.push_back({torch::randn({4, 3, 8, 8})});
  torch::jit::Module q = qext::quantize_static(model, calib);
  const auto report = qext::report(q);
  ASSERT_EQ(report.layers.size(), 4u);  // w1, w2, add@0, fc
  EXPECT_EQ(report.quantized(), 4);
  for (const auto& layer : report.layers) {
    ASSERT_TRUE(layer.scale && layer.zero_point && layer.sqnr_db) << layer.name;
    EXPECT_GT(*layer.scale, 0.0);
    EXPECT_GT(*layer.sqnr_db, 20.0) << layer.name;
    EXPECT_LT(*layer.sqnr_db, 60.0) << layer.name;
  }
  // The last layer's output is the model's: same SQNR measured directly.
  torch::Tensor ref, out;
  for (const auto& batch : calib) {
    ref = ref.defined() ? torch::cat({ref, model.forward(batch).toTensor()}) : model.forward(batch).toTensor();
    out = out.defined() ? torch::cat({out, q.forward(batch).toTensor()}) : q.forward(batch).toTensor();
  }
  EXPECT_NEAR(*report.layers.back().sqnr_db, sqnr_db(ref, out), 0.01);
}

// A stream of batches through Calibrator gives quantize_static's module and
// report; misuse is an error that says what is wrong.
TEST(Api, CalibratorStreamsBatchesLikeQuantizeStatic) {
  torch::jit::Module model = make_conv_model();
  std::vector<std::vector<c10::IValue>> calib;
  for (int i = 0; i < 4; ++i) calib.push_back({torch::randn({4, 3, 8, 8})});
  torch::jit::Module whole = qext::quantize_static(model, calib);
  qext::Calibrator calibrator(qext::prepare_static(model));
  EXPECT_THROW(calibrator.convert(), c10::Error);  // nothing added yet
  for (const auto& batch : calib) calibrator.add(batch);
  EXPECT_EQ(calibrator.batches(), 4);
  torch::jit::Module streamed = calibrator.convert();
  const torch::Tensor x = torch::randn({2, 3, 8, 8});
  EXPECT_TRUE(torch::equal(whole.forward({x}).toTensor(), streamed.forward({x}).toTensor()));
  const auto a = qext::report(whole).layers, b = qext::report(streamed).layers;
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].sqnr_db, b[i].sqnr_db) << a[i].name;

  EXPECT_THROW(qext::Calibrator{make_conv_model()}, c10::Error);  // not prepared
  try {
    calibrator.add({torch::randn({4, 5, 8, 8})});  // wrong channel count: batch 4 of the stream
    FAIL() << "a batch the model cannot run must throw";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("calibration batch 4 failed"), std::string::npos) << e.what();
  }
}

// The accuracy budget keeps the least accurate int8 layer (lowest SQNR) float,
// one per round, and leaves the prepared module's own settings as they were.
TEST(Api, AccuracyAwareConversionKeepsTheLeastAccurateLayerFloat) {
  torch::jit::Module model = make_conv_model();
  std::vector<std::vector<c10::IValue>> calib;
  for (int i = 0; i < 4; ++i) calib.push_back({torch::randn({4, 3, 8, 8})});
  const torch::Tensor held_out = torch::randn({8, 3, 8, 8});
  const torch::Tensor ref = model.forward({held_out}).toTensor();
  const auto metric = [&](torch::jit::Module m) {
    return -((m.forward({held_out}).toTensor() - ref).norm() / ref.norm()).item<double>();
  };
  qext::Calibrator calibrator(qext::prepare_static(model));
  for (const auto& batch : calib) calibrator.add(batch);
  const auto plain = qext::report(calibrator.convert()).layers;
  const auto worst = std::min_element(plain.begin(), plain.end(), [](const auto& l, const auto& r) {
    return *l.sqnr_db < *r.sqnr_db;
  });
  // A budget nothing meets, capped at one layer kept float.
  const auto capped = qext::report(calibrator.convert_within(metric, metric(model), 0.0, 1)).layers;
  int excluded = 0;
  for (const auto& l : capped) {
    if (l.status != "float") continue;
    ++excluded;
    EXPECT_EQ(l.name, worst->name);
  }
  EXPECT_EQ(excluded, 1);
  EXPECT_EQ(qext::report(calibrator.convert()).quantized(), static_cast<int64_t>(plain.size()));  // restored
  // A budget the plain int8 model meets changes nothing.
  const torch::jit::Module q = qext::quantize_static_accuracy_aware(model, calib, metric, 1.0);
  EXPECT_EQ(qext::report(q).quantized(), static_cast<int64_t>(plain.size()));
}

// conv -> relu -> conv -> linear with output channels scaled over three decades.
TEST(Api, StaticAccuracyToolsKeepTheFloatFunction) {
  torch::manual_seed(0);
  torch::jit::Module m("Pair");
  m.register_parameter("w1", torch::randn({8, 3, 3, 3}) * torch::logspace(-2, 1, 8).view({8, 1, 1, 1}), false);
  m.register_parameter("b1", torch::rand({8}), false);
  m.register_parameter("w2", torch::randn({4, 8, 3, 3}) / 8, false);
  m.register_parameter("fc", torch::randn({10, 4 * 8 * 8}) / 20, false);
  m.define(R"(
    def forward(self, x):
        h = torch.relu(torch.conv2d(x, self.w1, self.b1, [1, 1], [1, 1]))
        h = torch.conv2d(h, self.w2, None, [1, 1], [1, 1])
        return torch.linear(torch.flatten(h, 1), self.fc)
  )");
  qext::StaticConfig config;
  config.equalize = true;
  config.bias_correction = true;
  torch::jit::Module prepared = qext::prepare_static(m, config);
  const torch::Tensor x = torch::randn({4, 3, 8, 8});
  const torch::Tensor ref = m.forward({x}).toTensor();
  // Equalized weights, same function (observers and channel sums only watch).
  EXPECT_TRUE(torch::allclose(prepared.forward({x}).toTensor(), ref, 1e-4, 1e-5 * ref.abs().max().item<double>()));
  std::vector<std::vector<c10::IValue>> calib;
  for (int i = 0; i < 4; ++i) calib.push_back({torch::randn({4, 3, 8, 8})});
  torch::jit::Module q = qext::quantize_static(m, calib, config);
  EXPECT_EQ(qext::report(q).quantized(), 3);
  const auto metadata = q.attr("_qext_metadata").toGenericDict();
  EXPECT_EQ(metadata.at("equalized_pairs").toStringRef(), "1");
  EXPECT_EQ(metadata.at("bias_correction").toStringRef(), "true");
  EXPECT_GT(sqnr_db(ref, q.forward({x}).toTensor()), 25.0);
}
