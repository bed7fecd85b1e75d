#include "kernels/depthwise.h"

#include <stdexcept>
#include <string>

#include "kernels/isa_paths.h"

namespace qext::kernels {

void depthwise_conv_u8(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end, Isa isa) {
  if (!cpu_supports(isa)) throw std::runtime_error(std::string("qext: this CPU cannot run the ") + isa_name(isa) + " path");
  switch (isa) {
    case Isa::Ref: return detail::depthwise_u8_ref(args, row_begin, row_end);
    case Isa::Avx2: return detail::depthwise_u8_avx2(args, row_begin, row_end);
    case Isa::Avx512Vnni: return detail::depthwise_u8_avx512_vnni(args, row_begin, row_end);
  }
  throw std::invalid_argument("qext: unknown ISA");
}

}  // namespace qext::kernels
