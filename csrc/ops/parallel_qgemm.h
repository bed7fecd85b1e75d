// Runs kernels::qgemm over all M rows and N columns on ATen's thread pool.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/qgemm.h"

namespace qext::ops {

void parallel_qgemm(const kernels::GemmArgs& args, const kernels::PackedWeights& w,
                    const kernels::Epilogue& ep, int64_t m);

// One GEMM of a group: its own weights, epilogue and output, the group's rows.
struct GemmJob {
  kernels::GemmArgs args;
  const kernels::PackedWeights* w;
  kernels::Epilogue ep;
};

// Several GEMMs over the same m rows (a Transformer's Q, K and V) in one
// parallel region: the threads split the column blocks of all of them, so
// each thread gets one contiguous share instead of a share of each.
void parallel_qgemm_group(const std::vector<GemmJob>& jobs, int64_t m);

}  // namespace qext::ops
