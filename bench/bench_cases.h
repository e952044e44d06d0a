// The convolution cases of the micro-benchmark. bench/conv_bench_torch.py lists the same
// cases (by name) and checks that it ran the same shapes; keep the two lists in step.
#pragma once

#include <cstdint>
#include <vector>

namespace cellgraph::bench {

struct ConvCase {
  const char* name;
  int64_t batch, channels, out_channels, size;
  int kernel, stride, dilation;
  bool depthwise, separable;
};

inline const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> kCases = {
      {"conv3x3_c16_s32", 64, 16, 16, 32, 3, 1, 1, false, false},
      {"conv1x1_c64_s8", 64, 64, 64, 8, 1, 1, 1, false, false},
      {"conv1x1_c16_s32", 64, 16, 16, 32, 1, 1, 1, false, false},
      {"dwconv3x3_c16_s32", 64, 16, 16, 32, 3, 1, 1, true, false},
      {"dwconv5x5_c32_s16", 64, 32, 32, 16, 5, 1, 1, true, false},
      {"dilconv3x3_c16_s32", 64, 16, 16, 32, 3, 1, 2, true, false},
      {"sepblock3x3_c16_s32", 64, 16, 16, 32, 3, 1, 1, true, true},
      {"sepblock5x5_c32_s16_stride2", 64, 32, 32, 16, 5, 2, 1, true, true},
  };
  return kCases;
}

}  // namespace cellgraph::bench
