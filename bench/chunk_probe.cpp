// Would a forward-only candidate run faster a few images at a time? NASP's architecture step
// runs every candidate forward (algorithms/two_pass_gradient.h), and a separable conv's
// depthwise output is written to memory by one kernel and read back by the next. Run on a
// few images at a time, that intermediate would stay in L2 (1 MiB a core here). This probe
// times the pair depthwise kxk -> pointwise 1x1 both ways through the CPU kernel table
// (no dispatch, no autodiff), forward only:
//   whole       the depthwise conv on the batch, then the 1x1 on its output (today's plan)
//   chunk K     per K images: the depthwise conv into a scratch of K images, then the 1x1
//               from it into the output's rows of those images
//   whole, hot  `whole` on one edge over and over: the kernels with their data in cache
// Each repeat runs 14 edges (a DARTS cell's), each with its own input and weights, so that
// as in a step the input of each pair comes from memory. Every variant's output is checked
// equal to `whole`'s (same kernels, same sums: bit for bit).
//   chunk_probe [--repeats 9] [--chunks 1,4,16]
// Prints per shape the median ms per edge of each variant and its ratio to `whole`.
// bench/README.md ("Chunked execution of forward-only candidates") has a run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/tensor/random.h"
#include "engine/threads.h"

using namespace cellgraph;

namespace {
struct Case {
  const char* name;
  int64_t channels, size;
  int kernel, dilation;
};

// The separable and dilated convs' stride-1 pairs at the DARTS network's three widths.
const Case kCases[] = {
    {"sep3x3_c16_s32", 16, 32, 3, 1}, {"sep5x5_c16_s32", 16, 32, 5, 1},
    {"dil3x3_c16_s32", 16, 32, 3, 2}, {"sep3x3_c32_s16", 32, 16, 3, 1},
    {"sep3x3_c64_s8", 64, 8, 3, 1},
};
constexpr int64_t kBatch = 64;
constexpr int kEdges = 14;

double now_ms() {
  const auto t = std::chrono::steady_clock::now().time_since_epoch();
  return std::chrono::duration<double, std::milli>(t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Edge {
  Tensor x, depthwise, pointwise;
};

class Pair {
 public:
  Pair(const Case& c, Rng& rng)
      : c_(c),
        depthwise_attrs_(
            ConvAttrs{1, c.dilation * (c.kernel - 1) / 2, c.dilation, int(c.channels)}),
        pointwise_attrs_(ConvAttrs{}),
        conv_(backend_for(Device::cpu).kernel(OpKind::conv2d)) {
    for (int e = 0; e < kEdges; ++e)
      edges_.push_back({normal_tensor({kBatch, c.channels, c.size, c.size}, 0, 1, rng),
                        kaiming_uniform({c.channels, 1, c.kernel, c.kernel}, rng),
                        kaiming_uniform({c.channels, c.channels, 1, 1}, rng)});
  }

  // y = pointwise(depthwise(x)) of `images` images from `first`, the intermediate in `mid`.
  void run(const Edge& e, int64_t first, int64_t images, const Tensor& mid, const Tensor& y) const {
    const std::vector<Tensor> dw_in{e.x.narrow(0, first, images), e.depthwise, Tensor()};
    std::vector<Tensor> dw_out{mid.narrow(0, 0, images)};
    conv_.forward({OpKind::conv2d, depthwise_attrs_, dw_in, dw_out, nullptr});
    const std::vector<Tensor> pw_in{dw_out[0], e.pointwise, Tensor()};
    std::vector<Tensor> pw_out{y.narrow(0, first, images)};
    conv_.forward({OpKind::conv2d, pointwise_attrs_, pw_in, pw_out, nullptr});
  }

  // ms per edge of one pass over the edges, `chunk` images at a time (0: the whole batch);
  // `hot`: edge 0 every time.
  double pass(int64_t chunk, bool hot, std::vector<Tensor>& outputs) const {
    const int64_t step = chunk > 0 ? chunk : kBatch;
    const Tensor mid = Tensor::empty({step, c_.channels, c_.size, c_.size});
    const double start = now_ms();
    for (int e = 0; e < kEdges; ++e) {
      const Edge& edge = edges_[size_t(hot ? 0 : e)];
      for (int64_t first = 0; first < kBatch; first += step)
        run(edge, first, std::min(step, kBatch - first), mid, outputs[size_t(e)]);
    }
    return (now_ms() - start) / kEdges;
  }

  std::vector<Tensor> new_outputs() const {
    std::vector<Tensor> out;
    out.reserve(kEdges);
    for (int e = 0; e < kEdges; ++e)
      out.push_back(Tensor::empty({kBatch, c_.channels, c_.size, c_.size}));
    return out;
  }

 private:
  Case c_;
  Attrs depthwise_attrs_, pointwise_attrs_;
  const Kernel& conv_;
  std::vector<Edge> edges_;
};

bool same(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  for (size_t e = 0; e < a.size(); ++e)
    if (std::memcmp(a[e].data(), b[e].data(), size_t(a[e].numel()) * sizeof(float)) != 0)
      return false;
  return true;
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  size_t at = 0;
  while (at < s.size()) {
    const size_t comma = s.find(',', at);
    const int64_t v = std::atoll(s.substr(at, comma - at).c_str());
    if (v < 1 || v > kBatch) {
      std::fprintf(stderr, "chunk_probe: --chunks wants sizes in [1, %ld], got '%s'\n",
                   long(kBatch), s.c_str());
      std::exit(2);
    }
    out.push_back(v);
    at = comma == std::string::npos ? s.size() : comma + 1;
  }
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  int repeats = 9;
  std::vector<int64_t> chunks{1, 4, 16};
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 == argc) {
      std::fprintf(stderr, "chunk_probe: '%s' wants a value\n", argv[i]);
      return 2;
    }
    if (flag == "--repeats") {
      repeats = std::max(1, std::atoi(argv[i + 1]));
    } else if (flag == "--chunks") {
      chunks = parse_list(argv[i + 1]);
    } else {
      std::fprintf(stderr, "chunk_probe: unknown flag '%s'\n", argv[i]);
      return 2;
    }
  }
  set_num_threads(0);
  std::printf("threads %d, batch %ld, %d edges a pass, median of %d passes, ms per edge\n",
              num_threads(), long(kBatch), kEdges, repeats);
  std::printf("%-16s %8s %12s", "pair", "whole", "whole, hot");
  for (int64_t k : chunks) std::printf("   chunk %-3ld", long(k));
  std::printf("\n");
  Rng rng(0);
  for (const Case& c : kCases) {
    const Pair pair(c, rng);
    std::vector<Tensor> reference = pair.new_outputs(), outputs = pair.new_outputs();
    pair.pass(0, false, reference);  // primitive creation, allocator cache
    std::vector<double> whole, hot;
    std::vector<std::vector<double>> chunked(chunks.size());
    for (int r = 0; r < repeats; ++r) {  // the variants alternate within each repeat
      whole.push_back(pair.pass(0, false, reference));
      hot.push_back(pair.pass(0, true, outputs));
      for (size_t k = 0; k < chunks.size(); ++k) {
        chunked[k].push_back(pair.pass(chunks[k], false, outputs));
        if (!same(outputs, reference)) {
          std::fprintf(stderr, "chunk_probe: %s: chunks of %ld gave other values\n", c.name,
                       long(chunks[k]));
          return 1;
        }
      }
    }
    const double w = median(whole);
    std::printf("%-16s %8.3f %6.3f %5.2f", c.name, w, median(hot), median(hot) / w);
    for (const auto& t : chunked) std::printf("  %6.3f %5.2f", median(t), median(t) / w);
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}
