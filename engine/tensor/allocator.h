// Caching allocator: freed blocks go to a free list keyed by their rounded size and are
// handed out again to the next request of that size, so a training loop that repeats
// the same shapes stops calling the system allocator after its first step.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace cellgraph {

// The device's own allocation calls (malloc, cudaMalloc). Blocks are at least 64-byte aligned.
class RawAllocator {
 public:
  virtual ~RawAllocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr) = 0;
};

struct MemoryStats {
  size_t in_use_bytes = 0;        // held by live tensors (rounded sizes)
  size_t peak_bytes = 0;          // max of in_use_bytes since the last reset_peak()
  size_t cached_bytes = 0;        // free blocks kept for reuse
  size_t system_allocations = 0;  // calls that reached the RawAllocator
};

class CachingAllocator {
 public:
  explicit CachingAllocator(std::unique_ptr<RawAllocator> raw);
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(size_t bytes);
  void deallocate(void* ptr, size_t bytes);  // bytes as passed to allocate()
  MemoryStats stats() const;
  void reset_peak();
  void release_cached();  // hand every free block back to the system

  // Size class of a request: 512-byte granules below 1 MiB, 128 KiB granules above.
  static size_t rounded_size(size_t bytes);

 private:
  std::unique_ptr<RawAllocator> raw_;
  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_blocks_;
  MemoryStats stats_;
};

}  // namespace cellgraph
