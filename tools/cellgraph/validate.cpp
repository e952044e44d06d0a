// cellgraph validate SPEC: parse, validate and compile a spec; one summary line.
#include <iostream>
#include <string>

#include "spec/compile.h"
#include "spec/parse.h"
#include "tools/cellgraph/commands.h"

namespace cellgraph::tools {

namespace {

int run_validate(const Args& args) {
  const std::string& path = args.positional(0);
  const spec::Space space = spec::parse_file(path);
  size_t edges = 0;
  for (const spec::Cell& c : space.cells)
    for (const spec::Node& n : c.nodes) edges += n.edges.size();
  const std::string summary = path + ": ok — " + std::to_string(space.cells.size()) +
                              " cell types, " + std::to_string(edges) + " edges";
  // A valid spec the compiler cannot build yet validates, and says so (none at present).
  if (const auto unsupported = spec::unsupported_by_compile(space)) {
    std::cout << summary << "; not compiled: " << unsupported->pointer << ": " << unsupported->what
              << "\n";
    return 0;
  }
  // Compiling too, as search, train and info will: errors only the built network shows
  // (an odd map at a factorized reduce, an op that cannot take a reduction edge's stride)
  // are reported here with the spec's file and pointer, not after a run has started.
  const ir::Graph graph = spec::compile(space);
  std::cout << summary << ", " << graph.candidates.size() << " candidate ops per network, "
            << graph.weight_count() << " weights\n";
  return 0;
}

}  // namespace

const Command& validate_command() {
  static const Command kCommand{
      .name = "validate",
      .summary = "check a spec (syntax, names, graph, shapes) and summarise it",
      .positionals = {"SPEC"},
      .flags = {},
      .details =
          "Reads the spec and compiles it as search and train will (shapes, strides).\n"
          "Exit status 0 when the spec is valid; otherwise 1 with the problem as\n"
          "SPEC:/json/pointer: message.",
      .run = run_validate};
  return kCommand;
}

}  // namespace cellgraph::tools
