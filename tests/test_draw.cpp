// Cell drawings: graphviz rendering when it is built in (viz/graphviz/render.h), or its
// refusal with advice when it is not.
#include <string>

#include <doctest/doctest.h>

#include "tests/support/cli.h"
#include "tests/support/errors.h"
#include "viz/graphviz/render.h"

using namespace cellgraph;

namespace {
using testing::error_of;
using testing::has;

const char* const kTwoNodes = "digraph g { a -> b [label=\"sep_conv_3x3\"]; }";
}  // namespace

TEST_CASE("draw: graphviz renders DOT to an svg document and a png image") {
  if (!viz::graphviz_available()) {
    MESSAGE("skipped: built without graphviz (CELLGRAPH_GRAPHVIZ found no libgvc)");
    const std::string message = error_of([] { viz::render_dot(kTwoNodes, "svg", "cell"); });
    CHECK(has(message, "libgraphviz-dev"));
    CHECK(has(message, "--format dot"));
    return;
  }
  const std::string svg = viz::render_dot(kTwoNodes, "svg", "cell");
  CHECK(has(svg, "<svg"));
  CHECK(has(svg, "</svg>"));
  CHECK(has(svg, "sep_conv_3x3"));
  const std::string png = viz::render_dot(kTwoNodes, "png", "cell");
  REQUIRE(png.size() > 8);
  CHECK(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST_CASE("draw: graphviz errors name the drawing and quote graphviz") {
  if (!viz::graphviz_available()) {
    MESSAGE("skipped: built without graphviz");
    return;
  }
  const std::string bad = error_of([] { viz::render_dot("digraph { a -> ", "svg", "x.dot"); });
  CHECK(bad.rfind("x.dot: graphviz rejected the DOT text: ", 0) == 0);
  const std::string format =
      error_of([] { viz::render_dot(kTwoNodes, "no-such-format", "x.dot"); });
  CHECK(format.rfind("x.dot: graphviz cannot render 'no-such-format': ", 0) == 0);
}
