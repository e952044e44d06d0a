// cuBLAS, opened on first use. Linked at build time, libcublas brings libcublasLt, whose
// loading alone cost every cellgraph process ~210 MiB of resident memory (its relocations
// and static tables: `cellgraph --help` peaked at 228 MiB linked against it, 12 MiB
// without), on machines without a GPU and in CPU-only runs too: 5% of a DARTS search step's
// peak at batch 64, and the margin of issue 17's memory target. So the CUDA backend opens
// it with dlopen when it first creates a cuBLAS handle and calls it through this table. A
// kernel that needs another cuBLAS function adds it here.
#pragma once

#include <cublas_v2.h>

namespace cellgraph::cuda {

struct CublasLibrary {
  cublasStatus_t (*create)(cublasHandle_t*);
  cublasStatus_t (*destroy)(cublasHandle_t);
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
  const char* (*status_name)(cublasStatus_t);
  const char* (*status_string)(cublasStatus_t);
};

// Opens the library on the first call; throws Error naming it (and dlerror's reason) when
// it cannot be opened or lacks a function, and tries again on the next call.
const CublasLibrary& cublas_library();

// Whether this process has opened it (tests: a CPU-only run never does).
bool cublas_library_opened();

}  // namespace cellgraph::cuda
