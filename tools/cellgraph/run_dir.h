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
#include <optional>
#include <string>

#include "algorithms/derive.h"
#include "algorithms/search_session.h"
#include "engine/data/dataset.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "spec/json_value.h"
#include "spec/space.h"
#include "tools/cellgraph/cli.h"
#include "tools/cellgraph/progress.h"

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

// Writes `text` to `path` atomically (PATH.tmp, fsync, rename). Throws Error naming the file.
void write_file_atomic(const std::string& path, const std::string& text);

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
};
// --data, --subset, --epochs, --batch, --max-steps, --seed, --log-every over the defaults
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

  void write(const spec::JsonValue& line);
  int64_t bytes() const { return bytes_; }  // the file's size after the last write
  // fsync: called before a checkpoint records bytes(), so the lines it counts are on disk.
  void sync() const;

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  int64_t bytes_ = 0;
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
// skip-connection ratio in "metadata": cell_report.h) and genotype.txt atomically.
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

// Saves a session's checkpoint with the metrics log's size, so a resumed run can cut the
// log back to the lines written before it.
template <typename Session>
void save_run_checkpoint(const Session& session, const std::string& dir, const MetricsLog& log) {
  io::Checkpoint ckpt = session.checkpoint();
  log.sync();
  ckpt.set_meta("metrics_bytes", std::to_string(log.bytes()));
  io::save_checkpoint(ckpt, checkpoint_path(dir));
}

// The step loop search and train share: steps `session` until it is finished or Ctrl-C /
// SIGTERM arrives, checkpointing at every epoch end and at the stop and redrawing
// `progress` after each step. `last_epoch` is the epoch record the session's callback last
// kept (after an epoch's last step the bar shows it: the running sums have restarted).
// Returns false when interrupted before the end, after saying how to resume (`cellgraph
// COMMAND --resume DIR`). An Error from a step (a diverged run) is rethrown with what it
// leaves behind: the last checkpoint, untouched, or none.
template <typename Session, typename Record>
bool run_steps(Session& session, const std::string& command, const std::string& dir,
               const MetricsLog& log, Progress& progress, const Record& last_epoch, bool resumed) {
  install_interrupt_handler();
  bool saved = resumed;  // nothing new to save until a step runs
  int64_t saved_step = resumed ? session.global_step() : -1;
  while (!session.finished() && !interrupted()) {
    try {
      session.step();
    } catch (const Error& e) {
      progress.finish();
      if (saved_step < 0) throw error(e.what(), "; no checkpoint was written");
      throw error(e.what(), "; ", checkpoint_path(dir), " (step ", saved_step,
                  ") is the last good state, kept as it was");
    }
    saved = false;
    const bool ended = session.epoch_just_ended();
    if (ended) {
      save_run_checkpoint(session, dir, log);
      saved = true;
      saved_step = session.global_step();
    }
    const Record now = ended ? last_epoch : session.snapshot();
    progress.update({.epoch = ended ? session.epoch() - 1 : session.epoch(),
                     .epochs = session.options().epochs,
                     .step_in_epoch = ended ? session.steps_per_epoch() : session.step_in_epoch(),
                     .steps_per_epoch = session.steps_per_epoch(),
                     .step = session.global_step(),
                     .total_steps = session.planned_steps(),
                     .loss = now.train_loss,
                     .accuracy = now.train_accuracy});
  }
  if (!saved) save_run_checkpoint(session, dir, log);
  progress.finish();
  if (!interrupted() || session.finished()) return true;
  std::cerr << "checkpoint of step " << session.global_step() << " written to "
            << checkpoint_path(dir) << "\ninterrupted; resume with: cellgraph " << command
            << " --resume " << dir << "\n";
  return false;
}

}  // namespace cellgraph::tools
