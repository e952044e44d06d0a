// Bit-for-bit equality of float vectors, for tests of exact round trips: the sign of zero
// and NaN payloads count, which operator== ignores. std::memcmp would compare the same
// bytes, but an empty vector's data() may be null, and memcmp with a null pointer is
// undefined even for 0 bytes (UBSan stops there).
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace cellgraph::testing {

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](float x, float y) {
    return std::bit_cast<uint32_t>(x) == std::bit_cast<uint32_t>(y);
  });
}

}  // namespace cellgraph::testing
