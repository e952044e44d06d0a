// cellgraph search SPEC --out DIR | --resume DIR: architecture search with checkpoints,
// metrics and derivation (docs/cli.md).
#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <memory>

#include "algorithms/search_session.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/threads.h"
#include "spec/parse.h"
#include "tools/cellgraph/commands.h"
#include "tools/cellgraph/progress.h"
#include "tools/cellgraph/run_dir.h"

namespace cellgraph::tools {

namespace {

using algorithms::SearchOptions;
using algorithms::SearchRecord;
using algorithms::SearchSession;
using spec::JsonValue;

constexpr double kMaxDouble = std::numeric_limits<double>::max();

// Hyperparameters as the user wrote them (doubles, so config.json shows 0.025, not the
// float's 0.02500000037): converted to float once, when the session is built.
struct Hyper {
  const char* flag;
  double value;
  double min, max;
  const char* help;
  // Added with NASP and ISTA-NAS: a config.json written before them lacks the key, and
  // resuming such a run keeps the default (which is what that run ran with).
  bool newer_than_first_runs = false;
};

std::vector<Hyper> default_hypers() {
  return {
      {"lr", 0.025, 0, kMaxDouble, "weight learning rate (SGD), cosine-annealed per epoch"},
      {"lr-min", 0.001, 0, kMaxDouble, "learning rate at the end of the cosine schedule"},
      {"momentum", 0.9, 0, 1, "SGD momentum"},
      {"weight-decay", 3e-4, 0, kMaxDouble, "SGD weight decay"},
      {"grad-clip", 5, 0, kMaxDouble, "clip the weight gradient norm (0: off)"},
      {"arch-lr", 3e-4, 0, kMaxDouble, "architecture learning rate (Adam)"},
      {"arch-beta1", 0.5, 0, 0.999999, "Adam beta1 of the architecture optimizer"},
      {"arch-beta2", 0.999, 0, 0.999999, "Adam beta2 of the architecture optimizer"},
      {"arch-weight-decay", 1e-3, 0, kMaxDouble, "architecture weight decay"},
      {"milenas-lambda", 1, 0, kMaxDouble, "MiLeNAS: weight of dL_train/dalpha"},
      {"nasp-eta", 0, 0, kMaxDouble,
       "NASP: weight eta of the parameter-count regulariser sum_k (p_k/p) ||A[:,k]||^2", true},
      {"ista-m", 7, 1, 1e6, "ISTA-NAS: measurements m per node (rows of A_j, length of b_j)", true},
      {"ista-lambda", 1e-5, 0, kMaxDouble, "ISTA-NAS: l1 weight lambda of the LASSO", true},
      {"ista-tolerance", 1e-7, 0, kMaxDouble,
       "ISTA-NAS: the solver stops when z moves by at most this (max-norm)", true},
      {"ista-iterations", 1000, 1, 1e9, "ISTA-NAS: iteration cap of the solver per step", true},
      {"ista-epsilon", 1e-3, 0, kMaxDouble,
       "ISTA-NAS one-stage: b freezes once every node's ||z_new - z_old|| <= this with "
       "unchanged supports",
       true}};
}

std::string key_of(const std::string& flag) {  // "lr-min" -> "lr_min" in config.json
  std::string k = flag;
  for (char& c : k)
    if (c == '-') c = '_';
  return k;
}

// Everything that defines a run; stored in config.json and read back on --resume.
// The space in RunBasics is as written, before fitting to the data.
struct SearchConfig : RunBasics {
  SearchConfig() {
    epochs = 50;
    batch = 64;
  }
  std::string algo = "darts";
  double train_fraction = 0.5;
  std::vector<Hyper> hypers = default_hypers();
  std::string nasp_optimizer = "sgd";       // or "adam"
  std::string ista_solver = "fista";        // or "ista"
  std::string ista_dictionary = "uniform";  // or "gaussian"

  double hyper(const std::string& flag) const {
    for (const Hyper& h : hypers)
      if (flag == h.flag) return h.value;
    CG_ASSERT(false, "no hyperparameter ", flag);
  }

  SearchOptions options() const {
    return {
        .algorithm = algo,
        .epochs = epochs,
        .batch_size = batch,
        .max_steps = max_steps,
        .seed = uint64_t(seed),
        .train_fraction = train_fraction,
        .log_every = log_every,
        .lr = float(hyper("lr")),
        .lr_min = float(hyper("lr-min")),
        .momentum = float(hyper("momentum")),
        .weight_decay = float(hyper("weight-decay")),
        .grad_clip = float(hyper("grad-clip")),
        .arch_lr = float(hyper("arch-lr")),
        .arch_beta1 = float(hyper("arch-beta1")),
        .arch_beta2 = float(hyper("arch-beta2")),
        .arch_weight_decay = float(hyper("arch-weight-decay")),
        .algorithm_options = {.milenas_lambda = float(hyper("milenas-lambda")),
                              .nasp_eta = float(hyper("nasp-eta")),
                              .nasp_adam = nasp_optimizer == "adam",
                              .sparse = {.measurements = int64_t(hyper("ista-m")),
                                         .gaussian = ista_dictionary == "gaussian",
                                         .lasso = {.lambda = hyper("ista-lambda"),
                                                   .tolerance = hyper("ista-tolerance"),
                                                   .max_iterations = int(hyper("ista-iterations")),
                                                   .fista = ista_solver == "fista"},
                                         .epsilon = hyper("ista-epsilon")}}};
  }
};

// The flags that only one algorithm (or family) reads, and their owners.
struct OwnedFlag {
  const char* flag;
  std::vector<std::string> algorithms;
};
const std::vector<OwnedFlag>& owned_flags() {
  static const std::vector<OwnedFlag> kOwned = {{"milenas-lambda", {"milenas"}},
                                                {"nasp-eta", {"nasp"}},
                                                {"nasp-optimizer", {"nasp"}},
                                                {"ista-m", {"ista", "ista-onestage"}},
                                                {"ista-lambda", {"ista", "ista-onestage"}},
                                                {"ista-tolerance", {"ista", "ista-onestage"}},
                                                {"ista-iterations", {"ista", "ista-onestage"}},
                                                {"ista-solver", {"ista", "ista-onestage"}},
                                                {"ista-dictionary", {"ista", "ista-onestage"}},
                                                {"ista-epsilon", {"ista-onestage"}}};
  return kOwned;
}

// An option of another algorithm would be silently ignored: refuse it by name.
void refuse_foreign_flags(const Args& args, const std::string& algo) {
  for (const OwnedFlag& o : owned_flags()) {
    if (!args.has(o.flag)) continue;
    if (std::find(o.algorithms.begin(), o.algorithms.end(), algo) != o.algorithms.end()) continue;
    std::string owners;
    for (const std::string& a : o.algorithms) owners += (owners.empty() ? "" : " or ") + a;
    throw error("--", o.flag, " is an option of --algo ", owners, "; this search runs --algo ",
                algo, ", which would ignore it");
  }
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
  algorithms::find_algorithm(c.algo);  // early: an unknown name before loading data
  read_basics_flags(args, c);
  c.train_fraction = args.get_double("train-fraction", c.train_fraction, 0.001, 0.999);
  for (Hyper& h : c.hypers) h.value = args.get_double(h.flag, h.value, h.min, h.max);
  for (const char* flag : {"ista-m", "ista-iterations"})
    if (c.hyper(flag) != std::floor(c.hyper(flag)))
      throw error("--", flag, ": expected a whole number, got ", c.hyper(flag));
  c.nasp_optimizer = args.get("nasp-optimizer", c.nasp_optimizer);
  if (c.nasp_optimizer != "sgd" && c.nasp_optimizer != "adam")
    throw error("--nasp-optimizer: expected 'sgd' or 'adam', got '", c.nasp_optimizer, "'");
  c.ista_solver = args.get("ista-solver", c.ista_solver);
  if (c.ista_solver != "fista" && c.ista_solver != "ista")
    throw error("--ista-solver: expected 'fista' or 'ista', got '", c.ista_solver, "'");
  c.ista_dictionary = args.get("ista-dictionary", c.ista_dictionary);
  if (c.ista_dictionary != "uniform" && c.ista_dictionary != "gaussian")
    throw error("--ista-dictionary: expected 'uniform' or 'gaussian', got '", c.ista_dictionary,
                "'");
  refuse_foreign_flags(args, c.algo);
  c.space = spec::parse_file(c.spec_path);  // after the flags: their errors come first
  return c;
}

JsonValue config_json(const SearchConfig& c, const algorithms::DataShape& fitted,
                      const ChannelStats& stats) {
  JsonValue j = JsonValue::object();
  j.set("command", "search");
  j.set("cellgraph_version", CELLGRAPH_VERSION);
  write_basics(j, c);
  j.set("algo", c.algo);
  j.set("train_fraction", c.train_fraction);
  for (const Hyper& h : c.hypers) j.set(key_of(h.flag), h.value);
  j.set("nasp_optimizer", c.nasp_optimizer);
  j.set("ista_solver", c.ista_solver);
  j.set("ista_dictionary", c.ista_dictionary);
  j.set("threads", num_threads());
  j.set("input", input_json(fitted));
  j.set("classes", fitted.classes);
  j.set("normalization", stats_json(stats));
  j.set("spec", space_json(c.space));
  return j;
}

SearchConfig config_from_file(const ConfigReader& r) {
  if (r.string("command") != "search")
    throw error(r.file(), ": a '", r.string("command"), "' run, not a search");
  SearchConfig c;
  read_basics(r, c);
  c.algo = r.string("algo");
  c.train_fraction = r.number("train_fraction");
  for (Hyper& h : c.hypers)
    if (!h.newer_than_first_runs || r.has(key_of(h.flag))) h.value = r.number(key_of(h.flag));
  // Likewise added with NASP and ISTA-NAS.
  if (r.has("nasp_optimizer")) c.nasp_optimizer = r.string("nasp_optimizer");
  if (r.has("ista_solver")) c.ista_solver = r.string("ista_solver");
  if (r.has("ista_dictionary")) c.ista_dictionary = r.string("ista_dictionary");
  return c;
}

JsonValue record_json(const SearchRecord& r) {
  JsonValue j = JsonValue::object();
  j.set("kind", r.kind == SearchRecord::Kind::epoch ? "epoch" : "log");
  j.set("epoch", r.epoch + 1);
  j.set("step", r.step);
  j.set("train_loss", r.train_loss);
  j.set("train_acc", r.train_accuracy);
  if (r.has_validation) {
    j.set("val_loss", r.val_loss);
    j.set("val_acc", r.val_accuracy);
  }
  j.set("lr", r.lr);
  j.set("seconds_per_step", r.seconds_per_step);
  j.set("elapsed", r.elapsed);
  if (r.kind == SearchRecord::Kind::epoch) {
    j.set("genotype", r.genotype);
    JsonValue argmax = JsonValue::object();
    for (const auto& [group, ops] : r.argmax) {
      JsonValue list = JsonValue::array();
      for (const std::string& op : ops) list.push_back(op);
      argmax.set(group, list);
    }
    j.set("argmax", argmax);
    if (!r.sparse_nodes.empty()) {
      JsonValue nodes = JsonValue::object();
      for (const algorithms::SparseNodeRecord& n : r.sparse_nodes) {
        JsonValue node = JsonValue::object();
        JsonValue support = JsonValue::array();
        for (const std::string& s : n.support) support.push_back(s);
        node.set("support", support);
        node.set("support_changes", n.support_changes);
        node.set("z_change", n.z_change);
        nodes.set(n.node, node);
      }
      j.set("sparse_codes", nodes);
    }
  }
  return j;
}

std::string record_line(const SearchRecord& r, int64_t epochs) {
  char text[256];
  std::snprintf(text, sizeof text, "%s %lld/%lld step %lld: train loss %.4f acc %.2f%% | ",
                r.kind == SearchRecord::Kind::epoch ? "end of epoch" : "epoch",
                (long long)(r.epoch + 1), (long long)epochs, (long long)r.step, r.train_loss,
                100 * r.train_accuracy);
  std::string line = text;
  if (r.has_validation) {
    std::snprintf(text, sizeof text, "val loss %.4f acc %.2f%% | ", r.val_loss,
                  100 * r.val_accuracy);
    line += text;
  }
  std::snprintf(text, sizeof text, "lr %.5f | %.3f s/step", r.lr, r.seconds_per_step);
  return line + text;
}

int run_search(const Args& args) {
  const bool resume = args.has("resume");
  const std::string dir = resume ? args.get("resume") : args.get("out");
  if (resume) check_resume_flags(args, "search", "SPEC", dir);
  apply_threads(args);
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

  const TrainingData data = load_training_data(config.data, config.subset);
  const algorithms::DataShape shape = algorithms::data_shape(data.train);
  spec::Space fitted = config.space;
  note(algorithms::fit_space_to_data(fitted, shape));
  SearchSession session(fitted, data.train, config.options());

  JsonValue config_doc = config_json(config, shape, data.stats);
  std::optional<int64_t> metrics_bytes;
  if (resume)
    metrics_bytes = resume_from_checkpoint(session, args, dir, *reader, config_doc);
  else
    create_run_dir(dir);  // only now: a failed start leaves no empty run directory behind
  MetricsLog log(metrics_path(dir), metrics_bytes);
  write_file_atomic(config_path(dir), spec::dump(config_doc, 2) + "\n");

  Progress progress;
  std::cerr << (resume ? "resuming " : "searching ") << dir << ": " << config.algo << ", "
            << data.train.size() << " training images "
            << shape_text(shape.channels, shape.height, shape.width) << ", "
            << session.steps_per_epoch() << " steps per epoch, " << session.graph().weight_count()
            << " weights" << (resume ? ", from step " + std::to_string(session.global_step()) : "")
            << "\n";
  SearchRecord last_epoch;  // the bar shows it after an epoch's last step (the sums restart)
  session.set_record_callback([&](const SearchRecord& r) {
    log.write(record_json(r));
    if (r.kind == SearchRecord::Kind::epoch) last_epoch = r;
    // A log record at an epoch's last step says what the epoch record will say.
    const bool at_epoch_end = session.step_in_epoch() == session.steps_per_epoch();
    if (r.kind == SearchRecord::Kind::epoch || (!progress.terminal() && !at_epoch_end))
      progress.line(record_line(r, session.options().epochs));
  });

  if (!run_steps(session, "search", dir, log, progress, last_epoch, resume))
    return interrupted_exit_status();
  const algorithms::Derived derived = session.derive();
  write_derived(derived, dir + "/derived.json", dir + "/genotype.txt");
  std::cerr << "search done after " << session.global_step() << " steps; wrote " << dir
            << "/derived.json and " << dir << "/genotype.txt\n";
  if (config.algo == "ista-onestage")
    std::cerr << "the network is trained, with the coefficients absorbed into its edge BNs: "
                 "cellgraph eval "
              << dir << ", cellgraph export " << dir << " --onnx OUT.onnx\n";
  std::cout << derived.genotype << "\n";
  return 0;
}

std::vector<Flag> search_flags() {
  std::vector<Flag> flags = {
      {"out", "DIR", "run directory to create (config, metrics, checkpoint, results)", ""},
      {"resume", "DIR", "continue the run in DIR from its checkpoint", ""},
      {"algo", "NAME",
       "search algorithm: darts (first order), darts2 (second order), milenas, nasp, ista "
       "(two-stage ISTA-NAS) or ista-onestage (the network trained while searched)",
       "darts"},
      {"nasp-optimizer", "NAME",
       "NASP: sgd (the paper's A - arch-lr * grad) or adam (the authors' code), then clip", "sgd"},
      {"ista-solver", "NAME", "ISTA-NAS: LASSO solver, fista or ista", "fista"},
      {"ista-dictionary", "NAME", "ISTA-NAS: A_j entries, uniform [0,1) or gaussian N(0,1/m)",
       "uniform"},
      {"data", "DATA", "fashion-mnist[:DIR], mnist:DIR, cifar10:DIR or cifar100:DIR",
       "fashion-mnist"},
      {"epochs", "E", "epochs over the weight half of the training set", "50"},
      {"batch", "B", "batch size (train and val batches each)", "64"},
      {"max-steps", "N", "stop after N steps in total (0: no limit)", "0"},
      {"seed", "S", "seed of weights, architecture init and batch order", "0"},
      threads_flag(),
      {"train-fraction", "F", "part of the training set that trains the weights", "0.5"},
      {"subset", "N", "use only the first N training images (demos; 0: all)", "0"},
      {"log-every", "N", "a metrics line every N steps (0: epochs only)", "50"}};
  for (const Hyper& h : default_hypers()) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", h.value);
    flags.push_back({h.flag, "X", h.help, text});
  }
  return flags;
}

}  // namespace

const Command& search_command() {
  static const Command command{
      .name = "search",
      .summary = "search an architecture (--algo " + algorithms::algorithm_names() +
                 ") with checkpoints; derive the result",
      .positionals = {"SPEC"},
      .positionals_optional = true,
      .flags = search_flags(),
      .details =
          "Writes DIR/config.json, DIR/metrics.jsonl, DIR/checkpoint.bin (every epoch and on\n"
          "Ctrl-C), and at the end DIR/derived.json and DIR/genotype.txt; prints the genotype.\n"
          "Ctrl-C finishes the current step, checkpoints and exits with status 130.\n"
          "--resume DIR continues bit-identically; only --threads, --epochs (to extend) and\n"
          "--max-steps may be given with it.",
      .run = run_search};
  return command;
}

}  // namespace cellgraph::tools
