#include "tools/cellgraph/train_session.h"

#include <algorithm>
#include <cmath>

#include "algorithms/search_session.h"
#include "algorithms/search_step.h"
#include "engine/error.h"
#include "engine/optim/clip.h"
#include "engine/optim/divergence.h"
#include "engine/sched/executor.h"
#include "engine/sched/memory_estimate.h"
#include "ops/ops.h"
#include "spec/compile.h"

namespace cellgraph::tools {

namespace {

using Clock = std::chrono::steady_clock;

TrainOptions checked(TrainOptions o) {
  if (o.epochs < 1) throw error("train: epochs must be >= 1, got ", o.epochs);
  if (o.batch_size < 1) throw error("train: batch size must be >= 1, got ", o.batch_size);
  if (o.max_steps < 0 || o.log_every < 0) throw error("train: negative step counts");
  if (!(o.label_smoothing >= 0.0f && o.label_smoothing < 1.0f))
    throw error("train: label smoothing must be in [0, 1), got ", o.label_smoothing);
  if (!(o.drop_path_prob >= 0.0f && o.drop_path_prob < 1.0f))
    throw error("train: drop-path probability must be in [0, 1), got ", o.drop_path_prob);
  if (!(o.auxiliary_weight >= 0.0f && std::isfinite(o.auxiliary_weight)))
    throw error("train: auxiliary weight must be a finite number >= 0, got ", o.auxiliary_weight);
  return o;
}

spec::CompileOptions training_graph(const TrainOptions& o) {
  return {.drop_path = o.drop_path_prob > 0.0f, .auxiliary_head = o.auxiliary_weight > 0.0f};
}

// The batch order stream is independent of the weight initialisation stream.
uint64_t batch_seed(uint64_t seed) { return seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull; }

}  // namespace

void require_fixed(const spec::Space& space) {
  if (space.is_fixed()) return;
  throw error(space.file,
              ": a search space (some edges have several candidate ops); train and "
              "eval take a fixed network: derive one with `cellgraph derive RUN_DIR` "
              "or use the derived.json of a search run");
}

EvalResult evaluate(const ir::Graph& graph, const ir::ParameterStore& params, const Dataset& data,
                    int64_t batch_size) {
  NoGradGuard no_grad;
  // A training graph's auxiliary head does not take part: plan without it.
  ir::Graph main = graph;
  main.aux_logits = {};
  const sched::Plan plan = sched::make_plan(main, sched::all_active(main));
  const sched::RunOptions eval_mode{.training = false};
  BatchIterator batches(data, BatchOptions{.batch_size = batch_size, .shuffle = false});
  EvalResult r;
  for (int64_t b = 0; b < batches.batches_per_epoch(); ++b) {
    const Batch batch = batches.next();
    const Var logits = sched::run(main, params, plan, Var(batch.images), eval_mode);
    const int64_t n = batch.labels.numel();
    r.loss += double(ops::cross_entropy(logits, Var(batch.labels)).value().item()) * double(n);
    r.correct += algorithms::count_correct(logits.value(), batch.labels);
    r.count += n;
  }
  if (r.count > 0) {
    r.loss /= double(r.count);
    r.accuracy = double(r.correct) / double(r.count);
  }
  return r;
}

void restore_parameters(const ir::Graph& graph, const ir::ParameterStore& params,
                        const io::Checkpoint& ckpt) {
  const bool skip_auxiliary = !graph.aux_logits.valid();
  size_t entries = 0;
  for (const auto& [name, t] : ckpt.tensors())
    entries +=
        name.rfind("param/", 0) == 0 && !(skip_auxiliary && name.rfind("param/auxiliary.", 0) == 0);
  for (size_t i = 0; i < graph.params.size(); ++i) {
    const Var& v = params.all()[i];
    const std::string name = "param/" + graph.params[i].name;
    const Tensor& t = ckpt.tensor(name, v.shape());
    if (!all_finite(t))
      throw error(ckpt.source(), ": entry '", name,
                  "' holds inf or NaN; the checkpoint is damaged or its run had diverged");
    v.value().copy_from(t);
  }
  if (entries != graph.params.size())
    throw error(ckpt.source(), ": ", entries, " parameter entries, the network has ",
                graph.params.size(), "; the checkpoint is of another network");
}

TrainSession::TrainSession(spec::Space space, const Dataset& train_set, TrainOptions options)
    : space_(std::move(space)),
      options_(checked(options)),
      graph_((require_fixed(space_), spec::compile(space_, training_graph(options_)))),
      params_(graph_, options_.seed),
      sgd_(params_.weights(), SgdOptions{.lr = options_.lr,
                                         .momentum = options_.momentum,
                                         .weight_decay = options_.weight_decay}),
      schedule_(options_.lr, options_.lr_min, options_.epochs),
      // drop_last: a last batch of one image would break batch norm's statistics.
      batches_(train_set, BatchOptions{.batch_size = options_.batch_size,
                                       .drop_last = true,
                                       .seed = batch_seed(options_.seed),
                                       .augment = options_.augment}),
      plan_(sched::make_plan(graph_, sched::all_active(graph_))),
      steps_per_epoch_(batches_.batches_per_epoch()) {
  sched::require_batch_fits(graph_, plan_, options_.batch_size,
                            "--batch " + std::to_string(options_.batch_size));
  start_ = interval_start_ = epoch_start_ = Clock::now();
}

bool TrainSession::finished() const {
  return epoch_ >= options_.epochs || (options_.max_steps > 0 && step_ >= options_.max_steps);
}

int64_t TrainSession::planned_steps() const {
  const int64_t all = options_.epochs * steps_per_epoch_;
  return options_.max_steps > 0 ? std::min(all, options_.max_steps) : all;
}

float TrainSession::drop_path_prob() const {
  return float(double(options_.drop_path_prob) * double(epoch_) / double(options_.epochs));
}

TrainSession::Loss TrainSession::compute_loss(const Batch& batch) const {
  // Dropout and drop-path masks: a pure function of the step, so a resumed run draws the
  // same ones.
  const sched::RunOptions options{.training = true,
                                  .dropout_seed = uint64_t(step_) * 2 + 1,
                                  .drop_path_prob = drop_path_prob()};
  const sched::RunOutputs out =
      sched::run_outputs(graph_, params_, plan_, Var(batch.images), options);
  const Var labels(batch.labels);
  Loss loss{.logits = out.logits};
  loss.cross_entropy = ops::cross_entropy(out.logits, labels, options_.label_smoothing);
  loss.total = loss.cross_entropy;
  if (out.aux_logits.defined()) {
    loss.aux_cross_entropy = ops::cross_entropy(out.aux_logits, labels, options_.label_smoothing);
    const Var weight(Tensor::from_vector({1}, {options_.auxiliary_weight}));
    loss.total = ops::add(loss.total, ops::scale(loss.aux_cross_entropy, weight));
  }
  return loss;
}

Var TrainSession::loss(const Batch& batch) {
  const Loss loss = compute_loss(batch);
  const int64_t n = batch.labels.numel();
  loss_sum_ += double(loss.total.value().item()) * double(n);
  if (loss.aux_cross_entropy.defined())
    aux_loss_sum_ += double(loss.aux_cross_entropy.value().item()) * double(n);
  correct_ += algorithms::count_correct(loss.logits.value(), batch.labels);
  count_ += n;
  return loss.total;
}

void TrainSession::step() {
  CG_ASSERT(!finished(), "step() on a finished training run");
  sgd_.set_lr(schedule_.lr_at(epoch_));
  const Batch batch = batches_.next();
  sgd_.zero_grad();
  const Var total = loss(batch);
  total.backward();
  const double norm = clip_or_measure_grad_norm(sgd_.params(), options_.grad_clip);
  const std::string hint =
      detail::concat("lower the learning rate (--lr ", algorithms::decimal_of(options_.lr), ")");
  require_finite(step_ + 1, "training loss", double(total.value().item()), hint);
  require_finite(step_ + 1, "weight gradient norm", norm, hint);
  sgd_.step();
  ++step_;
  ++epoch_step_;
  ++interval_steps_;
  ++epoch_steps_timed_;
  epoch_ended_ = false;
  if (options_.log_every > 0 && step_ % options_.log_every == 0 && callback_)
    callback_(record(TrainRecord::Kind::log));
  if (epoch_step_ == steps_per_epoch_) {
    if (callback_) callback_(record(TrainRecord::Kind::epoch));
    ++epoch_;
    epoch_step_ = 0;
    loss_sum_ = aux_loss_sum_ = 0;
    correct_ = count_ = 0;
    epoch_ended_ = true;
  }
}

TrainRecord TrainSession::snapshot() const {
  TrainRecord r;
  r.epoch = epoch_;
  r.step = step_;
  r.train_loss = count_ > 0 ? loss_sum_ / double(count_) : 0;
  r.train_accuracy = count_ > 0 ? double(correct_) / double(count_) : 0;
  r.train_aux_loss = count_ > 0 ? aux_loss_sum_ / double(count_) : 0;
  r.lr = algorithms::decimal_of(schedule_.lr_at(epoch_));
  r.drop_path_prob = algorithms::decimal_of(drop_path_prob());
  return r;
}

TrainRecord TrainSession::record(TrainRecord::Kind kind) {
  TrainRecord r = snapshot();
  r.kind = kind;
  const Clock::time_point now = Clock::now();
  // A log record covers the steps since the last log record, an epoch record the whole
  // epoch (a log record at the epoch's last step must not leave it an empty interval).
  Clock::time_point& since = kind == TrainRecord::Kind::log ? interval_start_ : epoch_start_;
  int64_t& steps = kind == TrainRecord::Kind::log ? interval_steps_ : epoch_steps_timed_;
  r.seconds_per_step =
      steps > 0 ? std::chrono::duration<double>(now - since).count() / double(steps) : 0.0;
  r.elapsed = elapsed_before_ + std::chrono::duration<double>(now - start_).count();
  since = now;
  steps = 0;
  return r;
}

void TrainSession::set_epochs(int64_t epochs) {
  const int64_t minimum = std::max<int64_t>(epoch_ + (epoch_step_ > 0 ? 1 : 0), 1);
  if (epochs < minimum)
    throw error("--epochs ", epochs, ": the run has already begun ", minimum,
                " epochs; give at least ", minimum);
  options_.epochs = epochs;
  schedule_ = CosineSchedule(options_.lr, options_.lr_min, epochs);
}

void TrainSession::set_max_steps(int64_t max_steps) {
  if (max_steps < 0) throw error("--max-steps must be >= 0, got ", max_steps);
  options_.max_steps = max_steps;
}

io::Checkpoint TrainSession::checkpoint() const {
  io::Checkpoint ckpt;
  ckpt.set_meta("kind", "train");
  ckpt.set_meta("step", std::to_string(step_));
  ckpt.set_meta("epoch", std::to_string(epoch_));
  ckpt.set_meta("epoch_step", std::to_string(epoch_step_));
  ckpt.set_meta("steps_per_epoch", std::to_string(steps_per_epoch_));
  const BatchPosition p = batches_.position();
  ckpt.set_meta("position.epoch", std::to_string(p.epoch));
  ckpt.set_meta("position.batch", std::to_string(p.batch));
  ckpt.set_meta("totals.loss", io::format_double(loss_sum_));
  if (graph_.aux_logits.valid()) ckpt.set_meta("totals.aux_loss", io::format_double(aux_loss_sum_));
  ckpt.set_meta("totals.correct", std::to_string(correct_));
  ckpt.set_meta("totals.count", std::to_string(count_));
  const double elapsed =
      elapsed_before_ + std::chrono::duration<double>(Clock::now() - start_).count();
  ckpt.set_meta("elapsed", io::format_double(elapsed));
  for (size_t i = 0; i < graph_.params.size(); ++i)
    ckpt.add("param/" + graph_.params[i].name, params_.all()[i].value());
  for (const auto& [key, t] : sgd_.state_tensors()) ckpt.add("sgd/" + key, t);
  return ckpt;
}

void TrainSession::restore(const io::Checkpoint& ckpt) {
  const std::string& src = ckpt.source();
  if (ckpt.meta("kind") != "train")
    throw error(src, ": a '", ckpt.meta("kind"), "' checkpoint, not a train checkpoint");
  if (ckpt.meta_int("steps_per_epoch") != steps_per_epoch_)
    throw error(src, ": ", ckpt.meta_int("steps_per_epoch"), " steps per epoch, this run has ",
                steps_per_epoch_, "; the data, subset or batch size differ");
  const algorithms::StepCounters counters =
      algorithms::read_step_counters(ckpt, steps_per_epoch_);  // checks first
  restore_parameters(graph_, params_, ckpt);
  StateTensors state;
  for (const auto& [name, t] : ckpt.tensors())
    if (name.rfind("sgd/", 0) == 0) state.emplace_back(name.substr(4), t);
  sgd_.load_state_tensors(state, src);
  batches_.set_position({ckpt.meta_int("position.epoch"), ckpt.meta_int("position.batch")});
  step_ = counters.step;
  epoch_ = counters.epoch;
  epoch_step_ = counters.epoch_step;
  loss_sum_ = ckpt.meta_double("totals.loss");
  aux_loss_sum_ = graph_.aux_logits.valid() ? ckpt.meta_double("totals.aux_loss") : 0;
  correct_ = ckpt.meta_int("totals.correct");
  count_ = ckpt.meta_int("totals.count");
  elapsed_before_ = ckpt.meta_double("elapsed");
  start_ = interval_start_ = epoch_start_ = Clock::now();
  interval_steps_ = epoch_steps_timed_ = 0;
  epoch_ended_ = false;
}

}  // namespace cellgraph::tools
