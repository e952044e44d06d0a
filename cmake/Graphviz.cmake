# CELLGRAPH_GRAPHVIZ=AUTO renders `cellgraph draw --format svg|png` through graphviz's library
# (cgraph + gvc, Debian libgraphviz-dev) when pkg-config finds it; ON requires it; OFF never
# looks. Sets CELLGRAPH_HAVE_GRAPHVIZ. Without it the runner still writes DOT text, and
# svg/png requests fail with an error saying how to get them (viz/graphviz/unavailable.cpp).
set(CELLGRAPH_HAVE_GRAPHVIZ OFF)
if(NOT CELLGRAPH_GRAPHVIZ MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "CELLGRAPH_GRAPHVIZ must be AUTO, ON or OFF (got '${CELLGRAPH_GRAPHVIZ}')")
endif()
if(CELLGRAPH_GRAPHVIZ STREQUAL "OFF")
  message(STATUS "cellgraph: graphviz rendering OFF (CELLGRAPH_GRAPHVIZ=OFF): "
                 "`cellgraph draw` writes DOT only")
else()
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(GRAPHVIZ QUIET IMPORTED_TARGET libgvc libcgraph)
  endif()
  if(GRAPHVIZ_FOUND)
    set(CELLGRAPH_HAVE_GRAPHVIZ ON)
    message(STATUS "cellgraph: graphviz rendering ON (libgvc ${GRAPHVIZ_libgvc_VERSION})")
  elseif(CELLGRAPH_GRAPHVIZ STREQUAL "ON")
    message(FATAL_ERROR "CELLGRAPH_GRAPHVIZ=ON but pkg-config found no libgvc/libcgraph "
                        "(Debian: libgraphviz-dev; scripts/setup installs it)")
  else()
    message(STATUS "cellgraph: graphviz rendering OFF (libgvc/libcgraph not found): "
                   "`cellgraph draw` writes DOT only")
  endif()
endif()
