#include "engine/tensor/random.h"

#include <cmath>
#include <vector>

namespace cellgraph {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (uint64_t& s : state_.s) s = splitmix64(seed);
}

// xoshiro256** (Blackman & Vigna).
uint64_t Rng::next_u64() {
  uint64_t* s = state_.s;
  const uint64_t result = rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

float Rng::uniform() { return static_cast<float>(next_u64() >> 40) * 0x1.0p-24f; }

float Rng::uniform(float low, float high) { return low + (high - low) * uniform(); }

float Rng::normal() {
  // Box-Muller on (0, 1] x [0, 1); one value per call keeps the stream simple to resume.
  const double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
}

uint64_t Rng::below(uint64_t n) {
  // Rejection keeps the result exactly uniform.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % n;
}

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t stream_seed(uint64_t seed, uint64_t stream) {
  return mix64(seed + stream * 0x9E3779B97F4A7C15ull);
}

uint64_t train_batch_seed(uint64_t seed) {
  return seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
}

float hash_uniform(uint64_t seed, uint64_t index) {
  uint64_t x = seed ^ (index * 0xD1B54A32D192ED03ull);
  return static_cast<float>(splitmix64(x) >> 40) * 0x1.0p-24f;
}

Tensor uniform_tensor(const Shape& shape, float low, float high, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(shape.numel()));
  for (float& x : v) x = rng.uniform(low, high);
  return Tensor::from_vector(shape, v);
}

Tensor normal_tensor(const Shape& shape, float mean, float stddev, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(shape.numel()));
  for (float& x : v) x = mean + stddev * rng.normal();
  return Tensor::from_vector(shape, v);
}

Tensor kaiming_uniform(const Shape& weight_shape, Rng& rng) {
  const int64_t fan_in = weight_shape.numel() / weight_shape[0];
  const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
  return uniform_tensor(weight_shape, -bound, bound, rng);
}

}  // namespace cellgraph
