#include "algorithms/run_loop.h"

#include <charconv>
#include <cmath>

#include "engine/error.h"
#include "engine/optim/divergence.h"

namespace cellgraph::algorithms {

namespace {
using Clock = std::chrono::steady_clock;

double mean(double sum, int64_t n) { return n > 0 ? sum / double(n) : 0.0; }

void set_total(io::Checkpoint& ckpt, const char* key, double value) {
  if (key != nullptr) ckpt.set_meta(key, io::format_double(value));
}
void set_total(io::Checkpoint& ckpt, const char* key, int64_t value) {
  if (key != nullptr) ckpt.set_meta(key, std::to_string(value));
}
double get_total(const io::Checkpoint& ckpt, const char* key, double /*type*/) {
  if (key == nullptr) return 0;
  const double v = ckpt.meta_double(key);
  if (!std::isfinite(v))
    throw error(ckpt.source(), ": metadata '", key, "' is ", v, "; expected a finite number");
  return v;
}
int64_t get_total(const io::Checkpoint& ckpt, const char* key, int64_t /*type*/) {
  if (key == nullptr) return 0;
  const int64_t v = ckpt.meta_int(key);
  if (v < 0) throw error(ckpt.source(), ": metadata '", key, "' is ", v, "; expected a count >= 0");
  return v;
}
}  // namespace

double decimal_of(float value) {
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  CG_ASSERT(ec == std::errc(), "to_chars failed");
  double out = 0;
  std::from_chars(buffer, end, out);
  return out;
}

RunLoop::RunLoop(LoopOptions options, int64_t steps_per_epoch, TotalsKeys keys)
    : options_(options),
      schedule_(options.lr, options.lr_min, options.epochs),
      keys_(keys),
      steps_per_epoch_(steps_per_epoch) {
  CG_ASSERT(steps_per_epoch_ > 0, "a run with no step per epoch");
  start_ = interval_start_ = epoch_start_ = Clock::now();
}

bool RunLoop::finished() const {
  return epoch_ >= options_.epochs || (options_.max_steps > 0 && step_ >= options_.max_steps);
}

int64_t RunLoop::planned_steps() const {
  const int64_t all = options_.epochs * steps_per_epoch_;
  return options_.max_steps > 0 ? std::min(all, options_.max_steps) : all;
}

double RunLoop::elapsed_seconds() const {
  return elapsed_before_ + std::chrono::duration<double>(Clock::now() - start_).count();
}

void RunLoop::finish_step(const StepMetrics& metrics) {
  totals_ += metrics;
  ++step_;
  ++epoch_step_;
  ++interval_steps_;
  ++epoch_steps_timed_;
  epoch_ended_ = false;
  if (options_.log_every > 0 && step_ % options_.log_every == 0 && callback_)
    callback_(record(RunRecord::Kind::log));
  if (epoch_step_ == steps_per_epoch_) {
    if (callback_) callback_(record(RunRecord::Kind::epoch));
    ++epoch_;
    epoch_step_ = 0;
    totals_ = {};
    epoch_ended_ = true;
  }
}

RunRecord RunLoop::snapshot() const {
  RunRecord r;
  r.epoch = epoch_;
  r.step = step_;
  r.train_loss = mean(totals_.train_loss, totals_.train_count);
  r.train_accuracy = mean(double(totals_.train_correct), totals_.train_count);
  r.val_loss = mean(totals_.val_loss, totals_.val_count);
  r.val_accuracy = mean(double(totals_.val_correct), totals_.val_count);
  r.lr = decimal_of(lr());
  return r;
}

RunRecord RunLoop::record(RunRecord::Kind kind) {
  RunRecord r = snapshot();
  r.kind = kind;
  const Clock::time_point now = Clock::now();
  // A log record covers the steps since the last log record, an epoch record the whole
  // epoch (a log record at the epoch's last step must not leave it an empty interval).
  Clock::time_point& since = kind == RunRecord::Kind::log ? interval_start_ : epoch_start_;
  int64_t& steps = kind == RunRecord::Kind::log ? interval_steps_ : epoch_steps_timed_;
  r.seconds_per_step =
      steps > 0 ? std::chrono::duration<double>(now - since).count() / double(steps) : 0.0;
  since = now;
  steps = 0;
  r.elapsed = elapsed_seconds();
  if (decorate_) decorate_(r, totals_);
  return r;
}

void RunLoop::set_epochs(int64_t epochs) {
  // The current epoch must still fit: a run stopped inside epoch e needs at least e + 1.
  const int64_t minimum = std::max<int64_t>(epoch_ + (epoch_step_ > 0 ? 1 : 0), 1);
  if (epochs < minimum)
    throw error("--epochs ", epochs, ": the run has already begun ", minimum,
                " epochs; give at least ", minimum);
  options_.epochs = epochs;
  schedule_ = CosineSchedule(options_.lr, options_.lr_min, epochs);
}

void RunLoop::set_max_steps(int64_t max_steps) {
  if (max_steps < 0) throw error("--max-steps must be >= 0, got ", max_steps);
  options_.max_steps = max_steps;
}

void RunLoop::save(io::Checkpoint& ckpt) const {
  ckpt.set_meta("step", std::to_string(step_));
  ckpt.set_meta("epoch", std::to_string(epoch_));
  ckpt.set_meta("epoch_step", std::to_string(epoch_step_));
  ckpt.set_meta("steps_per_epoch", std::to_string(steps_per_epoch_));
  ckpt.set_meta("elapsed", io::format_double(elapsed_seconds()));
  set_total(ckpt, keys_.train_loss, totals_.train_loss);
  set_total(ckpt, keys_.val_loss, totals_.val_loss);
  set_total(ckpt, keys_.train_correct, totals_.train_correct);
  set_total(ckpt, keys_.val_correct, totals_.val_correct);
  set_total(ckpt, keys_.train_count, totals_.train_count);
  set_total(ckpt, keys_.val_count, totals_.val_count);
  set_total(ckpt, keys_.aux_loss, totals_.aux_loss);
}

void RunLoop::restore(const io::Checkpoint& ckpt, const std::string& mismatch_hint) {
  const std::string& src = ckpt.source();
  if (ckpt.meta_int("steps_per_epoch") != steps_per_epoch_)
    throw error(src, ": ", ckpt.meta_int("steps_per_epoch"), " steps per epoch, this run has ",
                steps_per_epoch_, "; ", mismatch_hint);
  for (const auto& [name, t] : ckpt.tensors())
    if (!all_finite(t))
      throw error(src, ": entry '", name,
                  "' holds inf or NaN; the checkpoint is damaged or its run had diverged");
  const int64_t step = ckpt.meta_int("step"), epoch = ckpt.meta_int("epoch");
  const int64_t epoch_step = ckpt.meta_int("epoch_step");
  int64_t done = 0;
  const bool consistent = step >= 0 && epoch >= 0 && epoch_step >= 0 &&
                          epoch_step < steps_per_epoch_ &&
                          !__builtin_mul_overflow(epoch, steps_per_epoch_, &done) &&
                          !__builtin_add_overflow(done, epoch_step, &done) && done == step;
  if (!consistent)
    throw error(src, ": inconsistent step counters (step ", step, ", epoch ", epoch,
                ", step in epoch ", epoch_step, ", ", steps_per_epoch_,
                " steps per epoch); expected step = epoch * steps per epoch + step in epoch");
  const double elapsed = ckpt.meta_double("elapsed");
  if (!(std::isfinite(elapsed) && elapsed >= 0))
    throw error(src, ": metadata 'elapsed' is ", elapsed, "; expected a finite number >= 0");
  StepMetrics totals;
  totals.train_loss = get_total(ckpt, keys_.train_loss, 0.0);
  totals.val_loss = get_total(ckpt, keys_.val_loss, 0.0);
  totals.train_correct = get_total(ckpt, keys_.train_correct, int64_t{0});
  totals.val_correct = get_total(ckpt, keys_.val_correct, int64_t{0});
  totals.train_count = get_total(ckpt, keys_.train_count, int64_t{0});
  totals.val_count = get_total(ckpt, keys_.val_count, int64_t{0});
  totals.aux_loss = get_total(ckpt, keys_.aux_loss, 0.0);
  step_ = step;
  epoch_ = epoch;
  epoch_step_ = epoch_step;
  totals_ = totals;
  elapsed_before_ = elapsed;
  start_ = interval_start_ = epoch_start_ = Clock::now();
  interval_steps_ = epoch_steps_timed_ = 0;
  epoch_ended_ = false;
}

bool run(Run& run, const RunHooks& hooks, bool resumed) {
  RunLoop& loop = run.loop();
  bool saved = resumed;  // nothing new to save until a step runs
  int64_t saved_step = resumed ? loop.global_step() : -1;
  while (!loop.finished() && !(hooks.stop && hooks.stop())) {
    try {
      run.step();
    } catch (const Error& e) {
      if (saved_step < 0) throw error(e.what(), "; no checkpoint was written");
      throw error(e.what(), "; ", hooks.checkpoint_name, " (step ", saved_step,
                  ") is the last good state, kept as it was");
    }
    saved = false;
    if (loop.epoch_just_ended()) {
      if (hooks.save) hooks.save(run.checkpoint());
      saved = true;
      saved_step = loop.global_step();
    }
    if (hooks.after_step) hooks.after_step();
  }
  if (!saved && hooks.save) hooks.save(run.checkpoint());
  return loop.finished();
}

}  // namespace cellgraph::algorithms
