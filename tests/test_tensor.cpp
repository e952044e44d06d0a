#include <doctest/doctest.h>

#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/tensor/allocator.h"
#include "engine/tensor/random.h"
#include "engine/tensor/tensor.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

using namespace cellgraph;

TEST_CASE("tensor: views share storage and copies do not") {
  Tensor t = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor r = t.reshape({3, 2});
  CHECK(r.shares_storage_with(t));
  CHECK(r.is_contiguous());
  Tensor row = t.narrow(0, 1, 1);
  CHECK(row.is_contiguous());
  CHECK(row.to_vector() == std::vector<float>{4, 5, 6});
  Tensor col = t.narrow(1, 1, 2);
  CHECK_FALSE(col.is_contiguous());
  CHECK(col.contiguous().to_vector() == std::vector<float>{2, 3, 5, 6});
  Tensor c = t.clone();
  CHECK_FALSE(c.shares_storage_with(t));
  c.fill(0);
  CHECK(t.to_vector()[0] == 1.0f);
}

TEST_CASE("tensor: zero-element tensors from an empty vector copy nothing") {
  // An empty std::vector's data() is null; copying 0 floats from it through memcpy was
  // undefined behaviour (UBSan stops there), so the backends skip empty copies.
  const std::vector<float> none;
  const Tensor t = Tensor::from_vector({0, 5}, none);
  CHECK(t.shape() == Shape{0, 5});
  CHECK(t.to_vector().empty());
  Tensor u = Tensor::zeros({0, 5});
  u.copy_from(t);
  CHECK(u.numel() == 0);
}

TEST_CASE("shape: products of extents are checked even when an extent is 0") {
  // A 0 makes the element count 0 wherever it stands; a product that reached it through
  // huge extents used to overflow first.
  const int64_t big = int64_t(1) << 62;
  CHECK(Shape{big, 4, 0}.numel() == 0);
  CHECK(Shape{2, 3, 4}.numel() == 24);
  CHECK(Shape{}.numel() == 1);
  // The span bounds the strides, which the count cannot: [0, 2^62, 2^62] has none.
  CHECK_FALSE(Shape{0, big, big}.span().has_value());
  CHECK_FALSE(Shape{big, 4, 0}.span().has_value());
  CHECK(Shape{0, 3, 4}.span() == 12);
  CHECK(Shape{big, 1, 0}.span() == big);
  CHECK(Shape{0, 3, 4}.contiguous_strides() == std::vector<int64_t>{12, 4, 1});
  // Only the strides are formed, not the count past the first extent.
  CHECK(Shape{big, 2}.contiguous_strides() == std::vector<int64_t>{2, 1});
}

TEST_CASE("allocator: freed blocks are reused and the peak is tracked") {
  CachingAllocator& alloc = backend_for(Device::cpu).allocator();
  alloc.release_cached();
  alloc.reset_peak();
  const MemoryStats before = alloc.stats();
  { Tensor a = Tensor::empty({1000}); }
  const size_t calls = alloc.stats().system_allocations;
  { Tensor b = Tensor::empty({990}); }  // same 512-byte size class: served from the cache
  CHECK(alloc.stats().system_allocations == calls);
  CHECK(alloc.stats().peak_bytes >= before.in_use_bytes + 4000);
  CHECK(alloc.stats().in_use_bytes == before.in_use_bytes);
  CHECK(CachingAllocator::rounded_size(1) == 512);
  CHECK(CachingAllocator::rounded_size(3u << 20) == (3u << 20));
}

TEST_CASE("allocator: under ASan, cached blocks and the slack past a request are poisoned") {
#if defined(__SANITIZE_ADDRESS__)
  CachingAllocator& alloc = backend_for(Device::cpu).allocator();
  float* p = static_cast<float*>(alloc.allocate(3 * sizeof(float)));
  CHECK_FALSE(__asan_address_is_poisoned(p + 2));
  CHECK(__asan_address_is_poisoned(p + 3));  // in the 512-byte size class, past the request
  alloc.deallocate(p, 3 * sizeof(float));
  CHECK(__asan_address_is_poisoned(p));  // cached: a use after free is reported
  float* q = static_cast<float*>(alloc.allocate(5 * sizeof(float)));
  REQUIRE(q == p);  // the same cached block, handed out again
  CHECK_FALSE(__asan_address_is_poisoned(q + 4));
  CHECK(__asan_address_is_poisoned(q + 5));
  alloc.deallocate(q, 5 * sizeof(float));
#else
  MESSAGE("not an AddressSanitizer build (scripts/sanitize); nothing to check");
#endif
}

TEST_CASE("rng: seeded streams repeat and uniforms stay in range") {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const float x = a.uniform();
    CHECK(x == b.uniform());
    differs = differs || x != c.uniform();
    CHECK(x >= 0.0f);
    CHECK(x < 1.0f);
  }
  CHECK(differs);
  double sum = 0, sq = 0;
  for (int i = 0; i < 20000; ++i) {
    const double z = a.normal();
    sum += z;
    sq += z * z;
  }
  CHECK(std::abs(sum / 20000) < 0.05);
  CHECK(std::abs(sq / 20000 - 1.0) < 0.05);
}

TEST_CASE("backend: a missing kernel is a named error, an unbuilt device too") {
  CHECK(backend_for(Device::cpu).device() == Device::cpu);
  if (!backend_available(Device::cuda)) CHECK_THROWS_AS(backend_for(Device::cuda), Error);
}
