#include "algorithms/train_session.h"

#include <algorithm>
#include <cmath>

#include "algorithms/step_context.h"
#include "engine/error.h"
#include "engine/optim/clip.h"
#include "engine/optim/divergence.h"
#include "engine/sched/executor.h"
#include "engine/sched/memory_estimate.h"
#include "ops/ops.h"
#include "spec/compile.h"

namespace cellgraph::algorithms {

namespace {

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

// A fixed network's epoch totals in checkpoints, under the keys its first version wrote
// (the auxiliary loss only when the network has the head).
constexpr TotalsKeys kTrainTotals{
    .train_loss = "totals.loss", .train_correct = "totals.correct", .train_count = "totals.count"};
TotalsKeys train_totals(bool auxiliary) {
  TotalsKeys keys = kTrainTotals;
  if (auxiliary) keys.aux_loss = "totals.aux_loss";
  return keys;
}

// Shuffled training batches; drop_last: a last batch of one image would break batch norm's
// statistics. The options are checked first, so their errors come before the iterator's.
std::unique_ptr<BatchSource> image_batches(const Dataset& train_set, const TrainOptions& o) {
  const TrainOptions valid = checked(o);
  return std::make_unique<BatchIterator>(train_set,
                                         BatchOptions{.batch_size = valid.batch_size,
                                                      .drop_last = true,
                                                      .seed = train_batch_seed(valid.seed),
                                                      .augment = valid.augment});
}

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
    const Batch batch = to_device(batches.next(), params.device());
    const Var logits = sched::run(main, params, plan, Var(batch.images), eval_mode);
    const int64_t n = batch.labels.numel();
    r.loss += double(ops::cross_entropy(logits, Var(batch.labels)).value().item()) * double(n);
    r.correct += count_correct(logits.value(), batch.labels);
    r.count += n;
  }
  if (r.count > 0) {
    r.loss /= double(r.count);
    r.accuracy = double(r.correct) / double(r.count);
  }
  return r;
}

EvalResult evaluate(const ir::Graph& graph, const ir::ParameterStore& params,
                    BatchSource& batches) {
  NoGradGuard no_grad;
  ir::Graph main = graph;
  main.aux_logits = {};
  const sched::Plan plan = sched::make_plan(main, sched::all_active(main));
  const bool language_model = graph.state_in.valid();
  EvalResult r;
  Tensor state;
  for (int64_t b = 0; b < batches.batches_per_epoch(); ++b) {
    const Batch batch = to_device(batches.next(), params.device());
    sched::RunOptions eval_mode{.training = false};
    if (state.defined()) eval_mode.state = Var(state);
    const sched::RunOutputs out =
        sched::run_outputs(main, params, plan, Var(batch.images), eval_mode);
    if (language_model) state = out.state.value();
    const auto [logits, labels] = rows_to_score(graph, out.logits, Var(batch.labels));
    const int64_t n = labels.value().numel();
    r.loss += double(ops::cross_entropy(logits, labels).value().item()) * double(n);
    r.correct += count_correct(logits.value(), labels.value());
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

TrainSession::TrainSession(spec::Space space, const Dataset& train_set, const TrainOptions& options)
    : TrainSession(std::move(space), image_batches(train_set, options), options) {}

TrainSession::TrainSession(spec::Space space, std::unique_ptr<BatchSource> batches,
                           TrainOptions options)
    : space_(std::move(space)),
      options_(checked(std::move(options))),
      graph_((require_fixed(space_), spec::compile(space_, training_graph(options_)))),
      params_(graph_, options_.seed, options_.device),
      sgd_(params_.weights(), SgdOptions{.lr = options_.lr,
                                         .momentum = options_.momentum,
                                         .weight_decay = options_.weight_decay}),
      batches_(std::move(batches)),
      plan_(sched::make_plan(graph_, sched::all_active(graph_))),
      loop_(LoopOptions{.epochs = options_.epochs,
                        .max_steps = options_.max_steps,
                        .log_every = options_.log_every,
                        .lr = options_.lr,
                        .lr_min = options_.lr_min},
            batches_->batches_per_epoch(), train_totals(graph_.aux_logits.valid())) {
  sched::require_batch_fits(graph_, plan_, options_.batch_size,
                            "--batch " + std::to_string(options_.batch_size));
  loop_.set_decorate([this](RunRecord& r, const StepMetrics& totals) { decorate(r, totals); });
}

float TrainSession::drop_path_prob() const {
  return float(double(options_.drop_path_prob) * double(loop_.epoch()) / double(options_.epochs));
}

TrainSession::Loss TrainSession::compute_loss(const Batch& batch) const {
  // Dropout and drop-path masks: a pure function of the step, so a resumed run draws the
  // same ones.
  sched::RunOptions options{.training = true,
                            .dropout_seed = uint64_t(loop_.global_step()) * 2 + 1,
                            .drop_path_prob = drop_path_prob()};
  if (state_.defined()) options.state = Var(state_);
  const sched::RunOutputs out =
      sched::run_outputs(graph_, params_, plan_, Var(batch.images), options);
  const ScoredRows rows = rows_to_score(graph_, out.logits, Var(batch.labels));
  Loss loss{.logits = rows.logits, .labels = rows.labels};
  if (graph_.state_in.valid()) loss.state = out.state.value();
  const Var& labels = loss.labels;
  loss.cross_entropy = ops::cross_entropy(loss.logits, labels, options_.label_smoothing);
  loss.total = loss.cross_entropy;
  if (out.aux_logits.defined()) {
    loss.aux_cross_entropy = ops::cross_entropy(out.aux_logits, labels, options_.label_smoothing);
    const Var weight(Tensor::from_vector({1}, {options_.auxiliary_weight}));
    loss.total = ops::add(loss.total, ops::scale(loss.aux_cross_entropy, weight));
  }
  return loss;
}

void TrainSession::step() {
  CG_ASSERT(!finished(), "step() on a finished training run");
  sgd_.set_lr(loop_.lr());
  // A text stream starting over no longer continues the hidden state it carried.
  if (batches_->starts_epoch()) state_ = Tensor();
  const Batch batch = to_device(batches_->next(), options_.device);
  sgd_.zero_grad();
  const Loss loss = compute_loss(batch);
  loss.total.backward();
  const double norm = clip_or_measure_grad_norm(sgd_.params(), options_.grad_clip);
  const int64_t step = loop_.global_step() + 1;
  const std::string hint =
      detail::concat("lower the learning rate (--lr ", decimal_of(options_.lr), ")");
  require_finite(step, "training loss", double(loss.total.value().item()), hint);
  require_finite(step, "weight gradient norm", norm, hint);
  sgd_.step();
  state_ = loss.state;
  const int64_t n = batch.labels.numel();
  StepMetrics m;
  m.train_loss = double(loss.total.value().item()) * double(n);
  if (loss.aux_cross_entropy.defined())
    m.aux_loss = double(loss.aux_cross_entropy.value().item()) * double(n);
  m.train_correct = count_correct(loss.logits.value(), loss.labels.value());
  m.train_count = n;
  m.grad_norm = norm;
  loop_.finish_step(m);
}

RunRecord TrainSession::snapshot() const {
  RunRecord r = loop_.snapshot();
  decorate(r, {});
  return r;
}

void TrainSession::decorate(RunRecord& r, const StepMetrics& totals) const {
  r.language_model = graph_.state_in.valid();
  if (graph_.aux_logits.valid())
    r.aux_loss = totals.train_count > 0 ? totals.aux_loss / double(totals.train_count) : 0.0;
  if (options_.drop_path_prob > 0) r.drop_path = decimal_of(drop_path_prob());
}

void TrainSession::set_epochs(int64_t epochs) {
  loop_.set_epochs(epochs);
  options_.epochs = epochs;
}

void TrainSession::set_max_steps(int64_t max_steps) {
  loop_.set_max_steps(max_steps);
  options_.max_steps = max_steps;
}

io::Checkpoint TrainSession::checkpoint() const {
  io::Checkpoint ckpt;
  ckpt.set_meta("kind", "train");
  loop_.save(ckpt);
  const BatchPosition p = batches_->position();
  ckpt.set_meta("position.epoch", std::to_string(p.epoch));
  ckpt.set_meta("position.batch", std::to_string(p.batch));
  if (state_.defined()) ckpt.add("state/train", state_);
  for (size_t i = 0; i < graph_.params.size(); ++i)
    ckpt.add("param/" + graph_.params[i].name, params_.all()[i].value());
  for (const auto& [key, t] : sgd_.state_tensors()) ckpt.add("sgd/" + key, t);
  return ckpt;
}

void TrainSession::restore(const io::Checkpoint& ckpt) {
  const std::string& src = ckpt.source();
  if (ckpt.meta("kind") != "train")
    throw error(src, ": a '", ckpt.meta("kind"), "' checkpoint, not a train checkpoint");
  loop_.restore(ckpt, "the data, subset or batch size differ");  // checks first
  restore_parameters(graph_, params_, ckpt);
  StateTensors state;
  for (const auto& [name, t] : ckpt.tensors())
    if (name.rfind("sgd/", 0) == 0) state.emplace_back(name.substr(4), t);
  sgd_.load_state_tensors(state, src);
  batches_->set_position({ckpt.meta_int("position.epoch"), ckpt.meta_int("position.batch")});
  state_ = restore_hidden_state(graph_, ckpt, "state/train", options_.batch_size, options_.device);
}

}  // namespace cellgraph::algorithms
