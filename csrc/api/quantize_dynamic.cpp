#include <sstream>

#include "api/report_storage.h"
#include "kernels/lowbit_gemm.h"
#include "passes/dynamic_attention.h"
#include "passes/dynamic_embedding.h"
#include "passes/dynamic_linear.h"
#include "passes/dynamic_linear_group.h"
#include "passes/dynamic_rnn.h"
#include "passes/module_copy.h"
#include "qext/qext.h"

namespace qext {

namespace {

std::string strings_json(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", \"" : "\"") + api::json_escape(v[i]) + "\"";
  return out + "]";
}

std::string config_json(const DynamicConfig& c) {
  std::ostringstream out;
  out << "{\"include\": " << strings_json(c.include) << ", \"exclude\": " << strings_json(c.exclude)
      << ", \"module_types\": " << strings_json(c.module_types) << ", \"weight_granularity\": \""
      << (c.weight_granularity == Granularity::PerChannel ? "per_channel" : "per_tensor")
      << "\", \"per_row_activations\": " << (c.per_row_activations ? "true" : "false")
      << ", \"min_weight_elements\": " << c.min_weight_elements << ", \"weight_bits\": " << c.weight_bits
      << ", \"activation_bits\": " << c.activation_bits << ", \"group_size\": " << c.group_size << ", \"low_rank\": " << c.low_rank
      << ", \"low_rank_energy\": " << c.low_rank_energy
      << ", \"quantize_matmul\": " << (c.quantize_matmul ? "true" : "false")
      << ", \"quantize_embeddings\": " << (c.quantize_embeddings ? "true" : "false") << "}";
  return out.str();
}

}  // namespace

torch::jit::Module quantize_dynamic(const torch::jit::Module& model, const DynamicConfig& config) {
  TORCH_CHECK(config.min_weight_elements >= 0,
              "qext::quantize_dynamic: min_weight_elements must be >= 0; got ",
              config.min_weight_elements);
  TORCH_CHECK(config.weight_bits == 8 || config.weight_bits == 7 || kernels::lowbit_supported(config.weight_bits),
              "qext::quantize_dynamic: weight_bits must be 8, 7, 4, 2 or 1; got ", config.weight_bits);
  TORCH_CHECK(config.activation_bits == 8 || config.activation_bits == 7,
              "qext::quantize_dynamic: activation_bits must be 8 or 7; got ", config.activation_bits);
  TORCH_CHECK(config.activation_bits == 8 || config.weight_bits >= 7,
              "qext::quantize_dynamic: activation_bits=7 needs weight_bits 8 or 7 (the low-bit kernels take "
              "8-bit activations)");
  TORCH_CHECK(config.group_size >= 0 && config.group_size % 4 == 0,
              "qext::quantize_dynamic: group_size must be a multiple of 4 (e.g. 32, 64, 128), or 0 for one group "
              "per row; got ", config.group_size);
  TORCH_CHECK(config.low_rank >= 0, "qext::quantize_dynamic: low_rank must be >= 0; got ", config.low_rank);
  TORCH_CHECK(config.low_rank_energy >= 0.0 && config.low_rank_energy <= 1.0,
              "qext::quantize_dynamic: low_rank_energy must be in (0, 1], or 0 for off; got ", config.low_rank_energy);
  TORCH_CHECK(config.low_rank == 0 || config.low_rank_energy == 0.0,
              "qext::quantize_dynamic: give low_rank or low_rank_energy, not both");
  TORCH_CHECK((config.low_rank == 0 && config.low_rank_energy == 0.0) ||
                  (config.weight_bits >= 7 && config.weight_granularity == Granularity::PerChannel),
              "qext::quantize_dynamic: low-rank layers need weight_bits=8 or 7 and per-channel weights");
  // A private copy: rewriting a module that has already run leaves its
  // executor with stale plans, and the caller's model must stay untouched.
  torch::jit::Module out = passes::private_copy(model);
  out.eval();
  QuantizationReport report;
  report.mode = "dynamic";
  report.layers = passes::rewrite_dynamic_rnns(out, config);
  passes::EmbeddingRewrite tables = passes::rewrite_dynamic_embeddings(out, config);
  for (LayerReport& row : passes::rewrite_dynamic_linears(out, config, tables.tables)) report.layers.push_back(std::move(row));
  passes::release_float_tables(out, tables);
  passes::group_sibling_linears(out);
  passes::rewrite_attention(out);
  report.layers.insert(report.layers.end(), tables.rows.begin(), tables.rows.end());
  api::store_report(out, report,
                    {{"qext_version", version()}, {"mode", "dynamic"}, {"config", config_json(config)}});
  return out;
}

}  // namespace qext
