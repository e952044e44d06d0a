// cellgraph derive RUN_DIR [--out FILE]: the fixed network of a search run's checkpoint, and
// what is known about its cell (NATS-Bench entry, skip-connection ratio).
#include <filesystem>
#include <iostream>

#include "algorithms/search_session.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "tools/cellgraph/cell_report.h"
#include "tools/cellgraph/commands.h"
#include "tools/cellgraph/run_dir.h"

namespace cellgraph::tools {

namespace {

int run_derive(const Args& args) {
  const std::string& dir = args.positional(0);
  const ConfigReader config(dir);
  if (config.string("command") != "search")
    throw error(dir, ": a '", config.string("command"),
                "' run; derive needs the directory of a search");
  // The network exactly as the run built it: the spec fitted to the data's shape.
  spec::Space space = config.space();
  algorithms::fit_space_to_data(space, shape_from_config(config));
  const io::Checkpoint ckpt = io::load_checkpoint(checkpoint_path(dir));
  const algorithms::Derived derived = algorithms::derive_from_checkpoint(space, ckpt);
  std::string json_path = dir + "/derived.json", genotype_path = dir + "/genotype.txt";
  if (args.has("out")) {
    json_path = args.get("out");
    std::filesystem::path g(json_path);
    genotype_path = (g.parent_path() / (g.stem().string() + ".genotype.txt")).string();
  }
  write_derived(derived, json_path, genotype_path);
  std::cerr << "derived from step " << ckpt.meta("step") << "; wrote " << json_path << " and "
            << genotype_path << "\n";
  // stdout keeps only the genotype (`cellgraph derive RUN > genotype.txt`); the cell's
  // NATS-Bench entry and skip ratio are also in derived.json's metadata.
  std::cerr << cell_facts_text(derived.space);
  std::cout << derived.genotype << "\n";
  return 0;
}

}  // namespace

const Command& derive_command() {
  static const Command kCommand{
      .name = "derive",
      .summary = "derive the fixed network from a search run's checkpoint",
      .positionals = {"RUN_DIR"},
      .flags = {{"out", "FILE",
                 "write the fixed spec here (and the genotype beside it, as "
                 "FILE-stem.genotype.txt)",
                 "RUN_DIR/derived.json"}},
      .details =
          "Prints the genotype on stdout; on stderr the cell's NATS-Bench index and test "
          "accuracies (a NATS-Bench cell) and its skip-connection ratio, which "
          "derived.json's metadata records too. Works on a finished or an interrupted run.",
      .run = run_derive};
  return kCommand;
}

}  // namespace cellgraph::tools
