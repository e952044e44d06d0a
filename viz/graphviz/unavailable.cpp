// Built instead of render.cpp when CMake found no graphviz: rendering is refused with the
// way to get it.
#include "engine/error.h"
#include "viz/graphviz/render.h"

namespace cellgraph::viz {

bool graphviz_available() { return false; }

std::string render_dot(const std::string& /*dot*/, const std::string& format,
                       const std::string& label) {
  throw error(label, ": --format ", format,
              " needs graphviz, and this cellgraph was built without it; install Debian's "
              "libgraphviz-dev (scripts/setup does) and rebuild, or write --format dot and "
              "render it with graphviz's `dot` command");
}

}  // namespace cellgraph::viz
