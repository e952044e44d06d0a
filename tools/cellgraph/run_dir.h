// What the runner's commands share about run directories and data: config.json reading
// with positioned errors, atomic file writes, the metrics.jsonl appender, and loading
// (and normalising) the data sets a command line names.
//
// A run directory holds config.json (every resolved option, the spec path and the spec
// itself), metrics.jsonl, checkpoint.bin, and for a search derived.json and genotype.txt.
#pragma once

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "algorithms/data_shape.h"
#include "algorithms/derive.h"
#include "algorithms/run_loop.h"
#include "engine/data/dataset.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/io/file.h"
#include "spec/json_value.h"
#include "spec/space.h"
#include "tools/cellgraph/cli.h"
#include "tools/cellgraph/progress.h"
#include "viz/event_file.h"

namespace cellgraph::tools {

// File names inside a run directory.
std::string config_path(const std::string& dir);
std::string metrics_path(const std::string& dir);
std::string checkpoint_path(const std::string& dir);

// Checks that `dir` can take a new run: throws Error when it is a file, or already holds a
// run (a checkpoint.bin): resuming is explicit (--resume). Creates nothing.
void check_new_run_dir(const std::string& dir);
// Creates `dir` (and parents) once the run has started; throws Error naming it.
void create_run_dir(const std::string& dir);

// The run directory's files are written atomically, as every whole file is (engine/io/file.h).
using io::write_file_atomic;

// Typed reads of config.json with errors "FILE:/key: ...".
class ConfigReader {
 public:
  // Reads DIR/config.json; throws Error when it is missing (naming DIR as not a run).
  explicit ConfigReader(const std::string& dir);
  ConfigReader(spec::JsonValue root, std::string file);

  const spec::JsonValue& root() const { return root_; }
  const std::string& file() const { return file_; }
  bool has(const std::string& key) const { return root_.contains(key); }
  const spec::JsonValue& value(const std::string& key) const;
  std::string string(const std::string& key) const;
  int64_t integer(const std::string& key) const;
  double number(const std::string& key) const;
  // The embedded spec ("spec"), parsed and validated; errors name FILE:/spec.
  spec::Space space() const;

 private:
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;
  spec::JsonValue root_;
  std::string file_;
};

// What every run (search and train) records beside its own options: the spec, the data
// and the loop's counts. The command configs derive from it and set their own defaults.
struct RunBasics {
  std::string spec_path;
  spec::Space space;
  std::string data = "fashion-mnist";
  int64_t subset = 0, epochs = 1, batch = 1, max_steps = 0, seed = 0, log_every = 50;
  std::string tensorboard;  // --tensorboard DIR: metrics lines also as TensorBoard events
};
// --data, --subset, --epochs, --batch, --max-steps, --seed, --log-every, --tensorboard over
// the defaults
// already in `run` (the spec path and the spec are the command's to read).
void read_basics_flags(const Args& args, RunBasics& run);
// The same keys in config.json, and back.
void write_basics(spec::JsonValue& config, const RunBasics& run);
void read_basics(const ConfigReader& config, RunBasics& run);

// The spec as a JSON value (spec::to_json), for embedding in config.json.
spec::JsonValue space_json(const spec::Space& space);

// Appends one JSON line per record, flushed at once, so a crash loses at most a line.
class MetricsLog {
 public:
  // A new run (no `resume_at`) starts the file empty. On resume, `resume_at` is the size the
  // checkpoint recorded: a longer file is cut back to it (lines written after the
  // checkpoint would otherwise appear twice) and a shorter or missing one refused (lines the
  // checkpoint counts are gone: appending would leave a gap or a broken line).
  explicit MetricsLog(const std::string& path, std::optional<int64_t> resume_at = std::nullopt);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Also writes each line's scalars as TensorBoard events in `dir` (a new event file;
  // `resumed_at`: the step a resumed run continues from, marked so that TensorBoard drops
  // the earlier file's events after it).
  void mirror_to_tensorboard(const std::string& dir, std::optional<int64_t> resumed_at);

  void write(const spec::JsonValue& line);
  int64_t bytes() const { return bytes_; }  // the file's size after the last write
  // fsync: called before a checkpoint records bytes(), so the lines it counts are on disk.
  void sync() const;

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  int64_t bytes_ = 0;
  std::unique_ptr<viz::EventFileWriter> tensorboard_;
};

// A training set as the commands use it: the first `subset` images (0: all) of DATA's
// training split, normalised per channel with its own statistics.
struct TrainingData {
  Dataset train;
  ChannelStats stats;
};
TrainingData load_training_data(const std::string& data, int64_t subset);
// DATA's test split normalised with `stats` (the training set's); the first `limit` images
// when limit > 0.
Dataset load_test_data(const std::string& data, const ChannelStats& stats, int64_t limit);

spec::JsonValue stats_json(const ChannelStats& stats);
ChannelStats stats_from_json(const ConfigReader& config, const std::string& key);

// The fitted network input and classes a run recorded ("input", "classes").
algorithms::DataShape shape_from_config(const ConfigReader& config);
spec::JsonValue input_json(const algorithms::DataShape& shape);

// Writes derived.json (spec::to_json of the fixed network, with its NATS-Bench entry and
// skip-connection ratio in "metadata": cell_report.h) and genotype.txt atomically. When the
// derivation keeps weights (a width search), also derived_weights_path(json_path), a
// checkpoint of "param/NAME" entries, named in the metadata's "weights" (train
// --init-weights FILE starts from it).
std::string derived_weights_path(const std::string& json_path);  // "DIR/derived.weights.bin"
void write_derived(const algorithms::Derived& derived, const std::string& json_path,
                   const std::string& genotype_path);

// "[1, 28, 28]"
std::string shape_text(int64_t c, int64_t h, int64_t w);
// Prints "cellgraph: note: TEXT" to stderr (nothing for empty text).
void note(const std::string& text);

// `cellgraph COMMAND --resume DIR` keeps the run's options: refuses a positional argument
// (what_positional names it in the message) and any flag other than --threads, --epochs
// and --max-steps.
void check_resume_flags(const Args& args, const std::string& command,
                        const std::string& what_positional, const std::string& dir);

// --resume: restores the session from DIR's checkpoint, applies the options that may be
// changed on resume (--epochs, --max-steps) to it and to the config document (which starts
// as the run's config.json), and returns the metrics log size the checkpoint recorded (the
// log is cut back to it, dropping lines written after the checkpoint).
template <typename Session>
int64_t resume_from_checkpoint(Session& session, const Args& args, const std::string& dir,
                               const ConfigReader& reader, spec::JsonValue& config_doc) {
  const io::Checkpoint ckpt = io::load_checkpoint(checkpoint_path(dir));
  session.restore(ckpt);
  config_doc = reader.root();
  if (args.has("epochs")) {
    session.set_epochs(args.get_int("epochs", 0, 1, 1000000));
    config_doc.set("epochs", session.options().epochs);
  }
  if (args.has("max-steps")) {
    session.set_max_steps(args.get_int("max-steps", 0, 0, std::numeric_limits<int64_t>::max()));
    config_doc.set("max_steps", session.options().max_steps);
  }
  const int64_t metrics_bytes = ckpt.meta_int("metrics_bytes");
  if (metrics_bytes < 0)
    throw error(ckpt.source(), ": metadata 'metrics_bytes' is ", metrics_bytes,
                "; expected a size >= 0");
  return metrics_bytes;
}

// Saves a run's checkpoint with the metrics log's size (synced first), so a resumed run
// can cut the log back to the lines written before it.
void save_run_checkpoint(io::Checkpoint ckpt, const std::string& dir, const MetricsLog& log);

// A record as one metrics.jsonl line: the common fields, then the record's details.
spec::JsonValue record_json(const algorithms::RunRecord& r);
// A record as one progress line ("end of epoch 2/50 step 780: train loss ...").
std::string record_line(const algorithms::RunRecord& r, int64_t epochs);

// The step loop search and train share (algorithms::run), with the run directory's part:
// checkpoints saved with the metrics log's size at every epoch end and at the stop, the
// progress bar after each step, Ctrl-C / SIGTERM as the stop. `last_epoch` is the epoch
// record the run's callback last kept (after an epoch's last step the bar shows it: the
// running sums have restarted). Returns false when interrupted before the end, after saying
// how to resume (`cellgraph COMMAND --resume DIR`).
bool run_steps(algorithms::Run& run, const std::string& command, const std::string& dir,
               const MetricsLog& log, Progress& progress, const algorithms::RunRecord& last_epoch,
               bool resumed);

}  // namespace cellgraph::tools
