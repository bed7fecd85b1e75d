#include "kernels/kernel_table.h"

#include <stdexcept>
#include <string>

namespace qext::kernels {

namespace {

constexpr KernelTable kRef{
    Isa::Ref, detail::qgemm_ref, detail::depthwise_u8_ref, detail::grouped_u8_ref, detail::lowbit_gemm_ref,
    detail::finite_min_max_ref,
    detail::quantize_u8_ref, detail::add_requant_u8_ref, detail::mul_requant_u8_ref,
    detail::max_u8_ref, detail::lut_u8_ref, detail::lut_u8_per_channel_ref,
    detail::attention_f32_ref, detail::max_window_u8_ref, detail::avg_window_u8_ref,
    "scalar reference (the spec)", "scalar reference", "scalar reference", "scalar reference",
    "scalar reference", "scalar reference", "scalar reference", "8 float lanes as scalars, std::fma (the spec)",
    "16-byte vectors (SSE2 / NEON), 64 channels per block; average: int32 sums, double division"};

#if QEXT_HAVE_X86
constexpr KernelTable kAvx2{
    Isa::Avx2, detail::qgemm_avx2, detail::depthwise_u8_avx2, detail::grouped_u8_avx2, detail::lowbit_gemm_avx2,
    detail::finite_min_max_avx2,
    detail::quantize_u8_avx2, detail::add_requant_u8_avx2, detail::mul_requant_u8_avx2,
    detail::max_u8_avx2, detail::lut_u8_avx2,
    detail::lut_u8_per_channel_avx2, detail::attention_f32_avx2, detail::max_window_u8_avx2,
    detail::avg_window_u8_avx2,
    "4x24 tiles, vpmaddwd (exact) on int8 weights widened in registers (<= 8 rows) or per 512-k L1 panel; "
    "weights within +-64 (7-bit), or packed for 7-bit activations: vpmaddubsw (exact there) + vpmaddwd, "
    "nothing widened; 7-bit weights and activations: two k groups added (vpaddw) per vpmaddwd, 3x24 tiles; "
    "full-range bytes with activations > 127: low 7 bits and top bit multiplied apart",
    "weights within +-64: 4 kernel rows per vpmaddubsw + vpmaddwd, each image column interleaved once per output row (byte unpacks), 32 channels; otherwise 2 taps per "
    "vpmaddwd, 64 channels; ymm accumulators",
    "8 output lanes x 4 pixels, vpermd to each lane's group; weights within +-64: bytes, vpmaddubsw + vpmaddwd "
    "(groups of 4k, <= 32-channel windows), otherwise int16 pairs, vpmaddwd (groups of 2-16)",
    "16 columns x 4 rows, levels unpacked by vpsrlvd, vpmaddubsw (exact for |level| <= 8) + vpmaddwd",
    "8 lanes, divider-free Quantizer8", "add, product: 8 lanes, 32 bytes per store; max_u8: vpmaxub, 64 bytes per step", "32 bytes per step: 16 vpshufb (a 16-entry table row each) and a tree of 15 vpblendvb on the high nibble; "
    "per channel: 8-lane vpgatherdd",
    "float, 8 lanes, vfmadd: 6 query rows x 16 keys, then 6 rows x 16 value columns",
    "max: vpmaxub, 128 channels per block; average: vpmovzxbd int32 sums of 32 channels, one vdivps per 8"};

constexpr KernelTable kAvx512Vnni{
    Isa::Avx512Vnni, detail::qgemm_avx512_vnni, detail::depthwise_u8_avx512_vnni, detail::grouped_u8_avx512_vnni,
    detail::lowbit_gemm_avx512_vnni,
    detail::finite_min_max_avx512_vnni, detail::quantize_u8_avx512_vnni, detail::add_requant_u8_avx512_vnni,
    detail::mul_requant_u8_avx512_vnni,
    detail::max_u8_avx2, detail::lut_u8_avx512_vnni, detail::lut_u8_per_channel_avx512_vnni, detail::attention_f32_avx2,
    detail::max_window_u8_avx512_vnni, detail::avg_window_u8_avx512_vnni,
    "6x64 tiles, vpdpbusd (u8 x s8, no saturation), fused requantizing epilogue",
    "4 kernel rows per vpdpbusd, each image column interleaved once per output row (byte unpacks), 64 channels per block",
    "16 output lanes x 4 pixels, vpermd to each lane's group, vpdpbusd (groups of 4k, <= 64-channel windows)",
    "16 columns x 4 rows, levels unpacked by vpsrlvd, vpdpbusd",
    "16 lanes, divider-free Quantizer16",
    "add, product: 16 lanes, 64 bytes per store; max_u8: the AVX2 one",
    "64 bytes per step: 2 vpermi2b (VBMI) or 16 masked vpshufb; per channel: 16-lane vpgatherdd",
    "the AVX2 one (the same bits as every path)",
    "max: vpmaxub, 256 channels per block; average: vpmovzxbd int32 sums of 64 channels, one vdivps per 16; "
    "masked tails"};

#if QEXT_HAVE_AMX
// AMX: tiles for the GEMM, AVX-512 VNNI for everything else.
constexpr KernelTable kAmx{
    Isa::Amx, detail::qgemm_amx, kAvx512Vnni.depthwise_u8, kAvx512Vnni.grouped_u8, kAvx512Vnni.lowbit_gemm,
    kAvx512Vnni.finite_min_max, kAvx512Vnni.quantize_u8, kAvx512Vnni.add_requant_u8, kAvx512Vnni.mul_requant_u8,
    kAvx512Vnni.max_u8, kAvx512Vnni.lut_u8, kAvx512Vnni.lut_u8_per_channel, kAvx512Vnni.attention_f32,
    kAvx512Vnni.max_window_u8, kAvx512Vnni.avg_window_u8,
    "32x32 blocks of 2x2 AMX tiles, tdpbusd (u8 x s8 into int32), activations in zero-padded panels; "
    "< 16 rows: the VNNI 6x64 kernel",
    kAvx512Vnni.depthwise_kernel, kAvx512Vnni.grouped_kernel, kAvx512Vnni.lowbit_kernel,
    kAvx512Vnni.quantize_kernel, kAvx512Vnni.elementwise_kernel, kAvx512Vnni.lut_kernel,
    kAvx512Vnni.attention_kernel, kAvx512Vnni.pooling_kernel};
#endif
#endif

}  // namespace

const KernelTable& kernel_table(Isa isa) {
  const KernelTable* table = nullptr;
  switch (isa) {
    case Isa::Ref: table = &kRef; break;
#if QEXT_HAVE_X86
    case Isa::Avx2: table = &kAvx2; break;
    case Isa::Avx512Vnni: table = &kAvx512Vnni; break;
#if QEXT_HAVE_AMX
    case Isa::Amx: table = &kAmx; break;
#endif
#endif
    default: break;  // a path not built for this architecture or compiler
  }
  if (!table || !cpu_supports(isa)) {
    throw std::runtime_error(std::string("qext: the ") + isa_name(isa) + " kernels cannot run here (" +
                             (table ? "this CPU lacks the instructions" : "not built for this architecture or compiler") + ")");
  }
  return *table;
}

}  // namespace qext::kernels
