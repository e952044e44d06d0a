// cellgraph eval RUN_DIR_OR_SPEC: test accuracy and loss of a trained run, or of a fixed
// spec's seeded initial weights, beside the network's parameter count and MACs per sample.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>

#include "algorithms/search_session.h"
#include "algorithms/train_session.h"
#include "engine/error.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tools/cellgraph/commands.h"
#include "tools/cellgraph/run_dir.h"
#include "tools/cellgraph/text_data.h"

namespace cellgraph::tools {

namespace {

using spec::JsonValue;

// A language model's test perplexity: its test text in one stream (DARTS' test batch of 1),
// the hidden state carried from window to window.
int eval_language_model(const Args& args, const std::string& target, const std::string& data,
                        FixedNetwork& net, int64_t limit, Device device) {
  const Corpus corpus = load_run_corpus(data, 0, limit);
  if (corpus.vocabulary.size() != net.space.network.classes)
    throw error(target, ": the language model has a vocabulary of ", net.space.network.classes,
                " words; ", data, " has ", corpus.vocabulary.size());
  net.params.move_to(device);
  const algorithms::EvalResult r =
      algorithms::evaluate(net.graph, net.params, *test_batches(corpus, net.space));
  const double perplexity = std::exp(r.loss);
  if (args.has("json")) {
    JsonValue j = JsonValue::object();
    j.set("source", target);
    j.set("weights_from", net.weights_from);
    j.set("step", net.step);
    j.set("data", data);
    j.set("test_ppl", perplexity);
    j.set("test_loss", r.loss);
    j.set("test_acc", r.accuracy);
    j.set("count", r.count);
    j.set("params", net.graph.weight_count());
    j.set("macs", net.graph.macs());
    std::cout << spec::dump(j, 2) << "\n";
  } else {
    std::cout << target << ": test perplexity " << perplexity << " (loss " << r.loss << " over "
              << r.count << " tokens, next-word accuracy " << 100 * r.accuracy << "%); "
              << net.graph.weight_count() << " parameters, " << net.graph.macs()
              << " MACs per sequence\n";
  }
  return 0;
}

int run_eval(const Args& args) {
  const std::string& target = args.positional(0);
  apply_threads(args);
  const Device device = selected_device(args);
  const int64_t limit = args.get_int("test-subset", 0, 0, std::numeric_limits<int64_t>::max());
  const int64_t batch = args.get_int("batch", 256, 1, 1 << 20);
  std::error_code ec;
  const bool is_run = std::filesystem::is_directory(target, ec);
  ChannelStats stats;
  std::string data;
  std::optional<FixedNetwork> net;
  if (is_run) {
    const ConfigReader config(target);
    if (!config.has("corpus")) stats = stats_from_json(config, "normalization");
    data = args.get("data", config.string("data"));
    net.emplace(load_run_network(target, "eval"));
  } else {
    spec::Space space = spec::parse_file(target);
    algorithms::require_fixed(space);
    if (is_language_model(space)) {
      data = args.get("data", kDefaultCorpus);
      const Corpus corpus = load_corpus(data);
      note(algorithms::fit_space_to_data(space,
                                         algorithms::vocabulary_shape(corpus.vocabulary.size())));
    } else {
      data = args.get("data", "fashion-mnist");
      // Normalised as train would: with the training split's statistics.
      const TrainingData train = load_training_data(data, 0);
      stats = train.stats;
      note(algorithms::fit_space_to_data(space, algorithms::data_shape(train.train)));
    }
    const uint64_t seed = uint64_t(args.get_int("seed", 0, 0, std::numeric_limits<int64_t>::max()));
    ir::Graph graph = spec::compile(space);
    ir::ParameterStore params(graph, seed);
    net.emplace(FixedNetwork{std::move(space), std::move(graph), std::move(params),
                             "initial weights (seed " + std::to_string(seed) + ")", 0});
  }
  if (net->graph.state_in.valid())
    return eval_language_model(args, target, data, *net, limit, device);
  const Dataset test = load_test_data(data, stats, limit);
  const algorithms::DataShape shape = algorithms::data_shape(test);
  const spec::Network& network = net->space.network;
  if (shape.channels != network.in_channels || shape.height != network.in_height ||
      shape.width != network.in_width || shape.classes != network.classes)
    throw error(target, ": the network takes ",
                shape_text(network.in_channels, network.in_height, network.in_width), " with ",
                network.classes, " classes; ", data, " has ",
                shape_text(shape.channels, shape.height, shape.width), " with ", shape.classes);
  const ir::Graph& graph = net->graph;
  net->params.move_to(device);
  const ir::ParameterStore& params = net->params;
  const int64_t step = net->step;
  const algorithms::EvalResult r = algorithms::evaluate(graph, params, test, batch);
  if (args.has("json")) {
    JsonValue j = JsonValue::object();
    j.set("source", target);
    j.set("weights_from", is_run ? checkpoint_path(target) : net->weights_from);
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
  static const Command kCommand{
      .name = "eval",
      .summary = "test accuracy and loss of a train run, or of a fixed spec's initial weights",
      .positionals = {"RUN_DIR_OR_SPEC"},
      .flags = {{"data", "DATA", "data set whose test split to use",
                 "the run's, or fashion-mnist (a language model: fortunes)"},
                {"test-subset", "N",
                 "evaluate on the first N test images (a language model: tokens; 0: all)", "0"},
                {"batch", "B", "evaluation batch size", "256"},
                {"seed", "S", "seed of the initial weights (spec only)", "0"},
                threads_flag(),
                device_flag(),
                {"json", "", "print one JSON object", ""}},
      .details =
          "A run directory is evaluated with its checkpoint's weights and its training\n"
          "set's normalisation; a spec with seeded initial weights (a baseline).",
      .run = run_eval};
  return kCommand;
}

}  // namespace cellgraph::tools
