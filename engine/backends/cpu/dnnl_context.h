// oneDNN plumbing shared by the CPU kernels: one engine and stream, plain-layout memory
// descriptors for our tensors, a primitive cache keyed by shape and attributes, and
// CG_DNNL, which turns a failing oneDNN call into an Error quoting the statement.
// Only files in engine/backends/cpu/ include this (and with it dnnl.hpp).
#pragma once

#include <string>
#include <unordered_map>
#include <utility>

#include <dnnl.hpp>

#include "engine/error.h"
#include "engine/tensor/tensor.h"

namespace cellgraph::cpu {

dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();

// Plain row-major descriptor: x / nc / nchw by rank (the tensor must be contiguous).
dnnl::memory::desc plain_desc(const Shape& shape);
dnnl::memory::dims dims_of(const Shape& shape);
// Wraps a contiguous tensor's buffer (no copy).
dnnl::memory wrap(const Tensor& t);
dnnl::memory wrap(const Tensor& t, const dnnl::memory::desc& desc);

// Builds a cache key from streamable parts ("conv2d|" << shape << ...).
template <typename... Parts>
std::string cache_key(Parts&&... parts) {
  return detail::concat(std::forward<Parts>(parts)...);
}

// Primitives are costly to create; each kernel family keeps its own Entry type (a
// primitive plus whatever descriptors it needs) and creates it once per key.
template <typename Entry, typename Make>
Entry& cached(const std::string& key, Make&& make) {
  static std::unordered_map<std::string, Entry> cache;
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, make()).first;
  return it->second;
}

}  // namespace cellgraph::cpu

// Evaluates a oneDNN call; a dnnl::error becomes a cellgraph::Error that quotes it.
#define CG_DNNL(...)                                                                               \
  [&]() -> decltype(auto) {                                                                        \
    try {                                                                                          \
      return (__VA_ARGS__);                                                                        \
    } catch (const dnnl::error& cg_dnnl_error_) {                                                  \
      throw ::cellgraph::error("oneDNN call `", #__VA_ARGS__, "` failed: ", cg_dnnl_error_.what(), \
                               " (status ", static_cast<int>(cg_dnnl_error_.status), ")");         \
    }                                                                                              \
  }()
