// One table of kernel entry points per ISA path (MLAS-style): filled at
// compile time from the paths built for this architecture, looked up by the
// dispatchers (qgemm, depthwise, grouped, low-bit GEMM, quantize, elementwise, lut, pooling, attention) for the path a call
// uses. The active path itself is chosen once at start (isa.cpp).
#pragma once

#include "kernels/isa_paths.h"

namespace qext::kernels {

struct KernelTable {
  Isa isa;
  detail::QgemmFn qgemm;
  detail::DepthwiseFn depthwise_u8;
  detail::GroupedFn grouped_u8;
  detail::LowBitGemmFn lowbit_gemm;
  detail::MinMaxFn finite_min_max;
  detail::QuantizeU8Fn quantize_u8;
  detail::AddRequantFn add_requant_u8;
  detail::MulRequantFn mul_requant_u8;
  detail::MaxU8Fn max_u8;
  detail::LutU8Fn lut_u8;
  detail::LutPerChannelFn lut_u8_per_channel;
  detail::AttentionFn attention_f32;
  detail::MaxWindowFn max_window_u8;
  detail::AvgWindowFn avg_window_u8;
  // What each family runs on this path, for `qext info`.
  const char* gemm_kernel;
  const char* depthwise_kernel;
  const char* grouped_kernel;
  const char* lowbit_kernel;
  const char* quantize_kernel;
  const char* elementwise_kernel;
  const char* lut_kernel;
  const char* attention_kernel;
  const char* pooling_kernel;
};

// The table of `isa`; throws std::runtime_error when that path was not built
// for this architecture or this CPU cannot run it.
const KernelTable& kernel_table(Isa isa);

}  // namespace qext::kernels
