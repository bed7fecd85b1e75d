#include "quant/qparams.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace qext::quant {

QParams choose_qparams(float min, float max, int32_t qmin, int32_t qmax, bool symmetric) {
  if (qmin >= qmax) {
    throw std::invalid_argument("qext: choose_qparams needs qmin < qmax; got [" +
                                std::to_string(qmin) + ", " + std::to_string(qmax) + "]");
  }
  if (!std::isfinite(min) || !std::isfinite(max)) {
    throw std::invalid_argument(
        "qext: cannot choose qparams for a range with NaN or Inf (min=" + std::to_string(min) +
        ", max=" + std::to_string(max) + "); check the data for non-finite values");
  }
  if (min > max) {
    throw std::invalid_argument("qext: choose_qparams got min > max (" + std::to_string(min) +
                                " > " + std::to_string(max) + ")");
  }
  min = std::min(min, 0.0f);
  max = std::max(max, 0.0f);
  const float levels = static_cast<float>(qmax - qmin);
  // A range near FLT_MAX over few levels has no finite scale.
  auto finite_scale = [&](float scale) {
    if (!std::isfinite(scale)) {
      throw std::invalid_argument("qext: the range [" + std::to_string(min) + ", " + std::to_string(max) +
                                  "] is too wide for a float32 scale over " + std::to_string(qmax - qmin) +
                                  " levels; check the data for overflowed values");
    }
    return scale;
  };
  if (symmetric) {
    const float amax = std::max(-min, max);
    const float scale = finite_scale(std::max(amax / (levels / 2.0f), kMinScale));
    return {scale, (qmin + qmax + 1) / 2};
  }
  const float scale = finite_scale(std::max((max - min) / levels, kMinScale));
  const float zp = static_cast<float>(qmin) - std::nearbyint(min / scale);
  const float clamped = std::clamp(zp, static_cast<float>(qmin), static_cast<float>(qmax));
  return {scale, static_cast<int32_t>(clamped)};
}

}  // namespace qext::quant
