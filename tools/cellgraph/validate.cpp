// cellgraph validate SPEC: parse, validate and compile a spec; one summary line.
#include <iostream>

#include "spec/compile.h"
#include "spec/parse.h"
#include "tools/cellgraph/commands.h"

namespace cellgraph::tools {

namespace {

int run_validate(const Args& args) {
  const std::string& path = args.positional(0);
  const spec::Space space = spec::parse_file(path);
  // Compiling too: shape errors (a stride that does not divide, channels that do not
  // match) only show when the network is built.
  const ir::Graph graph = spec::compile(space);
  size_t edges = 0;
  for (const spec::Cell& c : space.cells)
    for (const spec::Node& n : c.nodes) edges += n.edges.size();
  std::cout << path << ": ok — " << space.cells.size() << " cell types, " << edges << " edges, "
            << graph.candidates.size() << " candidate ops per network, " << graph.weight_count()
            << " weights\n";
  return 0;
}

}  // namespace

const Command& validate_command() {
  static const Command command{
      .name = "validate",
      .summary = "check a spec (syntax, names, graph, shapes) and summarise it",
      .positionals = {"SPEC"},
      .flags = {},
      .details =
          "Exit status 0 when the spec is valid; otherwise 1 with the problem as\n"
          "SPEC:/json/pointer: message.",
      .run = run_validate};
  return command;
}

}  // namespace cellgraph::tools
