// Shared by the instruction-peak probes: the best of five timed runs of an
// asm loop, after one run that brings the core to its clock.
#pragma once

#include <algorithm>

template <typename Run>
double best_seconds(Run run, long iters) {
  run(iters);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) best = std::min(best, run(iters));
  return best;
}
