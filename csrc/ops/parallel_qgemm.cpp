#include "ops/parallel_qgemm.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace qext::ops {

void parallel_qgemm(const kernels::GemmArgs& args, const kernels::PackedWeights& w,
                    const kernels::Epilogue& ep, int64_t m) {
  if (m == 0) return;
  const int64_t threads = at::get_num_threads();
  const int64_t blocks = w.num_blocks();
  // Split columns first (each thread keeps its weight blocks in its own cache);
  // split rows only when there are fewer blocks than threads.
  const int64_t n_tasks = std::min(blocks, threads);
  const int64_t m_tasks = std::min(m, (threads + n_tasks - 1) / n_tasks);
  const int64_t tasks = n_tasks * m_tasks;
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t tn = t % n_tasks, tm = t / n_tasks;
      kernels::qgemm(args, w, ep, m * tm / m_tasks, m * (tm + 1) / m_tasks,
                     blocks * tn / n_tasks, blocks * (tn + 1) / n_tasks);
    }
  };
  if (tasks == 1) {
    run(0, 1);
  } else {
    at::parallel_for(0, tasks, 1, run);
  }
}

}  // namespace qext::ops
