// Layout and rendering of DOT text through graphviz's library (cgraph parses, gvc lays out
// with the `dot` engine and renders). The rest of cellgraph writes DOT text itself
// (viz/cell_dot.h), so graphviz is needed only to turn it into a picture, and its headers
// stay in this folder: a build without graphviz compiles unavailable.cpp instead of
// render.cpp, and `cellgraph draw --format dot` works the same either way.
#pragma once

#include <string>

namespace cellgraph::viz {

// True when this build renders through graphviz (CMake found libgvc and libcgraph).
bool graphviz_available();

// The `format` ("svg" or "png") picture of `dot`. `label` names the drawing in errors.
// Throws Error when the build has no graphviz (saying how to get it, and that --format dot
// needs none), when graphviz rejects the text, or when it has no renderer for the format.
std::string render_dot(const std::string& dot, const std::string& format, const std::string& label);

}  // namespace cellgraph::viz
