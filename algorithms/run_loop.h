// The loop every run shares, search and fixed-network training alike: step and epoch
// counters, --epochs and --max-steps, the cosine learning-rate schedule, timing, the
// epoch's running totals, log and epoch records, the loop's part of a checkpoint, and
// run(): stepping until done or stopped (Ctrl-C, SIGTERM), checkpointing at every epoch end
// and at the stop, and reporting a diverged step with what it leaves behind.
//
// A run (SearchSession, TrainSession) owns its network, optimizers and batches and does one
// step's work; the loop owns everything about *when*. Resuming is exact because the loop's
// state goes into the checkpoint with the run's, and everything else it uses (the schedule,
// the record cadence) is a pure function of the options.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "algorithms/step_context.h"
#include "engine/io/checkpoint.h"
#include "engine/optim/schedule.h"
#include "spec/json_value.h"

namespace cellgraph::algorithms {

struct LoopOptions {
  int64_t epochs = 1;
  int64_t max_steps = 0;   // stop after this many steps in total; 0: no limit
  int64_t log_every = 50;  // a log record every this many global steps; 0: none
  float lr = 0.025f;       // the weights' learning rate: cosine from lr to lr_min over epochs
  float lr_min = 0.001f;
};

// What a run reports at log intervals and epoch ends. Losses and accuracies are means over
// the steps of the current epoch so far (DARTS' running averages).
struct RunRecord {
  enum class Kind { log, epoch };
  Kind kind = Kind::log;
  int64_t epoch = 0;  // 0-based epoch the reported steps belong to
  int64_t step = 0;   // global steps done
  double train_loss = 0, train_accuracy = 0;
  bool has_validation = false;  // a search with a validation step
  // A language model: the losses are per token, and records add their perplexities.
  bool language_model = false;
  double val_loss = 0, val_accuracy = 0;
  std::optional<double> aux_loss;  // training with an auxiliary head: its mean cross-entropy
  double lr = 0;  // the float learning rate as its shortest decimal (0.025, not 0.0250000004)
  std::optional<double> drop_path;  // training with drop-path: this epoch's probability
  double seconds_per_step = 0;      // mean over the interval (log) or the epoch (epoch)
  double elapsed = 0;               // seconds of the run so far, across resumes
  // What the run adds (search: the architecture weights; on epoch records also the
  // genotype, argmax and the algorithm's fields).
  spec::JsonValue details = spec::JsonValue::object();
};

// The shortest decimal that reads back as `value`, as a double: how records report floats.
double decimal_of(float value);

// The checkpoint metadata keys of the epoch totals (search and train have always used
// different ones; kept so that old checkpoints resume). Null: not stored (zero).
struct TotalsKeys {
  const char* train_loss = nullptr;
  const char* val_loss = nullptr;
  const char* train_correct = nullptr;
  const char* val_correct = nullptr;
  const char* train_count = nullptr;
  const char* val_count = nullptr;
  const char* aux_loss = nullptr;
};

class RunLoop {
 public:
  RunLoop(LoopOptions options, int64_t steps_per_epoch, TotalsKeys keys);

  // Called for every record, in order, from inside finish_step(); `decorate` first fills in
  // what the run adds (it sees the epoch's totals).
  using RecordCallback = std::function<void(const RunRecord&)>;
  using Decorate = std::function<void(RunRecord&, const StepMetrics& totals)>;
  void set_record_callback(RecordCallback callback) { callback_ = std::move(callback); }
  void set_decorate(Decorate decorate) { decorate_ = std::move(decorate); }

  // Every epoch done, or max_steps reached.
  bool finished() const;
  // Steps the run will have done when finished(): min(epochs * steps_per_epoch, max_steps).
  int64_t planned_steps() const;
  int64_t global_step() const { return step_; }
  int64_t epoch() const { return epoch_; }  // the epoch the next step belongs to
  int64_t step_in_epoch() const { return epoch_step_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  bool epoch_just_ended() const { return epoch_ended_; }  // by the last finish_step()
  const LoopOptions& options() const { return options_; }
  // The weights' learning rate of the current epoch: cosine from lr to lr_min over the
  // epochs unless the run set its own schedule.
  float lr() const { return lr_of_epoch_ ? lr_of_epoch_(epoch_) : schedule_.lr_at(epoch_); }
  void set_lr_schedule(std::function<float(int64_t epoch)> lr_of_epoch) {
    lr_of_epoch_ = std::move(lr_of_epoch);
  }
  double elapsed_seconds() const;

  // After a step: adds its metrics to the epoch's totals, advances the counters, emits a log
  // record when the global step is a multiple of log_every and an epoch record when the
  // step ends an epoch (then the totals restart).
  void finish_step(const StepMetrics& metrics);
  // The current epoch's means so far (kind log, no timings), e.g. for a progress bar.
  RunRecord snapshot() const;

  // Extending a run: a new epoch count (> the epochs already begun or done, or equal when
  // the current epoch is complete) or max_steps (0: none). The cosine schedule stretches to
  // the new epoch count from here on. Throw Error when the value is too small.
  void set_epochs(int64_t epochs);
  void set_max_steps(int64_t max_steps);

  // The loop's state in a checkpoint: counters, steps per epoch, elapsed time, totals.
  void save(io::Checkpoint& ckpt) const;
  // Reads it back, checked (a checksum proves the file is as written, not that it makes
  // sense): step = epoch * steps_per_epoch + epoch_step, counts >= 0, elapsed finite, and no
  // tensor entry of the checkpoint holds inf or NaN. `mismatch_hint` ends the message when
  // the steps per epoch differ ("the data, subset or batch size differ"). Throws Error
  // naming the checkpoint; call it before restoring anything else.
  void restore(const io::Checkpoint& ckpt, const std::string& mismatch_hint);

 private:
  RunRecord record(RunRecord::Kind kind);

  LoopOptions options_;
  CosineSchedule schedule_;
  TotalsKeys keys_;
  int64_t steps_per_epoch_ = 0;
  int64_t epoch_ = 0, epoch_step_ = 0, step_ = 0;
  bool epoch_ended_ = false;
  StepMetrics totals_;
  double elapsed_before_ = 0;  // seconds spent before this process resumed the run
  std::chrono::steady_clock::time_point start_, interval_start_, epoch_start_;
  int64_t interval_steps_ = 0, epoch_steps_timed_ = 0;
  RecordCallback callback_;
  Decorate decorate_;
  std::function<float(int64_t)> lr_of_epoch_;
};

// What run() drives.
class Run {
 public:
  virtual ~Run() = default;
  virtual RunLoop& loop() = 0;
  virtual void step() = 0;  // one step; ends with loop().finish_step()
  virtual io::Checkpoint checkpoint() const = 0;
};

struct RunHooks {
  std::function<bool()> stop;                       // checked before each step
  std::function<void(const io::Checkpoint&)> save;  // at every epoch end and at a stop
  std::function<void()> after_step;                 // e.g. a progress bar
  std::string checkpoint_name = "the checkpoint";   // for messages ("runs/x/checkpoint.bin")
};

// Steps `run` until it is finished or stop() says so, saving a checkpoint at every epoch end
// and, when stopped or finished between epoch ends, at the stop (`resumed`: the run came
// from a checkpoint, so there is nothing new to save until a step runs). Returns true when
// the run finished. An Error from a step (a diverged run) is rethrown with what it leaves
// behind: the last checkpoint, untouched, or none.
bool run(Run& run, const RunHooks& hooks, bool resumed);

}  // namespace cellgraph::algorithms
