#include "engine/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "engine/error.h"

namespace cellgraph {

CosineSchedule::CosineSchedule(float base_lr, float min_lr, int64_t total_steps)
    : base_lr_(base_lr), min_lr_(min_lr), total_steps_(total_steps) {
  if (total_steps <= 0)
    throw error("cosine schedule: total steps ", total_steps, " is invalid; expected > 0");
  if (!(min_lr >= 0.0f) || !std::isfinite(min_lr) || !std::isfinite(base_lr) || !(base_lr >= 0.0f))
    throw error("cosine schedule: learning rates ", base_lr, " -> ", min_lr,
                " are invalid; expected finite values >= 0");
}

float CosineSchedule::lr_at(int64_t step) const {
  CG_ASSERT(step >= 0, "cosine schedule: negative step ", step);
  const double t = static_cast<double>(std::min(step, total_steps_));
  const double cosine = std::cos(std::numbers::pi * t / static_cast<double>(total_steps_));
  return static_cast<float>(min_lr_ +
                            (static_cast<double>(base_lr_) - min_lr_) * (1.0 + cosine) / 2.0);
}

}  // namespace cellgraph
