#include "ops/parallel_qgemm.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace qext::ops {

void parallel_qgemm(const kernels::GemmArgs& args, const kernels::PackedWeights& w,
                    const kernels::Epilogue& ep, int64_t m) {
  parallel_qgemm_group({GemmJob{args, &w, ep}}, m);
}

void parallel_qgemm_group(const std::vector<GemmJob>& jobs, int64_t m) {
  if (m == 0 || jobs.empty()) return;
  // The jobs' column blocks, end to end: global block g is job j's block
  // g - first[j].
  std::vector<int64_t> first(jobs.size() + 1, 0);
  for (size_t j = 0; j < jobs.size(); ++j) first[j + 1] = first[j] + jobs[j].w->num_blocks();
  const int64_t blocks = first.back();
  const int64_t threads = at::get_num_threads();
  // Split columns first (each thread keeps its weight blocks in its own cache);
  // split rows only when there are fewer blocks than threads.
  const int64_t n_tasks = std::min(blocks, threads);
  const int64_t m_tasks = std::min(m, (threads + n_tasks - 1) / n_tasks);
  const int64_t tasks = n_tasks * m_tasks;
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t tn = t % n_tasks, tm = t / n_tasks;
      const int64_t m0 = m * tm / m_tasks, m1 = m * (tm + 1) / m_tasks;
      const int64_t b0 = blocks * tn / n_tasks, b1 = blocks * (tn + 1) / n_tasks;
      for (size_t j = 0; j < jobs.size(); ++j) {
        const int64_t lo = std::max(b0, first[j]), hi = std::min(b1, first[j + 1]);
        if (lo < hi) kernels::qgemm(jobs[j].args, *jobs[j].w, jobs[j].ep, m0, m1, lo - first[j], hi - first[j]);
      }
    }
  };
  if (tasks == 1) {
    run(0, 1);
  } else {
    at::parallel_for(0, tasks, 1, run);
  }
}

}  // namespace qext::ops
