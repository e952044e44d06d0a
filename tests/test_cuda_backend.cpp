// The CUDA backend's memory and copies. Runs fully only where a CUDA device is present;
// elsewhere (no GPU, or built with CELLGRAPH_CUDA=OFF) it checks that the device is
// reported unavailable and says that the rest was skipped.
#include <algorithm>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/tensor/tensor.h"

using namespace cellgraph;

TEST_CASE("cuda backend: round trip, fill and allocator on the device") {
  if (!backend_available(Device::cuda)) {
    CHECK_THROWS_AS(backend_for(Device::cuda), Error);
    MESSAGE("no CUDA device available (or built without CUDA): CUDA backend checks skipped");
    return;
  }
  Backend& cuda = backend_for(Device::cuda);
  CHECK(cuda.device() == Device::cuda);
  CHECK(cuda.name() == "cuda");

  std::vector<float> values(3 * 1000);
  std::iota(values.begin(), values.end(), -1500.0f);
  const Tensor host = Tensor::from_vector({3, 1000}, values);

  SUBCASE("host -> device -> device -> host keeps every value") {
    const Tensor dev = host.to(Device::cuda);
    CHECK(dev.device() == Device::cuda);
    const Tensor copy = dev.clone();  // device to device
    CHECK_FALSE(copy.shares_storage_with(dev));
    CHECK(copy.to_vector() == values);
    const Tensor back = copy.to(Device::cpu);
    CHECK(back.device() == Device::cpu);
    CHECK(back.to_vector() == values);
    // A strided view copies row by row through copy_between.
    const std::vector<float> cols = dev.narrow(1, 10, 5).contiguous().to_vector();
    CHECK(cols == std::vector<float>{-1490, -1489, -1488, -1487, -1486, -490, -489, -488, -487,
                                     -486, 510, 511, 512, 513, 514});
    Tensor from_device = Tensor::from_vector({3, 1000}, values, Device::cuda);
    CHECK(from_device.to_vector() == values);
  }

  SUBCASE("fill writes every element, zero and non-zero, large and tiny") {
    for (const int64_t n : {int64_t{1}, int64_t{257}, int64_t{1} << 22}) {
      const Tensor t = Tensor::full({n}, 2.5f, Device::cuda);
      const std::vector<float> got = t.to_vector();
      CHECK(std::all_of(got.begin(), got.end(), [](float v) { return v == 2.5f; }));
      const Tensor z = Tensor::zeros({n}, Device::cuda);
      const std::vector<float> zeros = z.to_vector();
      CHECK(std::all_of(zeros.begin(), zeros.end(), [](float v) { return v == 0.0f; }));
    }
    Tensor dev = host.to(Device::cuda);
    dev.fill(-7.0f);
    cuda.synchronize();
    CHECK(dev.to_vector() == std::vector<float>(values.size(), -7.0f));
  }

  SUBCASE("the caching allocator reuses device blocks") {
    CachingAllocator& alloc = cuda.allocator();
    { const Tensor a = Tensor::empty({1 << 20}, Device::cuda); }
    const size_t calls = alloc.stats().system_allocations;
    { const Tensor b = Tensor::empty({1 << 20}, Device::cuda); }
    CHECK(alloc.stats().system_allocations == calls);
    alloc.release_cached();
    CHECK(alloc.stats().cached_bytes == 0);
  }

  SUBCASE("an op without a CUDA kernel is a named error") {
    for (int k = 0; k < kOpCount; ++k) {
      const auto kind = static_cast<OpKind>(k);
      if (cuda.supports(kind)) continue;
      CHECK_THROWS_WITH_AS(
          cuda.kernel(kind),
          ("the cuda backend has no kernel for op '" + std::string(op_name(kind)) + "'").c_str(),
          Error);
    }
  }
}

// cuBLAS is opened on first use, not linked (engine/backends/cuda/cublas_library.h): its
// loading alone cost every process ~210 MiB of resident memory. Nothing in this test
// process asks for a cuBLAS handle, so the library must not be mapped, whatever the build.
TEST_CASE("cuda backend: a process that runs no cuBLAS kernel does not map cuBLAS") {
  const Tensor t = Tensor::full({4, 4}, 1.0f);  // the CPU backend (and the registry) in use
  CHECK(t.to_vector()[0] == 1.0f);
  (void)backend_available(Device::cuda);
  std::ifstream maps("/proc/self/maps");
  REQUIRE(maps.good());
  std::string line;
  int64_t lines = 0;
  while (std::getline(maps, line)) {
    ++lines;
    CAPTURE(line);
    CHECK(line.find("libcublas") == std::string::npos);
  }
  CHECK(lines > 0);
}
