#include "engine/tensor/allocator.h"

#include <algorithm>

#include "engine/error.h"

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
        for (void* p : blocks) raw_->deallocate(p);
      free_blocks_.clear();
      stats_.cached_bytes = 0;
      ptr = raw_->allocate(size);
      if (ptr == nullptr) throw error("out of memory allocating ", size, " bytes");
    }
    ++stats_.system_allocations;
  }
  stats_.in_use_bytes += size;
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.in_use_bytes);
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, size_t bytes) {
  const size_t size = rounded_size(bytes);
  std::lock_guard lock(mutex_);
  CG_ASSERT(stats_.in_use_bytes >= size);
  stats_.in_use_bytes -= size;
  stats_.cached_bytes += size;
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
    for (void* p : blocks) raw_->deallocate(p);
  free_blocks_.clear();
  stats_.cached_bytes = 0;
}

}  // namespace cellgraph
