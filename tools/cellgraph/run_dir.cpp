#include "tools/cellgraph/run_dir.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>

#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "spec/parse.h"
#include "tools/cellgraph/cell_report.h"
#include "tools/cellgraph/cli.h"
#include "tools/cellgraph/tensorboard.h"

namespace cellgraph::tools {

namespace fs = std::filesystem;
using spec::JsonValue;

std::string config_path(const std::string& dir) { return (fs::path(dir) / "config.json").string(); }
std::string metrics_path(const std::string& dir) {
  return (fs::path(dir) / "metrics.jsonl").string();
}
std::string checkpoint_path(const std::string& dir) {
  return (fs::path(dir) / "checkpoint.bin").string();
}

void check_new_run_dir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw error(dir, ": exists and is not a directory; expected a directory for the run");
  if (fs::exists(checkpoint_path(dir), ec))
    throw error(dir, ": already holds a run (checkpoint.bin); continue it with --resume ", dir,
                " or choose another --out");
}

void create_run_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw error(dir, ": cannot create the run directory: ", ec.message());
}

ConfigReader::ConfigReader(const std::string& dir) : file_(config_path(dir)) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw error(dir, ": no such run directory");
  if (!fs::exists(file_, ec))
    throw error(dir,
                ": not a run directory (no config.json); expected the --out of a search "
                "or train");
  root_ = spec::parse_json_file(file_);
  if (!root_.is_object()) throw error(file_, ": expected a JSON object");
}

ConfigReader::ConfigReader(JsonValue root, std::string file)
    : root_(std::move(root)), file_(std::move(file)) {
  if (!root_.is_object()) throw error(file_, ": expected a JSON object");
}

void ConfigReader::fail(const std::string& key, const std::string& what) const {
  throw error(file_, ":/", key, ": ", what);
}

const JsonValue& ConfigReader::value(const std::string& key) const {
  const JsonValue* v = root_.find(key);
  if (v == nullptr) fail(key, "missing; the file was not written by this version of cellgraph");
  return *v;
}

std::string ConfigReader::string(const std::string& key) const {
  const JsonValue& v = value(key);
  if (!v.is_string()) fail(key, "expected a string");
  return v.as_string();
}

int64_t ConfigReader::integer(const std::string& key) const {
  const JsonValue& v = value(key);
  if (!v.is_integer()) fail(key, "expected an integer");
  return v.as_integer();
}

double ConfigReader::number(const std::string& key) const {
  const JsonValue& v = value(key);
  if (!v.is_number()) fail(key, "expected a number");
  return v.as_double();
}

spec::Space ConfigReader::space() const {
  return spec::parse_string(spec::dump(value("spec"), 2), file_ + ":/spec");
}

void read_basics_flags(const Args& args, RunBasics& run) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  run.data = args.get("data", run.data);
  run.subset = args.get_int("subset", run.subset, 0, kMax);
  run.epochs = args.get_int("epochs", run.epochs, 1, 1000000);
  run.batch = args.get_int("batch", run.batch, 1, 1 << 20);
  run.max_steps = args.get_int("max-steps", run.max_steps, 0, kMax);
  run.seed = args.get_int("seed", run.seed, 0, kMax);
  run.log_every = args.get_int("log-every", run.log_every, 0, kMax);
  run.tensorboard = args.get("tensorboard", run.tensorboard);
}

void write_basics(JsonValue& config, const RunBasics& run) {
  config.set("spec_path", run.spec_path);
  config.set("data", run.data);
  config.set("subset", run.subset);
  config.set("epochs", run.epochs);
  config.set("batch", run.batch);
  config.set("max_steps", run.max_steps);
  config.set("seed", run.seed);
  config.set("log_every", run.log_every);
  if (!run.tensorboard.empty()) config.set("tensorboard", run.tensorboard);
}

void read_basics(const ConfigReader& config, RunBasics& run) {
  run.spec_path = config.string("spec_path");
  run.space = config.space();
  run.data = config.string("data");
  run.subset = config.integer("subset");
  run.epochs = config.integer("epochs");
  run.batch = config.integer("batch");
  run.max_steps = config.integer("max_steps");
  run.seed = config.integer("seed");
  run.log_every = config.integer("log_every");
  if (config.has("tensorboard")) run.tensorboard = config.string("tensorboard");
}

JsonValue space_json(const spec::Space& space) {
  return spec::parse_json_string(spec::to_json(space), "spec");
}

MetricsLog::MetricsLog(const std::string& path, std::optional<int64_t> resume_at) : path_(path) {
  std::error_code ec;
  const int64_t truncate_to = resume_at.value_or(0);
  if (!resume_at) {
    if (fs::exists(path, ec)) fs::resize_file(path, 0, ec);
  } else {
    const int64_t size = fs::exists(path, ec) ? int64_t(fs::file_size(path, ec)) : -1;
    if (size < truncate_to)
      throw error(path, ": ", size < 0 ? std::string("missing") : std::to_string(size) + " bytes",
                  ", but the checkpoint was written after ", truncate_to,
                  " bytes of it: the log was truncated or deleted, and resuming would leave "
                  "a gap; restore the file, or start a new run");
    if (size > truncate_to) fs::resize_file(path, uintmax_t(truncate_to), ec);
  }
  if (ec)
    throw error(path, ": cannot truncate to the checkpoint's ", truncate_to,
                " bytes: ", ec.message());
  file_ = std::fopen(path.c_str(), "ab");
  if (file_ == nullptr) throw error(path, ": cannot open for writing: ", std::strerror(errno));
  std::fseek(file_, 0, SEEK_END);
  bytes_ = std::ftell(file_);
}

MetricsLog::~MetricsLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void MetricsLog::sync() const {
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0)
    throw error(path_, ": cannot flush to disk: ", std::strerror(errno));
}

void MetricsLog::write(const JsonValue& line) {
  const std::string text = spec::dump(line) + "\n";
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0)
    throw error(path_, ": cannot write: ", std::strerror(errno));
  bytes_ += int64_t(text.size());
  if (tensorboard_) {
    const JsonValue* step = line.find("step");
    tensorboard_->scalars(step != nullptr && step->is_integer() ? step->as_integer() : 0,
                          tensorboard_scalars(line));
  }
}

void MetricsLog::mirror_to_tensorboard(const std::string& dir, std::optional<int64_t> resumed_at) {
  tensorboard_ = std::make_unique<viz::EventFileWriter>(dir);
  if (resumed_at) tensorboard_->session_start(*resumed_at);
}

TrainingData load_training_data(const std::string& data, int64_t subset) {
  TrainingData out;
  out.train = load_dataset(data, Split::train);
  if (subset > 0) {
    if (subset > out.train.size())
      throw error("--subset ", subset, ": the training set of '", data, "' has only ",
                  out.train.size(), " images");
    out.train = subset == out.train.size() ? out.train : cellgraph::subset(out.train, 0, subset);
  }
  out.stats = channel_stats(out.train);
  normalize(out.train, out.stats);
  return out;
}

Dataset load_test_data(const std::string& data, const ChannelStats& stats, int64_t limit) {
  Dataset test = load_dataset(data, Split::test);
  if (limit > 0 && limit < test.size()) test = cellgraph::subset(test, 0, limit);
  normalize(test, stats);
  return test;
}

JsonValue stats_json(const ChannelStats& stats) {
  JsonValue mean = JsonValue::array(), std = JsonValue::array();
  for (float m : stats.mean) mean.push_back(double(m));
  for (float s : stats.std) std.push_back(double(s));
  JsonValue out = JsonValue::object();
  out.set("mean", mean);
  out.set("std", std);
  return out;
}

ChannelStats stats_from_json(const ConfigReader& config, const std::string& key) {
  const JsonValue& v = config.value(key);
  ChannelStats stats;
  auto read = [&](const char* field, std::vector<float>& into) {
    const JsonValue* list = v.find(field);
    if (list == nullptr || !list->is_array() || list->size() == 0)
      throw error(config.file(), ":/", key, "/", field, ": expected an array of numbers");
    for (const JsonValue& x : list->items()) {
      if (!x.is_number())
        throw error(config.file(), ":/", key, "/", field, ": expected an array of numbers");
      into.push_back(float(x.as_double()));
    }
  };
  read("mean", stats.mean);
  read("std", stats.std);
  return stats;
}

algorithms::DataShape shape_from_config(const ConfigReader& config) {
  if (!config.has("input") && config.has("corpus"))  // a language model: its vocabulary
    return algorithms::vocabulary_shape(config.integer("classes"));
  const JsonValue& input = config.value("input");
  bool ok = input.is_array() && input.size() == 3;
  for (size_t i = 0; ok && i < 3; ++i)
    ok = input.items()[i].is_integer() && input.items()[i].as_integer() > 0;
  if (!ok) throw error(config.file(), ":/input: expected [C, H, W], positive integers");
  return {input.items()[0].as_integer(), input.items()[1].as_integer(),
          input.items()[2].as_integer(), config.integer("classes")};
}

JsonValue input_json(const algorithms::DataShape& shape) {
  JsonValue out = JsonValue::array();
  for (int64_t d : {shape.channels, shape.height, shape.width}) out.push_back(d);
  return out;
}

std::string derived_weights_path(const std::string& json_path) {
  const std::filesystem::path p(json_path);
  return (p.parent_path() / (p.stem().string() + ".weights.bin")).string();
}

void write_derived(const algorithms::Derived& derived, const std::string& json_path,
                   const std::string& genotype_path) {
  spec::Space fixed = derived.space;
  record_cell_facts(fixed);
  if (!derived.weights.empty()) {
    io::Checkpoint weights;
    weights.set_meta("kind", "weights");
    for (const auto& [name, t] : derived.weights) weights.add("param/" + name, t);
    const std::string path = derived_weights_path(json_path);
    io::save_checkpoint(weights, path);
    if (!fixed.metadata.is_object()) fixed.metadata = JsonValue::object();
    fixed.metadata.set("weights", std::filesystem::path(path).filename().string());
  }
  write_file_atomic(json_path, spec::to_json(fixed));
  write_file_atomic(genotype_path, derived.genotype + "\n");
}

std::string shape_text(int64_t c, int64_t h, int64_t w) {
  // Appended piecewise: GCC 12 warns (-Wrestrict, falsely) on "[" + std::string(...).
  std::string out(1, '[');
  out.append(std::to_string(c)).append(", ").append(std::to_string(h)).append(", ");
  out.append(std::to_string(w)).push_back(']');
  return out;
}

void note(const std::string& text) {
  if (!text.empty()) std::cerr << "cellgraph: note: " << text << "\n";
}

void check_resume_flags(const Args& args, const std::string& command,
                        const std::string& what_positional, const std::string& dir) {
  if (args.positional_count() > 0)
    throw error("cellgraph ", command, " --resume DIR takes no ", what_positional,
                ": the run's spec is in ", config_path(dir));
  for (const std::string& flag : args.given())
    if (flag != "resume" && flag != "threads" && flag != "device" && flag != "epochs" &&
        flag != "max-steps")
      throw error(
          "--", flag, " cannot be combined with --resume: a resumed run keeps the options of ",
          config_path(dir), " (only --threads, --device, --epochs and --max-steps may be given)");
}

void save_run_checkpoint(io::Checkpoint ckpt, const std::string& dir, const MetricsLog& log) {
  log.sync();
  ckpt.set_meta("metrics_bytes", std::to_string(log.bytes()));
  io::save_checkpoint(ckpt, checkpoint_path(dir));
}

JsonValue record_json(const algorithms::RunRecord& r) {
  JsonValue j = JsonValue::object();
  j.set("kind", r.kind == algorithms::RunRecord::Kind::epoch ? "epoch" : "log");
  j.set("epoch", r.epoch + 1);
  j.set("step", r.step);
  j.set("train_loss", r.train_loss);
  j.set("train_acc", r.train_accuracy);
  if (r.language_model) j.set("train_ppl", std::exp(r.train_loss));
  if (r.aux_loss) j.set("train_aux_loss", *r.aux_loss);
  if (r.has_validation) {
    j.set("val_loss", r.val_loss);
    j.set("val_acc", r.val_accuracy);
    if (r.language_model) j.set("val_ppl", std::exp(r.val_loss));
  }
  j.set("lr", r.lr);
  if (r.drop_path) j.set("drop_path", *r.drop_path);
  j.set("seconds_per_step", r.seconds_per_step);
  j.set("elapsed", r.elapsed);
  for (const auto& [key, value] : r.details.members()) j.set(key, value);
  return j;
}

std::string record_line(const algorithms::RunRecord& r, int64_t epochs) {
  char text[256];
  // A language model's line gives perplexities (exp of the per-token loss), its records both.
  auto side = [&](const char* name, double loss, double accuracy) {
    if (r.language_model)
      std::snprintf(text, sizeof text, "%s loss %.4f ppl %.2f | ", name, loss, std::exp(loss));
    else
      std::snprintf(text, sizeof text, "%s loss %.4f acc %.2f%% | ", name, loss, 100 * accuracy);
    return std::string(text);
  };
  std::snprintf(text, sizeof text, "%s %lld/%lld step %lld: ",
                r.kind == algorithms::RunRecord::Kind::epoch ? "end of epoch" : "epoch",
                (long long)r.epoch + 1, (long long)epochs, (long long)r.step);
  std::string line = text;
  line += side("train", r.train_loss, r.train_accuracy);
  if (r.has_validation) line += side("val", r.val_loss, r.val_accuracy);
  std::snprintf(text, sizeof text, "lr %.5f | %.3f s/step", r.lr, r.seconds_per_step);
  return line + text;
}

bool run_steps(algorithms::Run& run, const std::string& command, const std::string& dir,
               const MetricsLog& log, Progress& progress, const algorithms::RunRecord& last_epoch,
               bool resumed) {
  install_interrupt_handler();
  algorithms::RunLoop& loop = run.loop();
  algorithms::RunHooks hooks;
  hooks.stop = interrupted;
  hooks.save = [&](const io::Checkpoint& ckpt) { save_run_checkpoint(ckpt, dir, log); };
  hooks.checkpoint_name = checkpoint_path(dir);
  hooks.after_step = [&] {
    const bool ended = loop.epoch_just_ended();
    const algorithms::RunRecord now = ended ? last_epoch : loop.snapshot();
    progress.update({.epoch = ended ? loop.epoch() - 1 : loop.epoch(),
                     .epochs = loop.options().epochs,
                     .step_in_epoch = ended ? loop.steps_per_epoch() : loop.step_in_epoch(),
                     .steps_per_epoch = loop.steps_per_epoch(),
                     .step = loop.global_step(),
                     .total_steps = loop.planned_steps(),
                     .loss = now.train_loss,
                     .accuracy = now.train_accuracy});
  };
  bool finished = false;
  try {
    finished = algorithms::run(run, hooks, resumed);
  } catch (const Error&) {
    progress.finish();
    throw;
  }
  progress.finish();
  if (finished) return true;
  std::cerr << "checkpoint of step " << loop.global_step() << " written to " << checkpoint_path(dir)
            << "\ninterrupted; resume with: cellgraph " << command << " --resume " << dir << "\n";
  return false;
}

}  // namespace cellgraph::tools
