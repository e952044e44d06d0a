# CELLGRAPH_SANITIZE=ON builds every target (library, runner, tests, examples, benchmarks)
# with AddressSanitizer and UndefinedBehaviorSanitizer. Why an option and not a separate
# toolchain file: the tests run the runner binary that this same build produces, so the
# runner they check must carry the same instrumentation as the test binary; one switch on
# the whole tree guarantees that. scripts/sanitize configures build-sanitize/ with it and
# runs the suite.
#
# -fno-sanitize-recover=all makes every UBSan finding fatal (like ASan's), whatever
# UBSAN_OPTIONS says: a test that expects the runner to fail cannot then mistake a
# sanitizer report for the failure it expected, because scripts/sanitize also collects the
# reports in files and fails when there is any. float-cast-overflow (a NaN or out-of-range
# float converted to an integer) is undefined behaviour that -fsanitize=undefined leaves
# out in GCC, so it is named too. Division of floats by zero is not in the list: IEEE 754
# defines it, and the engine relies on inf/NaN propagating to find diverged runs.
#
# Warnings: GCC documents that sanitizer instrumentation can raise false warnings
# (-Wmaybe-uninitialized, -Wstringop-overflow); a sanitized build is therefore never
# combined with CELLGRAPH_WERROR (scripts/sanitize leaves it OFF).
if(CELLGRAPH_SANITIZE)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    message(FATAL_ERROR "CELLGRAPH_SANITIZE needs GCC or Clang (got ${CMAKE_CXX_COMPILER_ID})")
  endif()
  if(CELLGRAPH_HAVE_CUDA)
    # ASan reserves the low address range the CUDA driver maps; the two do not mix without
    # special runtime options. Sanitize the CPU build.
    message(FATAL_ERROR "CELLGRAPH_SANITIZE needs CELLGRAPH_CUDA=OFF")
  endif()
  set(CELLGRAPH_SANITIZE_FLAGS -fsanitize=address,undefined,float-cast-overflow
                              -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:${CELLGRAPH_SANITIZE_FLAGS}>")
  add_link_options(-fsanitize=address,undefined,float-cast-overflow)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC links ASan and UBSan as two shared runtimes, and then UBSan ignores the log_path
    # of UBSAN_OPTIONS (its reports go to stderr, which the CLI tests capture and discard
    # with the runner's other output). Linked statically into each executable, both
    # runtimes honour it, so scripts/sanitize finds every report in its log folder.
    add_link_options(-static-libasan -static-libubsan)
  endif()
  message(STATUS "cellgraph: AddressSanitizer + UndefinedBehaviorSanitizer ON")
endif()
