// qext::linalg and its two device paths. CUDA is not needed to test the CUDA
// path's arithmetic: the ATen composition behind it (at::_int_mm and the
// zero-point corrections, the quantize rule in ATen ops) runs on CPU tensors
// too, and must give the kernels' integers exactly.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <tuple>

#include "ops/device_quantize.h"
#include "ops/linear_dynamic.h"
#include "ops/qmatmul.h"
#include "qext/linalg.h"
#include "qext/qext.h"
#include "quant/tensor_quant.h"

namespace {

namespace ql = qext::linalg;

// sum_k (a - za)(b - zb) in int64, the definition.
torch::Tensor reference(const torch::Tensor& a, const torch::Tensor& za, const torch::Tensor& b,
                        const torch::Tensor& zb) {
  const auto a64 = a.to(torch::kLong) - za.to(torch::kLong).reshape({-1, 1});
  const auto b64 = b.to(torch::kLong) - zb.to(torch::kLong).reshape({1, -1});
  return torch::matmul(a64, b64);
}

torch::Tensor random_operand(torch::ScalarType dtype, int64_t rows, int64_t cols) {
  const int64_t lo = dtype == torch::kByte ? 0 : -128;
  // Extreme values on purpose: every other row at the range's ends.
  auto t = torch::randint(lo, lo + 256, {rows, cols}, torch::kLong);
  if (rows > 1) t.index_put_({0}, lo + 255);
  if (rows > 2) t.index_put_({1}, lo);
  return t.to(dtype);
}

torch::Tensor zero_points(torch::ScalarType dtype, int64_t count, bool per_axis) {
  const int64_t lo = dtype == torch::kByte ? 0 : -128;
  if (!per_axis) return torch::tensor(lo + 255, torch::kInt);  // an extreme one
  return torch::randint(lo, lo + 256, {count}, torch::kInt);
}

class QMatmulPaths : public ::testing::TestWithParam<std::tuple<torch::ScalarType, torch::ScalarType, bool>> {};

TEST_P(QMatmulPaths, KernelsAndAtenPathGiveTheDefinitionsIntegers) {
  const auto [adt, bdt, per_axis] = GetParam();
  torch::manual_seed(3);
  for (const auto& isa : qext::supported_isas()) {
    qext::set_isa(isa);
    for (const auto& [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 7, 5}, {17, 33, 65},
                                  {40, 300, 24}, {9, 1030, 3}}) {
      const auto a = random_operand(adt, m, k), b = random_operand(bdt, k, n);
      const auto za = zero_points(adt, m, per_axis), zb = zero_points(bdt, n, per_axis);
      const auto want = reference(a, za, b, zb);
      const auto cpu = qext::ops::qmatmul_int32(a, za, b, zb);
      const auto aten = qext::ops::qmatmul_int32_aten(a, za, b, zb);
      ASSERT_EQ(cpu.scalar_type(), torch::kInt);
      EXPECT_TRUE(torch::equal(cpu.to(torch::kLong), want)) << isa << " " << m << "x" << k << "x" << n;
      EXPECT_TRUE(torch::equal(aten, cpu)) << isa << " " << m << "x" << k << "x" << n;
    }
  }
  qext::set_isa(qext::supported_isas().back());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, QMatmulPaths,
                         ::testing::Combine(::testing::Values(torch::kByte, torch::kChar),
                                            ::testing::Values(torch::kByte, torch::kChar), ::testing::Bool()));

TEST(QMatmul, BatchedSharedAndPerBatchOperands) {
  torch::manual_seed(4);
  const auto a = torch::randint(0, 256, {2, 3, 6, 40}, torch::kByte);
  const auto b_shared = torch::randint(-128, 128, {40, 9}, torch::kChar);
  const auto b_batched = torch::randint(-128, 128, {2, 3, 40, 9}, torch::kChar);
  const auto za = torch::tensor(17, torch::kInt), zb = torch::tensor(-5, torch::kInt);
  for (const auto& b : {b_shared, b_batched}) {
    const auto got = qext::ops::qmatmul_int32(a, za, b, zb);
    const auto aten = qext::ops::qmatmul_int32_aten(a, za, b, zb);
    const auto want = torch::matmul(a.to(torch::kLong) - 17, b.to(torch::kLong) + 5);
    EXPECT_TRUE(torch::equal(got.to(torch::kLong), want));
    EXPECT_TRUE(torch::equal(aten, got));
  }
}

TEST(QMatmul, EmptyOperandsGiveEmptyOrZeroProducts) {
  const auto z = torch::tensor(3, torch::kInt);
  for (const auto& [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{0, 4, 3}, {2, 0, 3}, {2, 4, 0}}) {
    const auto a = torch::zeros({m, k}, torch::kByte), b = torch::ones({k, n}, torch::kChar);
    for (const auto& got : {qext::ops::qmatmul_int32(a, z, b, z), qext::ops::qmatmul_int32_aten(a, z, b, z)}) {
      EXPECT_EQ(got.sizes(), (std::vector<int64_t>{m, n}));
      EXPECT_EQ(got.count_nonzero().item<int64_t>(), 0);
    }
  }
}

TEST(QMatmul, RefusesWhatItCannotDoExactly) {
  const auto a = torch::zeros({2, 4}, torch::kByte), b = torch::zeros({4, 3}, torch::kChar);
  const auto z = torch::tensor(0, torch::kInt);
  EXPECT_THROW(qext::ops::qmatmul_int32(a.to(torch::kFloat), z, b, z), c10::Error);
  EXPECT_THROW(qext::ops::qmatmul_int32(a, z, torch::zeros({5, 3}, torch::kChar), z), c10::Error);
  EXPECT_THROW(qext::ops::qmatmul_int32(a, torch::tensor(300), b, z), c10::Error);  // zp outside uint8
  EXPECT_THROW(qext::ops::qmatmul_int32(a, torch::zeros({3}, torch::kInt), b, z), c10::Error);
  const int64_t too_long = qext::ops::kMaxExactMatmulK + 1;
  EXPECT_THROW(qext::ops::qmatmul_int32(torch::zeros({1, too_long}, torch::kByte), z,
                                        torch::zeros({too_long, 1}, torch::kChar), z),
               c10::Error);
}

TEST(DeviceQuantize, AtenRuleMatchesTheKernelsBitForBit) {
  torch::manual_seed(5);
  auto x = torch::randn({7, 33}) * 4;
  x.index_put_({0, 0}, std::numeric_limits<float>::quiet_NaN());
  x.index_put_({0, 1}, std::numeric_limits<float>::infinity());
  x.index_put_({0, 2}, -std::numeric_limits<float>::infinity());
  x.index_put_({1, 0}, 0.5f * 0.05f);  // a tie: rounds to even
  for (const auto& [qmin, qmax] : {std::pair<int64_t, int64_t>{0, 255}, {-128, 127}, {-8, 7}}) {
    for (const std::optional<int64_t> axis : {std::optional<int64_t>{}, std::optional<int64_t>{1}}) {
      const auto channels = axis ? x.size(1) : 1;
      const auto scale = (torch::rand({channels}) * 0.1 + 0.01).reshape(axis ? torch::IntArrayRef{channels}
                                                                              : torch::IntArrayRef{});
      const auto zp = torch::randint(qmin, qmax + 1, scale.sizes(), torch::kInt);
      const auto cpu = qext::quant::quantize(x, scale, zp, axis, qmin, qmax);
      const auto aten = qext::ops::quantize_aten(x, scale, zp, axis, qmin, qmax);
      EXPECT_TRUE(torch::equal(cpu, aten)) << qmin << " " << (axis ? "per-axis" : "per-tensor");
      EXPECT_TRUE(torch::equal(qext::quant::dequantize(cpu, scale, zp, axis),
                               qext::ops::dequantize_aten(cpu, scale, zp, axis)));
    }
  }
  const auto finite = torch::randn({5, 12});
  for (const bool symmetric : {false, true}) {
    const auto [s1, z1] = qext::quant::tensor_qparams(finite, 0, -128, 127, symmetric);
    const auto [s2, z2] = qext::ops::choose_qparams_aten(finite, 0, -128, 127, symmetric);
    EXPECT_TRUE(torch::equal(s1, s2));
    EXPECT_TRUE(torch::equal(z1, z2));
  }
  EXPECT_THROW(qext::ops::choose_qparams_aten(x, std::nullopt, 0, 255, false), c10::Error);  // NaN
}

TEST(Linalg, QuantizedProductApproximatesTheFloatOne) {
  torch::manual_seed(6);
  const auto x = torch::randn({32, 64}), w = torch::randn({64, 48});
  const auto a = ql::quantize(x, ql::QDtype::Uint8);
  const auto b = ql::quantize(w, ql::QDtype::Int8, /*axis=*/1, /*symmetric=*/true);
  const auto want = torch::matmul(x, w);
  const auto got = ql::matmul(a, b);
  const double sqnr = 10 * std::log10((want.pow(2).mean() / (want - got).pow(2).mean()).item<double>());
  EXPECT_GT(sqnr, 30.0);
  // int4 keeps the shape through packing and transposes.
  const auto b4 = ql::quantize(w.t().contiguous(), ql::QDtype::Int4, /*axis=*/0, /*symmetric=*/true);
  EXPECT_EQ(b4.sizes(), (std::vector<int64_t>{48, 64}));
  EXPECT_EQ(b4.data.size(1), 32);
  const auto b4t = ql::transpose(b4, 0, 1);
  EXPECT_EQ(b4t.axis, 1);
  EXPECT_TRUE(torch::equal(b4t.int_repr(), b4.int_repr().t()));
  const auto got4 = ql::matmul(a, b4t);
  const double sqnr4 = 10 * std::log10((want.pow(2).mean() / (want - got4).pow(2).mean()).item<double>());
  EXPECT_GT(sqnr4, 12.0);
  EXPECT_THROW(ql::matmul(a, ql::quantize(w, ql::QDtype::Int8, /*axis=*/0)), c10::Error);  // scale along K
}

// The C++ factorize: a rank-4 matrix comes back at rank 4 by energy, with the
// int8 factors' error and sizes reported; uint8 factors are refused.
TEST(Linalg, FactorizeFindsTheRankAndReportsTheError) {
  torch::manual_seed(7);
  const auto m = torch::matmul(torch::randn({40, 4}), torch::randn({4, 30}));
  const ql::Factorization f = ql::factorize(m, /*rank=*/0, /*energy=*/0.999999);
  EXPECT_EQ(f.rank, 4);
  EXPECT_NEAR(f.energy, 1.0, 1e-6);
  EXPECT_EQ(f.left.sizes(), (std::vector<int64_t>{40, 4}));
  EXPECT_EQ(f.right.sizes(), (std::vector<int64_t>{4, 30}));
  EXPECT_EQ(f.left.axis, 0);
  EXPECT_EQ(f.right.axis, 1);
  EXPECT_GT(f.relative_error, 0.0);
  EXPECT_LT(f.relative_error, 0.02);  // int8 rounding only: the truncation loses nothing here
  EXPECT_EQ(f.bytes, (40 + 30) * 4 + (40 + 30) * 8);
  EXPECT_EQ(f.float_bytes, 40 * 30 * 4);
  EXPECT_THROW(ql::factorize(m, 2, 0.0, ql::QDtype::Uint8), c10::Error);
  EXPECT_THROW(ql::factorize(m, 0, 0.0), c10::Error);
}

// linear_dynamic's CUDA implementation is ATen ops; on CPU tensors it must
// give the kernels' floats bit for bit: per row and per tensor, with and
// without bias and ReLU, 8- and 7-bit activations (7-bit weights with the
// latter: AVX2's paired kernel), odd shapes, and rows holding NaN / Inf (NaN
// rows out, the others untouched, the shared range taken from the finite rows).
TEST(DeviceLinearDynamic, AtenPathEqualsTheKernelsBitForBit) {
  torch::manual_seed(8);
  const auto same = [](const torch::Tensor& a, const torch::Tensor& b) {
    return torch::equal(a.isnan(), b.isnan()) && torch::equal(a.nan_to_num(0.0), b.nan_to_num(0.0));
  };
  int cases = 0;
  for (int64_t m : {1, 5, 37})
    for (int64_t k : {1, 17, 300})
      for (int64_t n : {1, 9, 70}) {
        const int64_t activation_bits = (m + k + n) % 2 ? 7 : 8;
        const auto w = qext::ops::PackedLinearWeight::from_float(torch::randn({n, k}), /*per_channel=*/true,
                                                                 activation_bits == 7 ? 63 : 127);
        auto x = torch::randn({m, k}) * 3 + 0.5;
        if (m > 3) {
          x[1][0] = std::numeric_limits<float>::quiet_NaN();
          x[3][k - 1] = std::numeric_limits<float>::infinity();
        }
        const auto bias = torch::randn({n});
        for (bool per_row : {false, true})
          for (int activation : {0, 1, 2})  // none, ReLU, GELU
            for (bool with_bias : {false, true}) {
              const std::optional<torch::Tensor> b = with_bias ? std::optional<torch::Tensor>(bias) : std::nullopt;
              const bool relu = activation == 1, gelu = activation == 2;
              const auto want = qext::ops::linear_dynamic(x, w, b, per_row, relu, activation_bits, gelu);
              const auto got = qext::ops::linear_dynamic_aten(x, w, b, per_row, relu, activation_bits, gelu);
              ASSERT_TRUE(same(want, got)) << "M=" << m << " K=" << k << " N=" << n << " per_row=" << per_row
                                           << " relu=" << relu << " gelu=" << gelu << " bias=" << with_bias
                                           << " activation_bits=" << activation_bits;
              ++cases;
            }
      }
  EXPECT_EQ(cases, 324);
  const auto w = qext::ops::PackedLinearWeight::from_float(torch::randn({6, 8}), true);
  const auto x3 = torch::randn({2, 3, 8});
  EXPECT_TRUE(torch::equal(qext::ops::linear_dynamic_aten(x3, w, std::nullopt, true, false),
                           qext::ops::linear_dynamic(x3, w, std::nullopt, true, false)));
  EXPECT_EQ(qext::ops::linear_dynamic_aten(torch::randn({0, 8}), w, std::nullopt, true, false).sizes(),
            (std::vector<int64_t>{0, 6}));
  EXPECT_THROW(qext::ops::linear_dynamic_aten(torch::randn({2, 7}), w, std::nullopt, true, false), c10::Error);
}

// The grouped op's device path: one linear_dynamic_aten per weight, so on CPU
// tensors the same bits as the kernels' grouped call.
TEST(DeviceLinearDynamic, GroupAtenPathEqualsTheKernelsBitForBit) {
  torch::manual_seed(9);
  const std::vector<c10::intrusive_ptr<qext::ops::PackedLinearWeight>> ws = {
      qext::ops::PackedLinearWeight::from_float(torch::randn({30, 20}), true),
      qext::ops::PackedLinearWeight::from_float(torch::randn({7, 20}), true)};
  const std::vector<std::optional<torch::Tensor>> bs = {torch::randn({30}), std::nullopt};
  const auto x = torch::randn({2, 9, 20});
  for (bool per_row : {false, true}) {
    const auto want = qext::ops::linear_dynamic_group(x, ws, bs, per_row, 8);
    const auto got = qext::ops::linear_dynamic_group_aten(x, ws, bs, per_row, 8);
    ASSERT_EQ(want.size(), 2u);
    ASSERT_EQ(got.size(), 2u);
    for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(torch::equal(want[i], got[i])) << "weight " << i;
  }
  EXPECT_THROW(qext::ops::linear_dynamic_group_aten(x, ws, {std::nullopt}, true, 8), c10::Error);
}

}  // namespace
