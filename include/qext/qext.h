// qext's public C++ API. Link libqext (CMake target `qext`) and include this.
//
//   torch::jit::Module model = torch::jit::load("my_model.pt");
//   torch::jit::Module q = qext::quantize_dynamic(model);
//   qext::save(q, "quantized_model.pt");
//
// Everything here exists in Python too (import qext), with the same names.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <optional>
#include <string>
#include <exception>
#include <functional>
#include <utility>
#include <vector>

namespace qext {

// The library version, e.g. "0.1.0".
std::string version();

// The int8 kernel path in use: "ref", "avx2", "avx512_vnni" or "amx". The best path
// the CPU supports is chosen at start-up; the QEXT_ISA environment variable or
// set_isa() forces another (weights packed earlier keep their path).
std::string active_isa();
void set_isa(const std::string& name);
std::vector<std::string> supported_isas();
// What the active path runs for each kernel family (gemm, depthwise, quantize,
// elementwise), as (family, description) pairs: one kernel table per path,
// chosen once.
std::vector<std::pair<std::string, std::string>> kernels_in_use();

// qext's static int8 ops keep the blocks of tensors they made (64 KB to 32 MB
// each) when those are freed, and reuse them: a loaded model run again and again then
// takes no fresh pages from the system, whose first touch faults. At most
// QEXT_POOL_MB megabytes (environment, read once; default 256, 0 turns
// pooling off) are held while free. memory_pool_bytes() is what is held now;
// release_memory_pool() returns it all to the system.
int64_t memory_pool_bytes();
void release_memory_pool();

// One line saying what went wrong, for a program's error message: the reason
// without LibTorch's C++ backtrace or the TorchScript traceback before it.
std::string error_summary(const std::exception& error);

enum class Granularity { PerTensor, PerChannel };

// Options of quantize_dynamic. Defaults favour accuracy: per-channel weights
// and per-row (per-token) activation scales.
struct DynamicConfig {
  // Qualified layer names ("encoder.layer.0.attention.self.query") matched with
  // shell-style wildcards (* and ?). Empty include means every layer.
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  // Class names of the modules owning the weights (e.g. "Linear"); empty
  // means any module. A layer must match one to be quantized.
  std::vector<std::string> module_types;
  Granularity weight_granularity = Granularity::PerChannel;
  // Per row: one activation scale per token/row; per tensor: one per call.
  bool per_row_activations = true;
  // Layers whose weight has fewer elements stay float.
  int64_t min_weight_elements = 0;
  // Also rewrite matmul(x, W) (+ bias) with a constant 2-D weight W.
  bool quantize_matmul = true;
  // Embedding tables (nn.Embedding, F.embedding) become weight-only int8,
  // symmetric per row; a tied output Linear shares the int8 values.
  bool quantize_embeddings = true;
  // Weight precision: 8 (int8, per channel or per tensor); 7 (int8 storage,
  // values in [-63, 63]: on AVX2 CPUs without VNNI the GEMMs multiply such
  // weights with vpmaddubsw, exact there and about 1.3x faster, for one bit of
  // weight precision; same results on every CPU); or 4, 2, 1 (binary) with one
  // scale per group of `group_size` inputs (a multiple of 4; 0: one group per
  // row), unpacked in registers by qext's low-bit kernels. Applies to Linear,
  // matmul, embedding tables and (8 and 7 only) LSTM / GRU weights.
  int64_t weight_bits = 8;
  int64_t group_size = 128;
  // Activation precision of the int8 Linear / matmul layers: 8 (uint8 in
  // [0, 255], the default) or 7 (values in [0, 127], torch.ao's x86
  // reduce_range). With weight_bits = 7 too, AVX2 CPUs without VNNI add two
  // k groups in int16 before widening, exact there and about 1.15x faster
  // again; one bit of activation precision is the price. Same results on
  // every CPU. LSTM / GRU and low-bit layers keep 8-bit activations.
  int64_t activation_bits = 8;
  // Low-rank Linear layers (int8 weights only): W [N, K] ~= A [N, r] B [r, K]
  // from the truncated SVD, run as two int8 Linear layers (K -> r -> N).
  // low_rank > 0 fixes r; low_rank_energy in (0, 1] picks the smallest r
  // keeping that share of the squared singular values. A layer stays plain
  // int8 unless the pair is at most half its size: r (K + N) <= K N / 2.
  int64_t low_rank = 0;
  double low_rank_energy = 0.0;
};

// What happened to one candidate layer.
struct LayerReport {
  std::string name;    // qualified name of the weight's owner (plus the attribute if not "weight")
  std::string kind;    // "linear", "matmul", "conv2d", "add"
  std::string status;  // "int8", "int4" / "int2" / "int1" (low-bit Linear weights) or "float"
  std::string reason;  // why it stayed float; empty when quantized
  int64_t bytes_before = 0;  // float weight bytes
  int64_t bytes_after = 0;   // quantized weight + scales (or the float bytes when skipped)
  // Static int8 layers: the output's (scale, zero point), and the SQNR (dB) of
  // the output vs the float model's on the calibration data (when measured).
  std::optional<double> scale;
  std::optional<int64_t> zero_point;
  std::optional<double> sqnr_db;
};

struct QuantizationReport {
  std::string mode;  // "dynamic" or "static"
  std::vector<LayerReport> layers;
  int64_t quantized() const;
  int64_t bytes_before() const;
  int64_t bytes_after() const;
  std::string to_json() const;
};

// Returns an int8 copy of `model` (the input is never changed): every float
// Linear it can find (nn.Linear, F.linear / aten::linear, and matmul with a
// constant 2-D weight) becomes qext::linear_dynamic with packed int8 weights
// (qext::linear_lowbit with config.weight_bits < 8); everything else is untouched. Works on scripted and traced modules, nested
// submodules, ModuleLists, control flow and several methods. The result holds
// its report (see report()). Submodule methods are not rewritten: run the
// returned module through its own methods.
torch::jit::Module quantize_dynamic(const torch::jit::Module& model, const DynamicConfig& config = {});

// Options of static (post-training) quantization. Activations: asymmetric
// uint8 per tensor, ranges from calibration; weights: symmetric int8 per
// output channel.
// How calibration picks an activation's range: the running min/max, their
// moving average over batches, or a 2048-bin histogram of |x| read by
// `HistogramMethod` (the 99.99th percentile, TensorRT-style KL divergence, or
// the least squared quantization error).
enum class Observer { MinMax, MovingAverage, Histogram };
enum class HistogramMethod { Percentile, Entropy, Mse };
// Their names in files, the CLI and Python: "min_max", "moving_average",
// "histogram"; "percentile", "entropy", "mse".
const char* observer_name(Observer observer);
const char* histogram_method_name(HistogramMethod method);

struct StaticConfig {
  std::vector<std::string> exclude;      // layer names kept float (wildcards)
  Observer observer = Observer::MinMax;
  HistogramMethod histogram_method = HistogramMethod::Percentile;  // with Observer::Histogram
  double percentile = 99.99;
  bool fold_batch_norm = true;           // conv/linear + eval BatchNorm, and constant per-channel scales, folded at prepare
  // Weight precision, 2..8 bits: symmetric per-channel values in
  // [-(2^(b-1) - 1), 2^(b-1) - 1], stored and computed as int8. At 7 bits or
  // fewer, AVX2 CPUs without VNNI multiply with an exact vpmaddubsw GEMM
  // (about 1.3x faster); results are the same on every CPU.
  int64_t weight_bits = 8;
  // Activation ranges: 8 (calibrated range onto [0, 255], the default) or 7
  // (onto [0, 127], torch.ao's x86 reduce_range; uint8 storage, so values
  // past the calibrated range keep headroom up to 255). With weight_bits <= 7
  // too, AVX2 CPUs without VNNI add two k groups in int16 before widening in
  // conv / linear GEMMs (exact; they measure each input's largest byte, so a
  // value past 127 costs speed, never exactness). One bit of activation
  // precision is the price. Same results on every CPU.
  int64_t activation_bits = 8;
  // NaN/Inf cannot be int8: with check_finite, the model raises when one
  // reaches a float -> int8 boundary (its input, or the output of a layer kept
  // float); without, such values clamp to the calibrated range and the output
  // is finite. (quantize_dynamic lets NaN/Inf propagate to the output, as
  // float does.)
  bool check_finite = true;
  // Cross-layer equalization at prepare (after BatchNorm folding): for each
  // conv/linear whose output, through a ReLU or nothing, feeds only another
  // (depthwise included), output channel c of the first is divided and input
  // channel c of the second multiplied by s_c = sqrt(r1_c / r2_c), the ratio
  // of their weight ranges. The float function is unchanged; per-channel
  // ranges even out, which helps depthwise nets and low-bit weights. Pairs
  // joined by ReLU6/hardtanh are left alone (not scale-invariant).
  bool equalize = false;
  // Bias correction at convert: calibration also records each conv/linear
  // input's per-channel mean E[x]; the bias absorbs -(Wq - W) E[x], the mean
  // output shift weight quantization causes.
  bool bias_correction = false;
};

// Static quantization, in three steps or one. prepare_static returns a copy
// with BatchNorm folded and observers on every tensor that will become int8;
// running it (calibrate) records ranges; convert returns the int8 module:
// conv2d / linear / add (+ ReLU) run as qext int8 ops, int8 tensors flow
// between them, everything else stays float with quantize/dequantize around it.
torch::jit::Module prepare_static(const torch::jit::Module& model, const StaticConfig& config = {});
// Errors name the failing batch by its position, counted from `first_batch`
// (for callers that feed a stream of batches one call at a time).
void calibrate(torch::jit::Module& prepared, const std::vector<std::vector<c10::IValue>>& inputs,
               int64_t first_batch = 0);
torch::jit::Module convert(const torch::jit::Module& prepared);
// The ops static quantization runs on uint8 with their input's scale and zero
// point (max/avg pooling, flatten, view, ...), by schema name: the one list
// both convert and qext.qat.prepare (which puts fake-quant around them) read.
std::vector<std::string> static_pass_through_ops();

torch::jit::Module quantize_static(const torch::jit::Module& model,
                                   const std::vector<std::vector<c10::IValue>>& calibration_inputs,
                                   const StaticConfig& config = {});

// Calibration one batch at a time, for data streamed from a loader (too big
// to hold, or with progress shown between batches), then conversion as
// quantize_static does it: the int8 module with every layer's SQNR measured
// on the first batches (sqnr_batch_count), which the calibrator keeps.
class Calibrator {
 public:
  // `prepared` comes from prepare_static; the calibrator records into it.
  explicit Calibrator(torch::jit::Module prepared);
  // Runs one batch through the prepared module; errors name the batch by
  // its position in the stream.
  void add(const std::vector<c10::IValue>& batch);
  int64_t batches() const { return batches_; }
  const torch::jit::Module& prepared() const { return prepared_; }
  // The int8 module; throws when no batch was added.
  torch::jit::Module convert() const;
  // convert() within an accuracy budget. `metric(module)` scores a module,
  // higher is better; `float_score` is the float model's score. While the
  // int8 module scores more than `max_drop` below it, the int8 layer with
  // the lowest SQNR is kept float (excluded by name, which the report says)
  // and the module converted again; calibration is not repeated. Stops at
  // `max_float_layers` layers kept float (< 0: no limit) or when no int8
  // layer is left. The prepared module's own exclude list is restored after.
  torch::jit::Module convert_within(const std::function<double(torch::jit::Module)>& metric,
                                    double float_score, double max_drop, int64_t max_float_layers = -1);

 private:
  torch::jit::Module prepared_;
  std::vector<std::vector<c10::IValue>> sqnr_batches_;
  bool keeping_ = true;  // the kept batches are a prefix of the stream
  int64_t batches_ = 0;
};

// quantize_static within an accuracy budget (Calibrator::convert_within),
// with metric(model) as the float score.
torch::jit::Module quantize_static_accuracy_aware(const torch::jit::Module& model,
                                                  const std::vector<std::vector<c10::IValue>>& calibration_inputs,
                                                  const std::function<double(torch::jit::Module)>& metric,
                                                  double max_drop, const StaticConfig& config = {},
                                                  int64_t max_float_layers = -1);

// Runs `inputs` through the float model (the prepared module, observers
// ignored) and through its int8 conversion, and stores in `quantized`'s report
// the SQNR (dB) of every int8 layer's output against the float output:
// 10 log10(sum ref^2 / sum (ref - int8)^2) over all batches. quantize_static
// does this with (up to 16 of) its calibration batches.
void measure_sqnr(const torch::jit::Module& prepared, torch::jit::Module& quantized,
                  const std::vector<std::vector<c10::IValue>>& inputs);
// How many of the first calibration batches quantize_static measures the SQNR
// on: batches are taken while fewer than 16 batches and 32 samples (first
// dimension of the first input) are taken. Streaming callers keep a batch
// when the count over kept + [batch] grows.
size_t sqnr_batch_count(const std::vector<std::vector<c10::IValue>>& inputs);

// The report stored in a module quantized by qext (empty layers otherwise).
QuantizationReport report(const torch::jit::Module& module);

// Saves atomically: the bytes go to an exclusively created (or unnamed)
// temporary file beside `path`, are fsync'ed, and the file is renamed into
// place; concurrent saves to one path each leave a whole file. Throws
// std::system_error carrying the errno (ENOSPC, EACCES, ENOENT, EISDIR...); no
// partial or temporary file is left on failure.
void save(const torch::jit::Module& module, const std::string& path);

// Loads a TorchScript file, qext model or not; throws std::runtime_error that
// says what is wrong for a missing, truncated or non-TorchScript file.
torch::jit::Module load(const std::string& path);

}  // namespace qext
