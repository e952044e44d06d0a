#include "engine/tensor/allocator.h"

#include <algorithm>

#include "engine/error.h"

// Under AddressSanitizer (CELLGRAPH_SANITIZE) the cache would hide the errors ASan exists
// to find: a block in the free list is still valid memory to ASan, and so is the slack
// between a request and its size class. So a cached block is poisoned as a whole, and a
// handed-out block is poisoned past the bytes asked for: a use after free or an overrun of
// a tensor then stops with ASan's report. Host memory only; the sanitized build refuses
// CUDA (cmake/Sanitize.cmake). Without ASan these are no-ops.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CG_POISON(ptr, bytes) ASAN_POISON_MEMORY_REGION(ptr, bytes)
#define CG_UNPOISON(ptr, bytes) ASAN_UNPOISON_MEMORY_REGION(ptr, bytes)
#else
#define CG_POISON(ptr, bytes) ((void)(ptr), (void)(bytes))
#define CG_UNPOISON(ptr, bytes) ((void)(ptr), (void)(bytes))
#endif

namespace cellgraph {

CachingAllocator::CachingAllocator(std::unique_ptr<RawAllocator> raw) : raw_(std::move(raw)) {}

CachingAllocator::~CachingAllocator() { release_cached(); }

size_t CachingAllocator::rounded_size(size_t bytes) {
  constexpr size_t kSmall = 512;
  constexpr size_t kLarge = 128 * 1024;
  const size_t granule = bytes < (1u << 20) ? kSmall : kLarge;
  return std::max<size_t>(granule, (bytes + granule - 1) / granule * granule);
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = rounded_size(bytes);
  std::lock_guard lock(mutex_);
  void* ptr = nullptr;
  auto it = free_blocks_.find(size);
  if (it != free_blocks_.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
    stats_.cached_bytes -= size;
  } else {
    ptr = raw_->allocate(size);
    if (ptr == nullptr) {
      // Out of memory: give the cache back and try once more before reporting.
      for (auto& [block_size, blocks] : free_blocks_)
        for (void* p : blocks) {
          CG_UNPOISON(p, block_size);
          raw_->deallocate(p);
        }
      free_blocks_.clear();
      stats_.cached_bytes = 0;
      ptr = raw_->allocate(size);
      if (ptr == nullptr) throw error("out of memory allocating ", size, " bytes");
    }
    ++stats_.system_allocations;
  }
  stats_.in_use_bytes += size;
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.in_use_bytes);
  CG_UNPOISON(ptr, bytes);
  CG_POISON(static_cast<char*>(ptr) + bytes, size - bytes);
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, size_t bytes) {
  const size_t size = rounded_size(bytes);
  std::lock_guard lock(mutex_);
  CG_ASSERT(stats_.in_use_bytes >= size);
  stats_.in_use_bytes -= size;
  stats_.cached_bytes += size;
  CG_POISON(ptr, size);
  free_blocks_[size].push_back(ptr);
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard lock(mutex_);
  stats_.peak_bytes = stats_.in_use_bytes;
}

void CachingAllocator::release_cached() {
  std::lock_guard lock(mutex_);
  for (auto& [size, blocks] : free_blocks_)
    for (void* p : blocks) {
      CG_UNPOISON(p, size);
      raw_->deallocate(p);
    }
  free_blocks_.clear();
  stats_.cached_bytes = 0;
}

}  // namespace cellgraph
