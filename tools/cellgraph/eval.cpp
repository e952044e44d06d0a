// cellgraph eval RUN_DIR_OR_SPEC: test accuracy and loss of a trained run, or of a fixed
// spec's seeded initial weights, beside the network's parameter count and MACs per sample.
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>

#include "algorithms/absorb.h"
#include "algorithms/search_session.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tools/cellgraph/commands.h"
#include "tools/cellgraph/run_dir.h"
#include "tools/cellgraph/train_session.h"

namespace cellgraph::tools {

namespace {

using spec::JsonValue;

int run_eval(const Args& args) {
  const std::string& target = args.positional(0);
  apply_threads(args);
  const int64_t limit = args.get_int("test-subset", 0, 0, std::numeric_limits<int64_t>::max());
  const int64_t batch = args.get_int("batch", 256, 1, 1 << 20);
  std::error_code ec;
  const bool is_run = std::filesystem::is_directory(target, ec);
  spec::Space space;
  ChannelStats stats;
  std::string data;
  std::string weights_from;
  std::optional<algorithms::Absorbed> absorbed;  // a one-stage ISTA-NAS search run
  if (is_run) {
    const ConfigReader config(target);
    const bool one_stage =
        config.string("command") == "search" && config.string("algo") == "ista-onestage";
    if (config.string("command") != "train" && !one_stage)
      throw error(target, ": a '", config.string("command"),
                  "' run; eval takes the directory of a train run or of an ista-onestage "
                  "search (for another search: derive, then train the derived.json)");
    space = config.space();
    algorithms::fit_space_to_data(space, shape_from_config(config));
    stats = stats_from_json(config, "normalization");
    data = args.get("data", config.string("data"));
    weights_from = checkpoint_path(target);
    if (one_stage) {
      absorbed = algorithms::absorb_from_checkpoint(space, io::load_checkpoint(weights_from));
      space = absorbed->space;
    }
  } else {
    space = spec::parse_file(target);
    require_fixed(space);
    data = args.get("data", "fashion-mnist");
    // Normalised as train would: with the training split's statistics.
    const TrainingData train = load_training_data(data, 0);
    stats = train.stats;
    note(algorithms::fit_space_to_data(space, algorithms::data_shape(train.train)));
  }
  const Dataset test = load_test_data(data, stats, limit);
  const algorithms::DataShape shape = algorithms::data_shape(test);
  const spec::Network& net = space.network;
  if (shape.channels != net.in_channels || shape.height != net.in_height ||
      shape.width != net.in_width || shape.classes != net.classes)
    throw error(target, ": the network takes ",
                shape_text(net.in_channels, net.in_height, net.in_width), " with ", net.classes,
                " classes; ", data, " has ", shape_text(shape.channels, shape.height, shape.width),
                " with ", shape.classes);
  const uint64_t seed = uint64_t(args.get_int("seed", 0, 0, std::numeric_limits<int64_t>::max()));
  std::optional<ir::Graph> compiled;
  std::optional<ir::ParameterStore> seeded;
  if (!absorbed) {
    compiled.emplace(spec::compile(space));
    seeded.emplace(*compiled, seed);
  }
  const ir::Graph& graph = absorbed ? absorbed->graph : *compiled;
  const ir::ParameterStore& params = absorbed ? absorbed->params : *seeded;
  int64_t step = 0;
  if (absorbed) {
    step = io::load_checkpoint(weights_from).meta_int("step");
  } else if (is_run) {
    const io::Checkpoint ckpt = io::load_checkpoint(weights_from);
    if (ckpt.meta("kind") != "train")
      throw error(weights_from, ": a '", ckpt.meta("kind"), "' checkpoint, not a train run's");
    restore_parameters(graph, params, ckpt);
    step = ckpt.meta_int("step");
  }
  const EvalResult r = evaluate(graph, params, test, batch);
  if (args.has("json")) {
    JsonValue j = JsonValue::object();
    j.set("source", target);
    j.set("weights_from", is_run ? weights_from : "initial (seed " + std::to_string(seed) + ")");
    j.set("step", step);
    j.set("data", data);
    j.set("test_acc", r.accuracy);
    j.set("test_loss", r.loss);
    j.set("correct", r.correct);
    j.set("count", r.count);
    // Per DARTS' count: the network's trained weights and forward MACs of one sample; the
    // graph has no auxiliary head or drop-path (those exist in training only).
    j.set("params", graph.weight_count());
    j.set("weights", graph.weight_count());  // the same number, the key's older name
    j.set("macs", graph.macs());
    std::cout << spec::dump(j, 2) << "\n";
  } else {
    std::cout << target << ": test accuracy " << 100 * r.accuracy << "% (" << r.correct << "/"
              << r.count << "), loss " << r.loss << "; " << graph.weight_count() << " parameters, "
              << graph.macs() << " MACs per sample\n";
  }
  return 0;
}

}  // namespace

const Command& eval_command() {
  static const Command command{
      .name = "eval",
      .summary = "test accuracy and loss of a train run, or of a fixed spec's initial weights",
      .positionals = {"RUN_DIR_OR_SPEC"},
      .flags = {{"data", "DATA", "data set whose test split to use", "the run's, or fashion-mnist"},
                {"test-subset", "N", "evaluate on the first N test images (0: all)", "0"},
                {"batch", "B", "evaluation batch size", "256"},
                {"seed", "S", "seed of the initial weights (spec only)", "0"},
                threads_flag(),
                {"json", "", "print one JSON object", ""}},
      .details =
          "A run directory is evaluated with its checkpoint's weights and its training\n"
          "set's normalisation; a spec with seeded initial weights (a baseline).",
      .run = run_eval};
  return command;
}

}  // namespace cellgraph::tools
