// Runs kernels::qgemm over all M rows and N columns on ATen's thread pool.
#pragma once

#include <cstdint>

#include "kernels/qgemm.h"

namespace qext::ops {

void parallel_qgemm(const kernels::GemmArgs& args, const kernels::PackedWeights& w,
                    const kernels::Epilogue& ep, int64_t m);

}  // namespace qext::ops
