# One interface target carries the project's warning flags; every first-party target links it.
add_library(cellgraph_warnings INTERFACE)
target_compile_options(cellgraph_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
  # C++20 designated initializers leave fields to their default member initializers on
  # purpose; g++ 12 warns about every such omission.
  -Wno-missing-field-initializers>)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # g++ 12 reports impossible overlaps in std::string concatenation at -O2/-O3 (GCC bug
  # 105329); with -Werror that false positive would fail the build.
  target_compile_options(cellgraph_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Wno-restrict>)
endif()
if(CELLGRAPH_WERROR)
  target_compile_options(cellgraph_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()
