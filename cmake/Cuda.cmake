# CELLGRAPH_CUDA=AUTO builds the CUDA backend when nvcc and cuDNN are found; ON requires
# them; OFF never looks. Sets CELLGRAPH_HAVE_CUDA, CUDNN_INCLUDE_DIR and CUDNN_LIBRARY.
# A CUDA build still runs on machines without a GPU: the backend then reports itself
# unavailable at run time (engine/backends/cuda/cuda_backend.cpp).
set(CELLGRAPH_HAVE_CUDA OFF)
if(NOT CELLGRAPH_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "CELLGRAPH_CUDA must be AUTO, ON or OFF (got '${CELLGRAPH_CUDA}')")
endif()
if(NOT CELLGRAPH_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  # nvcc compiles host code with the same compiler as the C++ sources.
  if(NOT CMAKE_CUDA_HOST_COMPILER)
    set(CMAKE_CUDA_HOST_COMPILER ${CMAKE_CXX_COMPILER})
  endif()
  check_language(CUDA)
  find_package(CUDAToolkit QUIET)
  find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include
            /usr/include)
  find_library(CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64
               /usr/lib/x86_64-linux-gnu)
  if(CMAKE_CUDA_COMPILER AND CUDAToolkit_FOUND AND CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
    # Before enable_language, which would otherwise pick nvcc's default (sm_75 for CUDA 13).
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)  # H100/H200 are the GPUs we run on
    endif()
    # One CUDA runtime in the process: the shared one that CUDA::cudart links, not CMake's
    # default static copy for targets with .cu sources.
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    enable_language(CUDA)
    # C++20 for .cu files like the rest (targets without CUDA_STANDARD take CXX_STANDARD).
    # CMake 3.25 does not know nvcc's C++20 flag (12.0+ has it): teach it, as 3.26 does.
    if(NOT "cuda_std_20" IN_LIST CMAKE_CUDA_COMPILE_FEATURES
       AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
      list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
    endif()
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(CMAKE_CUDA_EXTENSIONS OFF)
    set(CELLGRAPH_HAVE_CUDA ON)
    # Host-side warnings for .cu files too; CELLGRAPH_WERROR makes nvcc's own warnings and
    # the host compiler's errors.
    target_compile_options(cellgraph_warnings INTERFACE
      $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wno-missing-field-initializers>)
    if(CELLGRAPH_WERROR)
      target_compile_options(cellgraph_warnings INTERFACE
        $<$<COMPILE_LANGUAGE:CUDA>:--Werror=all-warnings>
        $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Werror>)
    endif()
    message(STATUS "cellgraph: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                   "sm ${CMAKE_CUDA_ARCHITECTURES}, cuDNN ${CUDNN_LIBRARY})")
  elseif(CELLGRAPH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "CELLGRAPH_CUDA=ON but nvcc, the CUDA toolkit or cuDNN was not found")
  else()
    message(STATUS "cellgraph: CUDA backend OFF (nvcc/cuDNN not found)")
  endif()
else()
  message(STATUS "cellgraph: CUDA backend OFF (CELLGRAPH_CUDA=OFF)")
endif()
