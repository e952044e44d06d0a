// CPython's `random` module, as far as NATS-Bench needs it: `random.seed(n)` for an integer n,
// `random.getrandbits(k)`, `random._randbelow(n)` and `random.shuffle(list)`, bit for bit.
//
// Why reimplement it: NATS-Bench numbers its 15,625 topology cells by shuffling their base-5
// enumeration with `random.seed(88); random.shuffle(...)`. Reproducing that shuffle gives a
// cell's index from its arch string without shipping or reading the table.
//
// The generator is MT19937 (Matsumoto & Nishimura). CPython seeds it from an integer through
// init_by_array, with the key being the integer's 32-bit words, least significant first
// (one zero word for 0). getrandbits(k <= 32) keeps the top k bits of one output;
// _randbelow(n) draws getrandbits(bit_length(n)) until the value is below n; shuffle is
// Fisher-Yates from the last element down, swapping x[i] with x[_randbelow(i + 1)].
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace cellgraph::algorithms {

class CPythonRandom {
 public:
  explicit CPythonRandom(uint64_t seed);  // random.seed(seed)

  uint32_t next32();                   // one MT19937 output (genrand_uint32)
  uint32_t getrandbits(int bits);      // 1 <= bits <= 32
  uint32_t randbelow(uint32_t bound);  // uniform in [0, bound), bound >= 1

  template <typename T>
  void shuffle(std::vector<T>& items) {
    for (std::size_t i = items.size(); i-- > 1;)
      std::swap(items[i], items[randbelow(uint32_t(i + 1))]);
  }

 private:
  static constexpr int kStateWords = 624;
  void reseed_by_array(const std::vector<uint32_t>& key);
  void refill();

  std::array<uint32_t, kStateWords> state_{};
  int next_ = kStateWords;
};

}  // namespace cellgraph::algorithms
