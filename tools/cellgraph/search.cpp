// cellgraph search SPEC --out DIR | --resume DIR: architecture search with checkpoints,
// metrics and derivation (docs/cli.md). Every algorithm-specific flag comes from the
// algorithms' hyperparameter tables (algorithms/algorithm.h): this file names none.
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <set>

#include "algorithms/search_session.h"
#include "algorithms/width.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/threads.h"
#include "spec/parse.h"
#include "tools/cellgraph/commands.h"
#include "tools/cellgraph/progress.h"
#include "tools/cellgraph/run_dir.h"
#include "tools/cellgraph/text_data.h"

namespace cellgraph::tools {

namespace {

using algorithms::Algorithm;
using algorithms::HyperValues;
using algorithms::RunRecord;
using algorithms::SearchOptions;
using algorithms::SearchSession;
using spec::JsonValue;

// Everything that defines a run; stored in config.json and read back on --resume.
// The space in RunBasics is as written, before fitting to the data.
struct SearchConfig : RunBasics {
  SearchConfig() {
    epochs = 50;
    batch = 64;
  }
  std::string algo = "darts";
  double train_fraction = 0.5;
  HyperValues common{algorithms::search_hyperparameters()};
  HyperValues own;  // the algorithm's own table

  SearchOptions options() const {
    SearchOptions o{.algorithm = algo,
                    .epochs = epochs,
                    .batch_size = batch,
                    .max_steps = max_steps,
                    .seed = uint64_t(seed),
                    .train_fraction = train_fraction,
                    .log_every = log_every};
    algorithms::apply_search_hyperparameters(common, o);
    o.hyper = own;
    return o;
  }
};

// The algorithms whose tables have `flag`, as "a or b".
std::string owners_of(const std::string& flag) {
  std::string out;
  for (const Algorithm* a : algorithms::algorithms())
    if (a->default_hyperparameters().has(flag))
      out += std::string(out.empty() ? "" : " or ") + a->name();
  return out;
}

SearchConfig config_from_flags(const Args& args) {
  SearchConfig c;
  if (args.positional_count() == 0)
    throw error(
        "cellgraph search: missing SPEC; usage: cellgraph search SPEC --out DIR, or "
        "cellgraph search --resume DIR");
  if (!args.has("out")) throw error("cellgraph search: missing --out DIR (where the run goes)");
  c.spec_path = args.positional(0);
  c.algo = args.get("algo", c.algo);
  const Algorithm& algorithm = algorithms::find_algorithm(c.algo);  // before loading data
  c.own = algorithm.default_hyperparameters();
  read_basics_flags(args, c);
  // Without a validation step the weights train on the whole training set.
  if (!algorithm.has_validation_step()) c.train_fraction = 1.0;
  c.train_fraction = args.get_double("train-fraction", c.train_fraction, 0.001, 1.0);
  for (const std::string& flag : args.given())
    if (c.common.has(flag)) c.common.set_text(flag, args.get(flag));
  apply_algorithm_flags(args, "search", c.algo, c.own);
  c.space = spec::parse_file(c.spec_path);  // after the flags: their errors come first
  if (is_language_model(c.space)) {
    // DARTS' RNN search settings and a text corpus, unless the flags say otherwise.
    if (!args.has("data")) c.data = kDefaultCorpus;
    use_rnn_search_defaults(args, c.common);
  }
  if (c.space.searches_widths()) {
    // Network Slimming's weight training, unless the flags say otherwise (config.json
    // records what the run used, so a resume reads these back).
    if (!args.has("lr")) c.common.set_number("lr", algorithms::kWidthSearchLr);
    if (!args.has("weight-decay"))
      c.common.set_number("weight-decay", algorithms::kWidthSearchWeightDecay);
  }
  return c;
}

// `stats`: an image run's normalisation; `corpus`: a language model's text (then no stats).
JsonValue config_json(const SearchConfig& c, const algorithms::DataShape& fitted,
                      const ChannelStats* stats, const Corpus* corpus) {
  JsonValue j = JsonValue::object();
  j.set("command", "search");
  j.set("cellgraph_version", CELLGRAPH_VERSION);
  write_basics(j, c);
  j.set("algo", c.algo);
  j.set("train_fraction", c.train_fraction);
  c.common.write_json(j);
  c.own.write_json(j);
  j.set("threads", num_threads());
  if (corpus != nullptr) {
    j.set("corpus", corpus_json(*corpus));
  } else {
    j.set("input", input_json(fitted));
    j.set("normalization", stats_json(*stats));
  }
  j.set("classes", fitted.classes);
  j.set("spec", space_json(c.space));
  return j;
}

// The session over the run's data: images (the training set split in two) or a corpus
// (weights on its train text, the architecture on its valid text, as DARTS' RNN search).
struct SearchData {
  std::optional<TrainingData> images;
  std::optional<Corpus> corpus;
  algorithms::DataShape shape;
};

SearchData load_search_data(const SearchConfig& config) {
  SearchData d;
  if (!is_language_model(config.space)) {
    d.images = load_training_data(config.data, config.subset);
    d.shape = algorithms::data_shape(d.images->train);
    return d;
  }
  d.corpus = load_run_corpus(config.data, config.subset);
  d.shape = algorithms::vocabulary_shape(d.corpus->vocabulary.size());
  return d;
}

std::unique_ptr<SearchSession> make_session(const spec::Space& fitted, const SearchData& data,
                                            const SearchOptions& options) {
  if (data.images) return std::make_unique<SearchSession>(fitted, data.images->train, options);
  const int64_t steps = sequence_length(fitted);
  const Algorithm& algorithm = algorithms::find_algorithm(options.algorithm);
  return std::make_unique<SearchSession>(
      fitted, text_batches(*data.corpus, CorpusSplit::train, options.batch_size, steps),
      algorithm.has_validation_step()
          ? text_batches(*data.corpus, CorpusSplit::valid, options.batch_size, steps)
          : nullptr,
      options);
}

SearchConfig config_from_file(const ConfigReader& r) {
  if (r.string("command") != "search")
    throw error(r.file(), ": a '", r.string("command"), "' run, not a search");
  SearchConfig c;
  read_basics(r, c);
  c.algo = r.string("algo");
  const Algorithm& algorithm = algorithms::find_algorithm(c.algo);
  c.own = algorithm.default_hyperparameters();
  c.train_fraction = r.number("train_fraction");
  // Keys of other algorithms (earlier versions wrote every algorithm's) are ignored.
  c.common.read_json(r.root(), r.file());
  c.own.read_json(r.root(), r.file());
  return c;
}

// "  derived cell: NATS-Bench #6111, test accuracy CIFAR-10 94.37%, ..." from an epoch
// record's nats_bench object (algorithms/cell_facts.h).
std::string nats_line(const JsonValue& nats) {
  char text[160];
  std::snprintf(text, sizeof text,
                "  derived cell: NATS-Bench #%lld, test accuracy CIFAR-10 %.2f%%, CIFAR-100 "
                "%.2f%%, ImageNet16-120 %.2f%%",
                (long long)nats.find("index")->as_integer(), nats.find("cifar10")->as_double(),
                nats.find("cifar100")->as_double(), nats.find("imagenet16_120")->as_double());
  return text;
}

int run_search(const Args& args) {
  const bool resume = args.has("resume");
  const std::string dir = resume ? args.get("resume") : args.get("out");
  if (resume) check_resume_flags(args, "search", "SPEC", dir);
  apply_threads(args);
  apply_recompute(args);
  const Device device = selected_device(args);
  std::unique_ptr<ConfigReader> reader;
  SearchConfig config;
  if (resume) {
    reader = std::make_unique<ConfigReader>(dir);
    config = config_from_file(*reader);
    if (reader->integer("threads") != num_threads())
      note("the run used " + std::to_string(reader->integer("threads")) + " threads, this " +
           "process " + std::to_string(num_threads()) + ": results can differ in the last bits " +
           "from an uninterrupted run");
  } else {
    config = config_from_flags(args);
    check_new_run_dir(dir);
  }

  const SearchData data = load_search_data(config);
  const algorithms::DataShape& shape = data.shape;
  spec::Space fitted = config.space;
  note(algorithms::fit_space_to_data(fitted, shape));
  SearchOptions options = config.options();
  options.device = device;
  const std::unique_ptr<SearchSession> session_owner = make_session(fitted, data, options);
  SearchSession& session = *session_owner;

  JsonValue config_doc = config_json(config, shape, data.images ? &data.images->stats : nullptr,
                                     data.corpus ? &*data.corpus : nullptr);
  std::optional<int64_t> metrics_bytes;
  if (resume)
    metrics_bytes = resume_from_checkpoint(session, args, dir, *reader, config_doc);
  else
    create_run_dir(dir);  // only now: a failed start leaves no empty run directory behind
  MetricsLog log(metrics_path(dir), metrics_bytes);
  if (!config.tensorboard.empty()) {
    log.mirror_to_tensorboard(config.tensorboard,
                              resume ? std::optional(session.global_step()) : std::nullopt);
    note("TensorBoard events in " + config.tensorboard + " (tensorboard --logdir " +
         config.tensorboard + ")");
  }
  write_file_atomic(config_path(dir), spec::dump(config_doc, 2) + "\n");

  Progress progress;
  std::cerr << (resume ? "resuming " : "searching ") << dir << ": " << config.algo << ", "
            << (data.images ? std::to_string(data.images->train.size()) + " training images " +
                                  shape_text(shape.channels, shape.height, shape.width)
                            : corpus_summary(*data.corpus))
            << ", " << session.steps_per_epoch() << " steps per epoch, "
            << session.graph().weight_count() << " weights"
            << (resume ? ", from step " + std::to_string(session.global_step()) : "") << "\n";
  RunRecord last_epoch;  // the bar shows it after an epoch's last step (the sums restart)
  session.set_record_callback([&](const RunRecord& r) {
    log.write(record_json(r));
    if (r.kind == RunRecord::Kind::epoch) last_epoch = r;
    // A log record at an epoch's last step says what the epoch record will say.
    const bool at_epoch_end = session.step_in_epoch() == session.steps_per_epoch();
    if (r.kind == RunRecord::Kind::epoch || (!progress.terminal() && !at_epoch_end))
      progress.line(record_line(r, session.options().epochs));
    if (r.kind == RunRecord::Kind::epoch)
      if (const JsonValue* nats = r.details.find("nats_bench")) progress.line(nats_line(*nats));
  });

  if (!run_steps(session, "search", dir, log, progress, last_epoch, resume))
    return interrupted_exit_status();
  const algorithms::Derived derived = session.derive();
  write_derived(derived, dir + "/derived.json", dir + "/genotype.txt");
  std::cerr << "search done after " << session.global_step() << " steps; wrote " << dir
            << "/derived.json and " << dir << "/genotype.txt\n";
  if (session.algorithm().trains_network())
    std::cerr << "the network is trained (" << config.algo
              << " searches and trains at once): cellgraph eval " << dir << ", cellgraph export "
              << dir << " --onnx OUT.onnx\n";
  std::cout << derived.genotype << "\n";
  return 0;
}

std::string default_text(const algorithms::Hyperparameter& h) { return h.default_text(); }

std::vector<Flag> search_flags() {
  std::vector<Flag> flags = {
      {"out", "DIR", "run directory to create (config, metrics, checkpoint, results)", ""},
      {"resume", "DIR", "continue the run in DIR from its checkpoint", ""},
      {"algo", "NAME", "search algorithm: " + algorithms::algorithm_names(), "darts"},
      {"data", "DATA",
       std::string("fashion-mnist[:DIR], mnist:DIR, cifar10:DIR or cifar100:DIR; a language "
                   "model's: ") +
           kCorpusForms + " (default fortunes)",
       "fashion-mnist"},
      {"epochs", "E", "epochs over the weight half of the training set", "50"},
      {"batch", "B", "batch size (train and val batches each)", "64"},
      {"max-steps", "N", "stop after N steps in total (0: no limit)", "0"},
      {"seed", "S", "seed of weights, architecture init and batch order", "0"},
      threads_flag(),
      recompute_flag(),
      device_flag(),
      {"train-fraction", "F",
       "part of the training set that trains the weights (1 for an algorithm without a "
       "validation step)",
       "0.5"},
      {"subset", "N", "use only the first N training images (demos; 0: all)", "0"},
      {"log-every", "N", "a metrics line every N steps (0: epochs only)", "50"},
      {"tensorboard", "DIR", "also write every metrics line as TensorBoard scalars in DIR", ""}};
  for (const algorithms::Hyperparameter& h : algorithms::search_hyperparameters())
    flags.push_back({h.flag, "X", h.help, default_text(h)});
  for (const Flag& f : algorithm_flags()) flags.push_back(f);
  return flags;
}

}  // namespace

std::vector<Flag> algorithm_flags() {
  // Each algorithm's own flags, once each, prefixed with the algorithms that read them.
  std::vector<Flag> flags;
  std::set<std::string> seen;
  for (const Algorithm* a : algorithms::algorithms())
    for (const algorithms::Hyperparameter& h : a->hyperparameters()) {
      if (!seen.insert(h.flag).second) continue;
      const bool is_choice = h.type == algorithms::Hyperparameter::Type::choice;
      flags.push_back(
          {h.flag, is_choice ? "NAME" : "X", owners_of(h.flag) + ": " + h.help, default_text(h)});
    }
  return flags;
}

void apply_algorithm_flags(const Args& args, const std::string& command, const std::string& algo,
                           algorithms::HyperValues& own) {
  for (const std::string& flag : args.given()) {
    if (own.has(flag)) {
      own.set_text(flag, args.get(flag));
    } else if (const std::string owners = owners_of(flag); !owners.empty()) {
      // Another algorithm's option would be silently ignored: refuse it by name.
      throw error("--", flag, " is an option of --algo ", owners, "; this ", command,
                  " runs --algo ", algo, ", which would ignore it");
    }
  }
}

const Command& search_command() {
  static const Command kCommand{
      .name = "search",
      .summary = "search an architecture (--algo " + algorithms::algorithm_names() +
                 ") with checkpoints; derive the result",
      .positionals = {"SPEC"},
      .positionals_optional = true,
      .flags = search_flags(),
      .details =
          "Writes DIR/config.json, DIR/metrics.jsonl, DIR/checkpoint.bin (every epoch and on\n"
          "Ctrl-C or SIGTERM), and at the end DIR/derived.json and DIR/genotype.txt; prints the\n"
          "genotype. Ctrl-C finishes the current step, checkpoints and exits with status 130\n"
          "(SIGTERM: 143). --resume DIR continues bit-identically; only --threads, --epochs\n"
          "(to extend) and --max-steps may be given with it. An option of another algorithm\n"
          "than --algo is refused.",
      .run = run_search};
  return kCommand;
}

}  // namespace cellgraph::tools
