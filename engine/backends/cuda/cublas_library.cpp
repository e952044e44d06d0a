#include "engine/backends/cuda/cublas_library.h"

#include <dlfcn.h>

#include <atomic>

#include "engine/error.h"

// The build sets the path CMake found (the library the headers belong to).
#ifndef CELLGRAPH_CUBLAS_LIBRARY
#define CELLGRAPH_CUBLAS_LIBRARY "libcublas.so"
#endif

namespace cellgraph::cuda {

namespace {
std::atomic<bool> g_opened{false};

CublasLibrary open_cublas() {
  const char* path = CELLGRAPH_CUBLAS_LIBRARY;
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    throw error("cannot open cuBLAS (", path, "): ", why != nullptr ? why : "unknown reason");
  }
  const auto symbol = [&](const char* name) {
    void* address = dlsym(handle, name);
    if (address == nullptr) throw error("cuBLAS (", path, ") has no function ", name);
    return address;
  };
  CublasLibrary lib{};
  // cublas_v2.h maps cublasCreate and friends to these _v2 symbols.
  lib.create = reinterpret_cast<decltype(lib.create)>(symbol("cublasCreate_v2"));
  lib.destroy = reinterpret_cast<decltype(lib.destroy)>(symbol("cublasDestroy_v2"));
  lib.set_stream = reinterpret_cast<decltype(lib.set_stream)>(symbol("cublasSetStream_v2"));
  lib.status_name = reinterpret_cast<decltype(lib.status_name)>(symbol("cublasGetStatusName"));
  lib.status_string =
      reinterpret_cast<decltype(lib.status_string)>(symbol("cublasGetStatusString"));
  g_opened = true;
  return lib;
}
}  // namespace

const CublasLibrary& cublas_library() {
  static const CublasLibrary kLib = open_cublas();
  return kLib;
}

bool cublas_library_opened() { return g_opened; }

}  // namespace cellgraph::cuda
