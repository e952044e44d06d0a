# One interface target carries the project's warning flags; every first-party target links it.
add_library(cellgraph_warnings INTERFACE)
target_compile_options(cellgraph_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor>)
if(CELLGRAPH_WERROR)
  target_compile_options(cellgraph_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()
