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

// The splitmix64 finaliser: a bijection that spreads every input bit over the output.
uint64_t mix64(uint64_t z);

// Seed streams: independent seeds derived from a run's seed, so that each use (architecture
// init, batch order, ...) draws its own stream. In one place so that no two uses collide.
// A search's stream k: mix64(seed + k * golden ratio); 1 architecture init, 2 train batches,
// 3 val batches, 4 the session's Rng. (Its weights use the seed itself, so a ParameterStore
// built with the run's seed matches the run's initial weights.)
uint64_t stream_seed(uint64_t seed, uint64_t stream);
// Fixed-network training's batch order: a separate formula, kept as first written so that
// runs trained before keep their batch order on resume.
uint64_t train_batch_seed(uint64_t seed);

// Stateless hash of (seed, index) to [0, 1): dropout masks that backward can recompute.
float hash_uniform(uint64_t seed, uint64_t index);

Tensor uniform_tensor(const Shape& shape, float low, float high, Rng& rng);
Tensor normal_tensor(const Shape& shape, float mean, float stddev, Rng& rng);

// PyTorch's default for conv and linear weights: U(-b, b) with b = 1/sqrt(fan_in)
// (kaiming_uniform with a = sqrt(5)); fan_in = in_channels/groups * kh * kw.
Tensor kaiming_uniform(const Shape& weight_shape, Rng& rng);

}  // namespace cellgraph
