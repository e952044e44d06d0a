// Learning-rate schedules. A schedule is a pure function of the step number, so resuming
// from a checkpoint needs only the step; the caller decides whether a step is an epoch
// (DARTS) or an iteration, and calls apply() before the optimizer's step().
#pragma once

#include <cstdint>

#include "engine/optim/optimizer.h"

namespace cellgraph {

// PyTorch CosineAnnealingLR's closed form (eta_min = min_lr, T_max = total_steps):
//   lr_at(step) = min_lr + (base_lr - min_lr) * (1 + cos(pi * step / total_steps)) / 2
// so lr_at(0) = base_lr and lr_at(total_steps) = min_lr. Steps past total_steps stay at
// min_lr (PyTorch's closed form would rise again; nothing here trains past the end).
class CosineSchedule {
 public:
  // Throws cellgraph::Error unless total_steps > 0 and 0 <= min_lr, base_lr finite.
  CosineSchedule(float base_lr, float min_lr, int64_t total_steps);

  float lr_at(int64_t step) const;  // step >= 0
  void apply(Optimizer& optimizer, int64_t step) const { optimizer.set_lr(lr_at(step)); }

  float base_lr() const { return base_lr_; }
  float min_lr() const { return min_lr_; }
  int64_t total_steps() const { return total_steps_; }

 private:
  float base_lr_;
  float min_lr_;
  int64_t total_steps_;
};

}  // namespace cellgraph
