// The machine's yardstick for issue 17's "distance to the machine": the best GFLOP/s a large
// float32 matrix product reaches here at the current thread count, run through cellgraph's
// own matmul op (dispatcher, caching allocator, oneDNN's matmul primitive in
// engine/backends/cpu/matrix.cpp), so it is what the backend can get out of the cores, not
// what a hand-tuned loop could. bench/run_gflops sets a DARTS step's achieved GFLOP/s
// against it.
//   sgemm_peak [--sizes 1024,2048,4096] [--repeats 5]
// A size N is the square product M = N = K = N; MxNxK gives another shape ([M, K] x [K, N]),
// e.g. the 1x1 convolutions of a DARTS cell as GEMMs (rows = batch x pixels, N = K = the
// channels), to see what oneDNN reaches on the network's own shapes. Each shape one
// untimed product first (primitive creation), then
// --repeats timed ones. GFLOP/s = 2 M N K / seconds. Prints one JSON line: per size the
// best and median GFLOP/s, the seconds of the best product and the best GFLOP per second of
// process CPU time (all threads: the rate per busy thread, which other jobs on the cores
// move far less than the wall clock), and the best of each over sizes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autodiff/var.h"
#include "engine/error.h"
#include "engine/tensor/random.h"
#include "engine/threads.h"
#include "ops/ops.h"
#include "spec/json_value.h"

using namespace cellgraph;
using Clock = std::chrono::steady_clock;

namespace {

struct Product {
  int64_t m = 0, n = 0, k = 0;
};

// "N" or "MxNxK", separated by commas.
std::vector<Product> parse_sizes(const std::string& text) {
  std::vector<Product> sizes;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::vector<int64_t> dims;
    std::stringstream parts(item);
    std::string part;
    while (std::getline(parts, part, 'x')) dims.push_back(std::atoll(part.c_str()));
    const bool positive = std::all_of(dims.begin(), dims.end(), [](int64_t d) { return d > 0; });
    if (!positive || (dims.size() != 1 && dims.size() != 3))
      throw error("--sizes: expected N or MxNxK (positive integers) separated by commas, got '",
                  item, "' in '", text, "'");
    sizes.push_back(dims.size() == 1 ? Product{dims[0], dims[0], dims[0]}
                                     : Product{dims[0], dims[1], dims[2]});
  }
  return sizes;
}

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  std::string sizes_text = "1024,2048,4096";
  int64_t repeats = 5;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 == argc || (flag != "--sizes" && flag != "--repeats")) {
      std::fprintf(stderr, "usage: sgemm_peak [--sizes 1024,2048,4096] [--repeats 5]\n");
      return 2;
    }
    if (flag == "--sizes") sizes_text = argv[i + 1];
    if (flag == "--repeats") repeats = std::max<int64_t>(1, std::atoll(argv[i + 1]));
  }
  try {
    set_num_threads(0);  // $CELLGRAPH_THREADS or every core
    const std::vector<Product> sizes = parse_sizes(sizes_text);
    NoGradGuard no_grad;  // a forward product only: nothing recorded, nothing saved
    Rng rng(1);
    spec::JsonValue per_size = spec::JsonValue::array();
    double best_overall = 0, best_per_cpu_overall = 0;
    for (const Product& p : sizes) {
      const Var a(normal_tensor({p.m, p.k}, 0, 1, rng)), b(normal_tensor({p.k, p.n}, 0, 1, rng));
      const double flops = 2.0 * double(p.m) * double(p.n) * double(p.k);
      ops::matmul(a, b);  // untimed: creates and caches the primitive
      std::vector<double> gflops;
      double best_seconds = 0, best_per_cpu = 0;
      for (int64_t r = 0; r < repeats; ++r) {
        const Clock::time_point t0 = Clock::now();
        const double c0 = cpu_seconds();
        const Var c = ops::matmul(a, b);
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        best_per_cpu = std::max(best_per_cpu, flops / (cpu_seconds() - c0) * 1e-9);
        gflops.push_back(flops / s * 1e-9);
        if (gflops.back() >= *std::max_element(gflops.begin(), gflops.end())) best_seconds = s;
      }
      std::vector<double> sorted = gflops;
      std::sort(sorted.begin(), sorted.end());
      spec::JsonValue one = spec::JsonValue::object();
      one.set("m", p.m);
      one.set("n", p.n);
      one.set("k", p.k);
      one.set("square", p.m == p.n && p.n == p.k);
      one.set("best_gflops", sorted.back());
      one.set("median_gflops", sorted[sorted.size() / 2]);
      one.set("best_seconds", best_seconds);
      one.set("best_gflops_per_cpu_second", best_per_cpu);
      per_size.push_back(one);
      best_overall = std::max(best_overall, sorted.back());
      best_per_cpu_overall = std::max(best_per_cpu_overall, best_per_cpu);
    }
    spec::JsonValue j = spec::JsonValue::object();
    j.set("threads", num_threads());
    j.set("repeats", repeats);
    j.set("sizes", per_size);
    j.set("best_gflops", best_overall);
    j.set("best_gflops_per_cpu_second", best_per_cpu_overall);
    std::printf("%s\n", spec::dump(j).c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
