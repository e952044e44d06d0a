// Seeded random numbers for initialisation, data shuffling and augmentation. The same
// seed gives the same stream on every machine (no std::*_distribution, whose output is
// implementation-defined).
#pragma once

#include <cstdint>

#include "engine/tensor/tensor.h"

namespace cellgraph {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next_u64();
  float uniform();                       // [0, 1)
  float uniform(float low, float high);  // [low, high)
  float normal();                        // N(0, 1), Box-Muller
  uint64_t below(uint64_t n);            // uniform integer in [0, n)

  struct State {
    uint64_t s[4];
  };
  State state() const { return state_; }  // for checkpoints
  void set_state(const State& s) { state_ = s; }

 private:
  State state_;
};

// Stateless hash of (seed, index) to [0, 1): dropout masks that backward can recompute.
float hash_uniform(uint64_t seed, uint64_t index);

Tensor uniform_tensor(const Shape& shape, float low, float high, Rng& rng);
Tensor normal_tensor(const Shape& shape, float mean, float stddev, Rng& rng);

// PyTorch's default for conv and linear weights: U(-b, b) with b = 1/sqrt(fan_in)
// (kaiming_uniform with a = sqrt(5)); fan_in = in_channels/groups * kh * kw.
Tensor kaiming_uniform(const Shape& weight_shape, Rng& rng);

}  // namespace cellgraph
