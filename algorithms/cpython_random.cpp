#include "algorithms/cpython_random.h"

#include <algorithm>
#include <bit>

#include "engine/error.h"

namespace cellgraph::algorithms {

namespace {
constexpr int kShift = 397;  // MT19937's middle word offset
constexpr uint32_t kMatrixA = 0x9908b0dfu;
constexpr uint32_t kUpperBit = 0x80000000u, kLowerBits = 0x7fffffffu;
}  // namespace

CPythonRandom::CPythonRandom(uint64_t seed) {
  std::vector<uint32_t> key{uint32_t(seed)};
  if (seed >> 32) key.push_back(uint32_t(seed >> 32));
  reseed_by_array(key);
}

void CPythonRandom::reseed_by_array(const std::vector<uint32_t>& key) {
  // init_genrand(19650218), then mix the key in (init_by_array).
  state_[0] = 19650218u;
  for (int i = 1; i < kStateWords; ++i)
    state_[size_t(i)] =
        1812433253u * (state_[size_t(i - 1)] ^ (state_[size_t(i - 1)] >> 30)) + uint32_t(i);
  size_t i = 1, j = 0;
  auto wrap = [&] {
    if (++i >= size_t(kStateWords)) {
      state_[0] = state_[size_t(kStateWords - 1)];
      i = 1;
    }
  };
  for (size_t k = std::max(size_t(kStateWords), key.size()); k > 0; --k) {
    const uint32_t prev = state_[i - 1];
    state_[i] = (state_[i] ^ ((prev ^ (prev >> 30)) * 1664525u)) + key[j] + uint32_t(j);
    wrap();
    if (++j >= key.size()) j = 0;
  }
  for (size_t k = size_t(kStateWords - 1); k > 0; --k) {
    const uint32_t prev = state_[i - 1];
    state_[i] = (state_[i] ^ ((prev ^ (prev >> 30)) * 1566083941u)) - uint32_t(i);
    wrap();
  }
  state_[0] = kUpperBit;  // the state is never all zero
  next_ = kStateWords;
}

void CPythonRandom::refill() {
  for (int k = 0; k < kStateWords; ++k) {
    const uint32_t y =
        (state_[size_t(k)] & kUpperBit) | (state_[size_t((k + 1) % kStateWords)] & kLowerBits);
    state_[size_t(k)] =
        state_[size_t((k + kShift) % kStateWords)] ^ (y >> 1) ^ ((y & 1u) ? kMatrixA : 0u);
  }
  next_ = 0;
}

uint32_t CPythonRandom::next32() {
  if (next_ >= kStateWords) refill();
  uint32_t y = state_[size_t(next_++)];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint32_t CPythonRandom::getrandbits(int bits) {
  CG_ASSERT(bits >= 1 && bits <= 32, "getrandbits(", bits, ") supports 1 to 32 bits");
  return next32() >> (32 - bits);
}

uint32_t CPythonRandom::randbelow(uint32_t bound) {
  CG_ASSERT(bound >= 1, "randbelow needs a positive bound");
  const int bits = std::bit_width(bound);  // int.bit_length()
  uint32_t r = getrandbits(bits);
  while (r >= bound) r = getrandbits(bits);
  return r;
}

}  // namespace cellgraph::algorithms
