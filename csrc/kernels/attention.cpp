#include "kernels/attention.h"

#include "kernels/kernel_table.h"

namespace qext::kernels {

void attention_f32(const AttentionArgs& args, int64_t begin, int64_t end, Isa isa) {
  kernel_table(isa).attention_f32(args, begin, end);
}

}  // namespace qext::kernels
