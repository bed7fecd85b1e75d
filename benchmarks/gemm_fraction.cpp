// How close qext's AVX2 GEMM comes to the peak of the instruction chain it
// runs, on one core, without Python or ATen in the way: kernels::qgemm over
// every row and column against the chain's asm loop (avx2_chains.h), timed in
// alternating rounds so both see the same clock and the same neighbours on a
// noisy machine. Prints one JSON line per shape: the median over rounds of
// the GEMM's share of the peak, and the medians of both rates.
//
//   qext_gemm_fraction [--weights 7|8] [--activations 7|8] [--output float|uint8|int32]
//                      [--rounds R] [MxKxN ...]
//
// Defaults: 7-bit weights and activations (the paired chain), a float output
// with per-row scales and a bias (what a dynamic Linear runs), 15 rounds, and
// the BERT-base and MiniLM Linear shapes at M = 128, 512, 1024 and 4096.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "avx2_chains.h"
#include "kernels/isa.h"
#include "kernels/qgemm.h"

namespace {

using qext::kernels::Epilogue;

struct Shape {
  int64_t m, k, n;
};

struct Options {
  int weight_bits = 7, activation_bits = 7;
  Epilogue::Output output = Epilogue::Output::Float;
  int rounds = 15;
  std::vector<Shape> shapes;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "qext_gemm_fraction: %s\nusage: qext_gemm_fraction [--weights 7|8] [--activations 7|8] "
               "[--output float|uint8|int32] [--rounds R] [MxKxN ...]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--weights" && has_value) {
      o.weight_bits = std::atoi(argv[++i]);
    } else if (a == "--activations" && has_value) {
      o.activation_bits = std::atoi(argv[++i]);
    } else if (a == "--rounds" && has_value) {
      o.rounds = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--output" && has_value) {
      const std::string v = argv[++i];
      if (v == "float") o.output = Epilogue::Output::Float;
      else if (v == "uint8") o.output = Epilogue::Output::Uint8;
      else if (v == "int32") o.output = Epilogue::Output::Int32;
      else usage("--output takes float, uint8 or int32");
    } else {
      Shape s{};
      if (std::sscanf(a.c_str(), "%ldx%ldx%ld", &s.m, &s.k, &s.n) != 3 || s.m < 1 || s.k < 1 || s.n < 1)
        usage(("not a shape: " + a).c_str());
      o.shapes.push_back(s);
    }
  }
  if ((o.weight_bits != 7 && o.weight_bits != 8) || (o.activation_bits != 7 && o.activation_bits != 8))
    usage("--weights and --activations take 7 or 8");
  if (o.shapes.empty()) {
    const int64_t kn[][2] = {{768, 768}, {768, 3072}, {3072, 768}, {384, 384}, {384, 1536}, {1536, 384}};
    for (int64_t m : {128, 512, 1024, 4096})
      for (const auto& p : kn) o.shapes.push_back({m, p[0], p[1]});
  }
  return o;
}

// The chain the AVX2 GEMM runs for these precisions (qgemm_avx2_narrow.cpp's
// Chain, or the int16 kernel for 8-bit weights and activations).
struct Chain {
  const char* name;
  double (*seconds)(long);
  double ops_per_iter;
};
Chain chain_for(const Options& o) {
  if (o.weight_bits == 7 && o.activation_bits == 7) return {"avx2_paired", avx2_paired_seconds, kAvx2PairedOpsPerIter};
  if (o.weight_bits == 7 || o.activation_bits == 7) return {"avx2_narrow", avx2_narrow_seconds, kAvx2NarrowOpsPerIter};
  return {"avx2", avx2_seconds, kAvx2OpsPerIter};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run_shape(const Options& o, const Chain& chain, const Shape& s, std::mt19937& rng) {
  const int w_max = o.weight_bits == 7 ? 63 : 127, a_max = (1 << o.activation_bits) - 1;
  std::uniform_int_distribution<int> wd(-w_max, w_max), ad(0, a_max);
  std::vector<int8_t> w(static_cast<size_t>(s.n * s.k));
  for (auto& v : w) v = static_cast<int8_t>(wd(rng));
  std::vector<uint8_t> a(static_cast<size_t>(s.m * s.k));
  for (auto& v : a) v = static_cast<uint8_t>(ad(rng));
  const qext::kernels::PackedWeights packed(w.data(), s.n, s.k, qext::kernels::Isa::Avx2, o.activation_bits);

  std::vector<int32_t> zero_points(static_cast<size_t>(s.m), a_max / 2 + 1);
  std::vector<float> row_scale(static_cast<size_t>(s.m), 0.02f), col_scale(static_cast<size_t>(s.n), 0.01f),
      bias(static_cast<size_t>(s.n), 0.5f);
  const int64_t out_bytes = o.output == Epilogue::Output::Uint8 ? 1 : 4;
  std::vector<unsigned char> c(static_cast<size_t>(s.m * s.n * out_bytes));
  Epilogue ep;
  ep.output = o.output;
  ep.row_scale = row_scale.data();
  ep.col_scale = col_scale.data();
  ep.bias = bias.data();
  ep.out_scale = 0.05f;
  ep.out_zero_point = 128;
  qext::kernels::GemmArgs args;
  args.a = a.data();
  args.lda = s.k;
  args.a_zero_point = zero_points.data();
  args.a_max = static_cast<uint8_t>(a_max);
  args.c = c.data();
  args.ldc = s.n;

  const double ops = 2.0 * s.m * s.k * s.n;
  auto gemm = [&] { qext::kernels::qgemm(args, packed, ep, 0, s.m, 0, packed.num_blocks()); };
  // Per round: about 20 ms of the GEMM, then 2M loops of the chain (5-15 ms).
  gemm();
  auto t0 = std::chrono::steady_clock::now();
  gemm();
  const int reps = std::max(1, static_cast<int>(0.02 / std::max(seconds_since(t0), 1e-6)));
  const long iters = 2'000'000;
  chain.seconds(iters);
  std::vector<double> fractions, gemm_gops, peak_gops;
  for (int r = 0; r < o.rounds; ++r) {
    const double peak = chain.ops_per_iter * iters / chain.seconds(iters) / 1e9;
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) gemm();
    const double rate = ops * reps / seconds_since(t0) / 1e9;
    fractions.push_back(rate / peak);
    gemm_gops.push_back(rate);
    peak_gops.push_back(peak);
  }
  std::printf("{\"M\": %ld, \"K\": %ld, \"N\": %ld, \"gemm_gops\": %.1f, \"%s_peak_gops\": %.1f, "
              "\"fraction_of_peak\": %.3f}\n",
              s.m, s.k, s.n, median(gemm_gops), chain.name, median(peak_gops), median(fractions));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!qext::kernels::cpu_supports(qext::kernels::Isa::Avx2)) {
    std::puts("{\"error\": \"no AVX2 and FMA on this CPU\"}");
    return 1;
  }
  const Chain chain = chain_for(o);
  std::mt19937 rng(0);
  for (const Shape& s : o.shapes) run_shape(o, chain, s, rng);
}
