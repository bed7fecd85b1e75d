// The entry points each ISA file provides, gathered per path in
// kernel_table.cpp. The x86 paths are built only on x86 (QEXT_HAVE_X86, set
// by CMake); elsewhere the reference path is the only one.
#pragma once

#include <cstdint>

#include "kernels/attention.h"
#include "kernels/depthwise.h"
#include "kernels/grouped.h"
#include "kernels/lowbit_gemm.h"
#include "kernels/pooling.h"
#include "kernels/qgemm.h"

namespace qext::kernels::detail {

using QgemmFn = void (*)(const GemmArgs&, const PackedWeights&, const Epilogue&, int64_t,
                         int64_t, int64_t, int64_t);
using MinMaxFn = bool (*)(const float*, int64_t, float*, float*);
using QuantizeU8Fn = void (*)(const float*, int64_t, float, int32_t, int32_t, int32_t,
                              uint8_t*);
using AddRequantFn = void (*)(const uint8_t*, float, int32_t, const uint8_t*, float, int32_t, int64_t, float,
                              int32_t, bool, uint8_t*);
using MulRequantFn = void (*)(const uint8_t*, float, int32_t, const float*, int64_t, int64_t, float, int32_t,
                              uint8_t*);
using MaxU8Fn = uint8_t (*)(const uint8_t*, int64_t);
using LutU8Fn = void (*)(const uint8_t*, int64_t, const uint8_t*, uint8_t*);
using LutPerChannelFn = void (*)(const uint8_t*, int64_t, int64_t, const uint8_t*, uint8_t*);
using DepthwiseFn = void (*)(const DepthwiseArgs&, int64_t, int64_t);
using AttentionFn = void (*)(const AttentionArgs&, int64_t, int64_t);
using GroupedFn = void (*)(const GroupedArgs&, int64_t, int64_t);
// row_group_sums: [m - m_begin][group], each row's activation sum per weight group.
// One output pixel's pooling window over `channels` channels (pooling.h).
using MaxWindowFn = void (*)(const PoolWindow&, int64_t channels, uint8_t* out);
using AvgWindowFn = void (*)(const PoolWindow&, int64_t channels, int32_t zero_point, int64_t divisor, uint8_t* out);
using LowBitGemmFn = void (*)(const LowBitGemmArgs&, const LowBitWeights&, const int32_t* row_group_sums, int64_t,
                              int64_t, int64_t, int64_t);

#define QEXT_DECLARE_PATH(suffix)                                                        \
  void qgemm_##suffix(const GemmArgs&, const PackedWeights&, const Epilogue&, int64_t,   \
                      int64_t, int64_t, int64_t);                                        \
  bool finite_min_max_##suffix(const float*, int64_t, float*, float*);                   \
  void quantize_u8_##suffix(const float*, int64_t, float, int32_t, int32_t, int32_t,     \
                            uint8_t*);                                                   \
  void add_requant_u8_##suffix(const uint8_t*, float, int32_t, const uint8_t*, float,    \
                               int32_t, int64_t, float, int32_t, bool, uint8_t*);           \
  void mul_requant_u8_##suffix(const uint8_t*, float, int32_t, const float*, int64_t, int64_t, \
                               float, int32_t, uint8_t*);                                  \
  void depthwise_u8_##suffix(const DepthwiseArgs&, int64_t, int64_t);                  \
  void grouped_u8_##suffix(const GroupedArgs&, int64_t, int64_t);                       \
  void lowbit_gemm_##suffix(const LowBitGemmArgs&, const LowBitWeights&, const int32_t*, int64_t, \
                            int64_t, int64_t, int64_t);                                     \
  void max_window_u8_##suffix(const PoolWindow&, int64_t, uint8_t*);                      \
  void avg_window_u8_##suffix(const PoolWindow&, int64_t, int32_t, int64_t, uint8_t*);

QEXT_DECLARE_PATH(ref)
QEXT_DECLARE_PATH(avx2)
QEXT_DECLARE_PATH(avx512_vnni)
#undef QEXT_DECLARE_PATH

// The largest byte: portable, and 32 bytes per vpmaxub (the AVX-512 paths
// use it too: the measurement runs at memory speed either way).
uint8_t max_u8_ref(const uint8_t*, int64_t);
uint8_t max_u8_avx2(const uint8_t*, int64_t);

// The lookup-table kernels. One table: portable on the reference path,
// sixteen vpshufb and a tree of blends on AVX2 (no byte permute wider than
// 16 entries), vpermi2b or vpshufb on AVX-512. A table per channel: dword
// gathers on AVX2 and AVX-512.
void lut_u8_ref(const uint8_t*, int64_t, const uint8_t*, uint8_t*);
void lut_u8_avx2(const uint8_t*, int64_t, const uint8_t*, uint8_t*);
void lut_u8_avx512_vnni(const uint8_t*, int64_t, const uint8_t*, uint8_t*);
void lut_u8_per_channel_ref(const uint8_t*, int64_t, int64_t, const uint8_t*, uint8_t*);
void lut_u8_per_channel_avx2(const uint8_t*, int64_t, int64_t, const uint8_t*, uint8_t*);
void lut_u8_per_channel_avx512_vnni(const uint8_t*, int64_t, int64_t, const uint8_t*, uint8_t*);
// The AVX-512 fallback for CPUs without VBMI, callable directly so that tests
// cover it on CPUs that have VBMI too.
void lut_u8_avx512_shuffle(const uint8_t*, int64_t, const uint8_t*, uint8_t*);

// Float attention: one implementation over 8 lanes (attention_impl.h); the
// AVX-512 paths run the AVX2 one.
void attention_f32_ref(const AttentionArgs&, int64_t, int64_t);
void attention_f32_avx2(const AttentionArgs&, int64_t, int64_t);

// The AVX2 GEMM for weights packed as bytes (PackedWeights::bytes()):
// vpmaddubsw, exact there. qgemm_avx2 hands such weights to it.
void qgemm_avx2_narrow(const GemmArgs&, const PackedWeights&, const Epilogue&, int64_t, int64_t, int64_t, int64_t);

// The AMX path has its own GEMM; its other kernels are the AVX-512 VNNI ones.
void qgemm_amx(const GemmArgs&, const PackedWeights&, const Epilogue&, int64_t, int64_t, int64_t, int64_t);

inline constexpr PackLayout kRefLayout{16, 1, 1};
inline constexpr PackLayout kAvx2Layout{24, 8, 2};
inline constexpr PackLayout kAvx2NarrowLayout{24, 8, 4};
inline constexpr PackLayout kAvx512VnniLayout{64, 16, 4};
// The VNNI layout (the VNNI kernel also reads it, for short row ranges) with k
// groups padded to whole 16-group tiles.
inline constexpr PackLayout kAmxLayout{64, 16, 4, 16};

}  // namespace qext::kernels::detail
