// cellgraph train FIXED_SPEC --out DIR | --resume DIR: train a fixed network on the whole
// training set, checkpoint every epoch, evaluate on the test split at the end.
#include <cmath>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>

#include "algorithms/data_shape.h"
#include "algorithms/train_session.h"
#include "algorithms/width.h"
#include "engine/data/augment.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/threads.h"
#include "spec/evaluation_network.h"
#include "spec/parse.h"
#include "tools/cellgraph/commands.h"
#include "tools/cellgraph/progress.h"
#include "tools/cellgraph/run_dir.h"
#include "tools/cellgraph/text_data.h"

namespace cellgraph::tools {

namespace {

using algorithms::EvalResult;
using algorithms::RunRecord;
using algorithms::TrainOptions;
using algorithms::TrainSession;
using spec::JsonValue;

constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
constexpr double kMaxDouble = std::numeric_limits<double>::max();

struct TrainConfig : RunBasics {
  TrainConfig() {
    epochs = 600;  // DARTS' CIFAR-10 evaluation
    batch = 96;
  }
  int64_t test_subset = 0;
  double lr = 0.025, lr_min = 0, momentum = 0.9, weight_decay = 3e-4, grad_clip = 5;
  // Training-batch augmentation and label smoothing (all off by default; DARTS CIFAR:
  // --crop-padding 4 --flip --cutout 16).
  int64_t cutout = 0, crop_padding = 0;
  bool flip = false;
  double label_smoothing = 0;
  // DARTS evaluation: drop-path, auxiliary head (both off by default; DARTS: 0.2 and 0.4)
  // and the network's size (0: the spec's body as written; DARTS CIFAR: 20 cells, C = 36).
  double drop_path = 0, auxiliary_weight = 0;
  int64_t cells = 0, channels = 0;
  // Starting weights (a width search's derived.weights.bin); "": seeded initial weights.
  std::string init_weights;

  // `stats`: the normalisation of the training set; the crop pads with raw black, as DARTS.
  TrainOptions options(const ChannelStats& stats) const {
    AugmentOptions augment{.crop_padding = int(crop_padding), .flip = flip, .cutout = int(cutout)};
    if (crop_padding > 0) augment.pad_value = normalized_zero(stats);
    return {.epochs = epochs,
            .batch_size = batch,
            .max_steps = max_steps,
            .seed = uint64_t(seed),
            .log_every = log_every,
            .lr = float(lr),
            .lr_min = float(lr_min),
            .momentum = float(momentum),
            .weight_decay = float(weight_decay),
            .grad_clip = float(grad_clip),
            .augment = augment,
            .label_smoothing = float(label_smoothing),
            .drop_path_prob = float(drop_path),
            .auxiliary_weight = float(auxiliary_weight)};
  }
};

// --label-smoothing, --drop-path: a number in [0, 1) (1 would leave no signal / drop every
// path), checked with one message.
double unit_interval_flag(const Args& args, const std::string& flag, double fallback = 0) {
  double v = -1;
  try {
    v = args.get_double(flag, fallback, 0, 1);
  } catch (const Error&) {}
  if (!(v >= 0 && v < 1))
    throw error("--", flag, ": expected a number in [0, 1), got '", args.get(flag), "'");
  return v;
}

// DARTS' CIFAR-10 evaluation network; the default of --cells / --channels when only the
// other is given.
constexpr int64_t kDartsCells = 20, kDartsChannels = 36;

// --cells / --channels: the body rebuilt as a DARTS evaluation network.
spec::Space evaluation_body(const spec::Space& space, int64_t cells, int64_t channels) {
  try {
    return spec::evaluation_network(space, int(cells), channels);
  } catch (const Error& e) {
    throw error("--cells ", cells, " --channels ", channels, ": ", e.what());
  }
}

int count_reduction_cells(const spec::Space& space) {
  int n = 0;
  for (const spec::Stage& stage : space.network.body) {
    const spec::Cell* cell = stage.cell.empty() ? nullptr : space.find_cell(stage.cell);
    if (cell != nullptr && cell->reduction) n += stage.repeat;
  }
  return n;
}

// A language model trains as DARTS' RNN evaluation does (SGD lr 20 held constant, no
// momentum, weight decay 8e-7, clip 0.25, batch 64) on a text corpus, each unless its flag
// was given; --channels H sets its hidden (= embedding) size (DARTS: 850). The image-only
// options are refused by name.
void use_rnn_train_defaults(const Args& args, TrainConfig& c) {
  for (const char* flag : {"cutout", "crop-padding", "flip", "label-smoothing", "drop-path",
                           "auxiliary-weight", "cells", "darts-cifar"})
    if (args.has(flag))
      throw error("--", flag, " applies to image networks; ", c.spec_path,
                  " is a language model (a recurrent cell)");
  c.cutout = c.crop_padding = c.cells = c.channels = 0;
  c.flip = false;
  c.drop_path = c.auxiliary_weight = 0;
  if (!args.has("data")) c.data = kDefaultCorpus;
  if (!args.has("batch")) c.batch = 64;
  if (!args.has("lr")) c.lr = 20;
  if (!args.has("lr-min")) c.lr_min = c.lr;
  if (!args.has("momentum")) c.momentum = 0;
  if (!args.has("weight-decay")) c.weight_decay = 8e-7;
  if (!args.has("grad-clip")) c.grad_clip = 0.25;
  if (args.has("channels")) {
    c.channels = args.get_int("channels", 0, 1, 1 << 16);
    for (spec::Stage& stage : c.space.network.body) stage.channels = c.channels;
  }
}

TrainConfig config_from_flags(const Args& args) {
  TrainConfig c;
  if (args.positional_count() == 0)
    throw error(
        "cellgraph train: missing FIXED_SPEC; usage: cellgraph train FIXED_SPEC --out "
        "DIR, or cellgraph train --resume DIR");
  if (!args.has("out")) throw error("cellgraph train: missing --out DIR (where the run goes)");
  c.spec_path = args.positional(0);
  read_basics_flags(args, c);
  c.test_subset = args.get_int("test-subset", 0, 0, kMaxInt);
  // Fine-tuning a width search's pruned network trains as Network Slimming does (lr 0.1,
  // weight decay 1e-4) unless the flags say otherwise.
  const bool fine_tune = args.has("init-weights");
  if (fine_tune) {
    c.lr = algorithms::kWidthSearchLr;
    c.weight_decay = algorithms::kWidthSearchWeightDecay;
  }
  c.lr = args.get_double("lr", c.lr, 0, kMaxDouble);
  c.lr_min = args.get_double("lr-min", c.lr_min, 0, kMaxDouble);
  c.momentum = args.get_double("momentum", c.momentum, 0, 1);
  c.weight_decay = args.get_double("weight-decay", c.weight_decay, 0, kMaxDouble);
  c.grad_clip = args.get_double("grad-clip", c.grad_clip, 0, kMaxDouble);
  // --darts-cifar: DARTS' CIFAR-10 evaluation recipe as the defaults of the flags below;
  // each one given explicitly still wins.
  const bool darts = args.has("darts-cifar");
  c.cutout = args.get_int("cutout", darts ? 16 : 0, 0, 1 << 16);
  c.crop_padding = args.get_int("crop-padding", darts ? 4 : 0, 0, 1 << 16);
  c.flip = args.has("flip") || darts;
  c.label_smoothing = unit_interval_flag(args, "label-smoothing");
  c.drop_path = unit_interval_flag(args, "drop-path", darts ? 0.2 : 0.0);
  c.auxiliary_weight = args.get_double("auxiliary-weight", darts ? 0.4 : 0.0, 0, kMaxDouble);
  if (darts || args.has("cells") || args.has("channels")) {
    c.cells = args.get_int("cells", kDartsCells, 3, 1000);
    c.channels = args.get_int("channels", kDartsChannels, 1, 1 << 16);
  }
  c.init_weights = args.get("init-weights", "");
  c.space = spec::parse_file(c.spec_path);  // after the flags: their errors come first
  algorithms::require_fixed(c.space);
  if (is_language_model(c.space)) {
    use_rnn_train_defaults(args, c);
    return c;
  }
  if (c.cells > 0) c.space = evaluation_body(c.space, c.cells, c.channels);
  if (c.auxiliary_weight > 0 && count_reduction_cells(c.space) < 2)
    throw error("--auxiliary-weight ", c.auxiliary_weight,
                ": the auxiliary head reads the second "
                "reduction cell's output; ",
                c.spec_path, " has ", count_reduction_cells(c.space),
                " reduction cells (use --auxiliary-weight 0)");
  return c;
}

// `stats`: an image run's normalisation; `corpus`: a language model's text (then no stats).
JsonValue config_json(const TrainConfig& c, const algorithms::DataShape& fitted,
                      const ChannelStats* stats, const Corpus* corpus,
                      const spec::Space& fitted_space) {
  JsonValue j = JsonValue::object();
  j.set("command", "train");
  j.set("cellgraph_version", CELLGRAPH_VERSION);
  write_basics(j, c);
  j.set("test_subset", c.test_subset);
  j.set("lr", c.lr);
  j.set("lr_min", c.lr_min);
  j.set("momentum", c.momentum);
  j.set("weight_decay", c.weight_decay);
  j.set("grad_clip", c.grad_clip);
  j.set("cutout", c.cutout);
  j.set("crop_padding", c.crop_padding);
  j.set("flip", c.flip);
  j.set("label_smoothing", c.label_smoothing);
  j.set("drop_path", c.drop_path);
  j.set("auxiliary_weight", c.auxiliary_weight);
  j.set("cells", c.cells);
  j.set("channels", c.channels);
  if (!c.init_weights.empty()) j.set("init_weights", c.init_weights);
  j.set("threads", num_threads());
  if (corpus != nullptr) {
    j.set("corpus", corpus_json(*corpus));
  } else {
    j.set("input", input_json(fitted));
    j.set("normalization", stats_json(*stats));
  }
  j.set("classes", fitted.classes);
  // The network as trained (fitted to the data), so eval needs nothing else.
  j.set("spec", space_json(fitted_space));
  return j;
}

TrainConfig config_from_file(const ConfigReader& r) {
  if (r.string("command") != "train")
    throw error(r.file(), ": a '", r.string("command"), "' run, not a train run");
  TrainConfig c;
  read_basics(r, c);
  c.test_subset = r.integer("test_subset");
  c.lr = r.number("lr");
  c.lr_min = r.number("lr_min");
  c.momentum = r.number("momentum");
  c.weight_decay = r.number("weight_decay");
  c.grad_clip = r.number("grad_clip");
  // Runs written before these options had none of them: all off.
  if (r.has("cutout")) c.cutout = r.integer("cutout");
  if (r.has("crop_padding")) c.crop_padding = r.integer("crop_padding");
  if (r.has("flip")) {
    if (!r.value("flip").is_bool()) throw error(r.file(), ":/flip: expected true or false");
    c.flip = r.value("flip").as_bool();
  }
  if (r.has("label_smoothing")) c.label_smoothing = r.number("label_smoothing");
  if (r.has("drop_path")) c.drop_path = r.number("drop_path");
  if (r.has("auxiliary_weight")) c.auxiliary_weight = r.number("auxiliary_weight");
  // Informational: `spec` above is already the rebuilt network.
  if (r.has("cells")) c.cells = r.integer("cells");
  if (r.has("channels")) c.channels = r.integer("channels");
  if (r.has("init_weights")) c.init_weights = r.string("init_weights");  // the checkpoint wins
  return c;
}

// Copies every "param/NAME" entry of FILE whose name and shape the network has; the others
// keep their seeded initial values. Returns how many were copied (an Error when none).
int64_t load_initial_weights(const TrainSession& session, const std::string& file) {
  const io::Checkpoint ckpt = io::load_checkpoint(file);
  const ir::Graph& graph = session.graph();
  int64_t copied = 0;
  for (size_t i = 0; i < graph.params.size(); ++i) {
    const Tensor* t = ckpt.find("param/" + graph.params[i].name);
    const Var& v = session.params().all()[i];
    if (t == nullptr || t->shape() != v.shape()) continue;
    v.value().copy_from(*t);
    ++copied;
  }
  if (copied == 0)
    throw error(file, ": none of its entries is a parameter of this network (by name and shape)");
  return copied;
}

// What a training run reads: images (the training set and the test split, normalised with
// the training set's statistics) or a language model's corpus (its test text limited to
// --test-subset tokens).
struct TrainData {
  std::optional<TrainingData> images;
  std::optional<Dataset> test;
  std::optional<Corpus> corpus;
  algorithms::DataShape shape;
};

TrainData load_train_data(const TrainConfig& config) {
  TrainData d;
  if (!is_language_model(config.space)) {
    d.images = load_training_data(config.data, config.subset);
    d.test = load_test_data(config.data, d.images->stats, config.test_subset);
    d.shape = algorithms::data_shape(d.images->train);
    return d;
  }
  d.corpus = load_run_corpus(config.data, config.subset, config.test_subset);
  d.shape = algorithms::vocabulary_shape(d.corpus->vocabulary.size());
  return d;
}

int run_train(const Args& args) {
  const bool resume = args.has("resume");
  const std::string dir = resume ? args.get("resume") : args.get("out");
  if (resume) check_resume_flags(args, "train", "FIXED_SPEC", dir);
  apply_threads(args);
  apply_recompute(args);
  const Device device = selected_device(args);
  std::unique_ptr<ConfigReader> reader;
  TrainConfig config;
  if (resume) {
    reader = std::make_unique<ConfigReader>(dir);
    config = config_from_file(*reader);
  } else {
    config = config_from_flags(args);
    check_new_run_dir(dir);
  }
  // Read before the first step: a damaged test split is reported now, not after training.
  const TrainData data = load_train_data(config);
  const algorithms::DataShape& shape = data.shape;
  spec::Space fitted = config.space;
  note(algorithms::fit_space_to_data(fitted, shape));
  algorithms::TrainOptions options =
      config.options(data.images ? data.images->stats : ChannelStats{});
  options.device = device;
  const std::unique_ptr<TrainSession> session_owner =
      data.images ? std::make_unique<TrainSession>(fitted, data.images->train, options)
                  : std::make_unique<TrainSession>(
                        fitted,
                        text_batches(*data.corpus, CorpusSplit::train, options.batch_size,
                                     sequence_length(fitted)),
                        options);
  TrainSession& session = *session_owner;
  if (!resume && !config.init_weights.empty()) {
    const int64_t copied = load_initial_weights(session, config.init_weights);
    note("initial weights: " + std::to_string(copied) + " of " +
         std::to_string(session.graph().params.size()) + " parameters from " + config.init_weights);
  }

  JsonValue config_doc = config_json(config, shape, data.images ? &data.images->stats : nullptr,
                                     data.corpus ? &*data.corpus : nullptr, fitted);
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
  std::cerr << (resume ? "resuming " : "training ") << dir << ": "
            << (data.images ? std::to_string(data.images->train.size()) + " training images"
                            : corpus_summary(*data.corpus))
            << ", " << session.steps_per_epoch() << " steps per epoch, "
            << session.graph().weight_count() << " weights";
  if (session.graph().aux_logits.valid())
    std::cerr << " (+" << session.graph().auxiliary_weight_count()
              << " in the auxiliary head, weight " << config.auxiliary_weight << ")";
  if (config.drop_path > 0) std::cerr << ", drop-path up to " << config.drop_path;
  std::cerr << "\n";
  RunRecord last_epoch;  // the bar shows it after an epoch's last step (the sums restart)
  session.set_record_callback([&](const RunRecord& r) {
    log.write(record_json(r));
    if (r.kind == RunRecord::Kind::epoch) last_epoch = r;
    const bool at_epoch_end = session.step_in_epoch() == session.steps_per_epoch();
    if (r.kind == RunRecord::Kind::epoch || (!progress.terminal() && !at_epoch_end))
      progress.line(record_line(r, session.options().epochs));
  });

  if (!run_steps(session, "train", dir, log, progress, last_epoch, resume))
    return interrupted_exit_status();
  JsonValue line = JsonValue::object();
  line.set("kind", "test");
  line.set("step", session.global_step());
  if (data.corpus) {
    const EvalResult result = algorithms::evaluate(session.graph(), session.params(),
                                                   *test_batches(*data.corpus, fitted));
    line.set("test_loss", result.loss);
    line.set("test_ppl", std::exp(result.loss));
    line.set("test_acc", result.accuracy);
    line.set("test_count", result.count);
    log.write(line);
    std::cout << "test perplexity: " << std::exp(result.loss) << " (loss " << result.loss
              << " over " << result.count << " tokens) after " << session.global_step()
              << " steps\n";
    return 0;
  }
  const EvalResult result = algorithms::evaluate(session.graph(), session.params(), *data.test);
  line.set("test_loss", result.loss);
  line.set("test_acc", result.accuracy);
  line.set("test_count", result.count);
  log.write(line);
  std::cout << "test accuracy: " << 100 * result.accuracy << "% (" << result.correct << "/"
            << result.count << "), loss " << result.loss << " after " << session.global_step()
            << " steps\n";
  return 0;
}

}  // namespace

const Command& train_command() {
  static const Command kCommand{
      .name = "train",
      .summary = "train a fixed network (e.g. a search's derived.json); evaluate on the test set",
      .positionals = {"FIXED_SPEC"},
      .positionals_optional = true,
      .flags =
          {{"out", "DIR", "run directory to create", ""},
           {"resume", "DIR", "continue the run in DIR from its checkpoint", ""},
           {"data", "DATA", "fashion-mnist[:DIR], mnist:DIR, cifar10:DIR or cifar100:DIR",
            "fashion-mnist"},
           {"epochs", "E", "epochs over the training set", "600"},
           {"batch", "B", "batch size", "96"},
           {"max-steps", "N", "stop after N steps in total (0: no limit)", "0"},
           {"seed", "S", "seed of the weights and the batch order", "0"},
           threads_flag(),
           recompute_flag(),
           device_flag(),
           {"subset", "N", "use only the first N training images (0: all)", "0"},
           {"test-subset", "N", "evaluate on the first N test images (0: all)", "0"},
           {"log-every", "N", "a metrics line every N steps (0: epochs only)", "50"},
           {"tensorboard", "DIR", "also write every metrics line as TensorBoard scalars in DIR",
            ""},
           {"lr", "X", "SGD learning rate, cosine-annealed per epoch", "0.025"},
           {"lr-min", "X", "learning rate at the end of the schedule", "0"},
           {"momentum", "X", "SGD momentum", "0.9"},
           {"weight-decay", "X", "SGD weight decay", "0.0003"},
           {"grad-clip", "X", "clip the gradient norm (0: off)", "5"},
           {"cutout", "L", "cutout square side on training images (0: off; DARTS: 16)", "0"},
           {"crop-padding", "P",
            "random crop of training images padded by P pixels (0: off; DARTS: 4)", "0"},
           {"flip", "", "random horizontal flip of training images", ""},
           {"darts-cifar", "",
            "DARTS' CIFAR evaluation recipe as defaults: --cells 20 --channels 36 --drop-path "
            "0.2 --auxiliary-weight 0.4 --crop-padding 4 --flip --cutout 16 (epochs 600, batch "
            "96, lr 0.025 and weight decay 3e-4 are the defaults anyway)",
            ""},
           {"label-smoothing", "X", "label smoothing of the training loss, in [0, 1)", "0"},
           {"drop-path", "P",
            "drop-path probability, raised linearly per epoch to P, in [0, 1) (DARTS: 0.2)", "0"},
           {"auxiliary-weight", "W",
            "weight of an auxiliary head after the 2nd reduction cell (0: none; DARTS: 0.4)", "0"},
           {"cells", "N", "rebuild the body as N cells, reductions at N/3 and 2N/3 (DARTS: 20)",
            "the spec's body; 20 with --channels"},
           {"channels", "C", "C of the first cells of the rebuilt body (DARTS: 36)",
            "the spec's body; 36 with --cells"},
           {"init-weights", "FILE",
            "start from these weights (a width search's derived.weights.bin: fine-tuning; "
            "--lr and --weight-decay then default to Network Slimming's 0.1 and 1e-4)",
            "seeded initial weights"}},
      .details =
          "Writes DIR/config.json, DIR/metrics.jsonl (a final \"test\" line) and\n"
          "DIR/checkpoint.bin (every epoch and on Ctrl-C; exit status 130).\n"
          "--resume DIR continues bit-identically; only --threads, --epochs and\n"
          "--max-steps may be given with it. Augmentation (--crop-padding, --flip,\n"
          "--cutout) applies to training batches only, never to the test evaluation.\n"
          "Drop-path and the auxiliary head exist only in training: evaluation, export\n"
          "and infer run the plain network. DARTS CIFAR-10 evaluation: --cells 20\n"
          "--channels 36 --drop-path 0.2 --auxiliary-weight 0.4 --crop-padding 4 --flip\n"
          "--cutout 16.",
      .run = run_train};
  return kCommand;
}

}  // namespace cellgraph::tools
