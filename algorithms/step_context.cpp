#include "algorithms/step_context.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/optim/clip.h"
#include "engine/optim/divergence.h"
#include "engine/sched/executor.h"
#include "ops/ops.h"

namespace cellgraph::algorithms {

StepMetrics& StepMetrics::operator+=(const StepMetrics& o) {
  train_loss += o.train_loss;
  val_loss += o.val_loss;
  train_correct += o.train_correct;
  val_correct += o.val_correct;
  train_count += o.train_count;
  val_count += o.val_count;
  aux_loss += o.aux_loss;
  return *this;
}

const sched::Plan& StepContext::plan() {
  if (!planned_ || plan_.active != arch.active) {
    plan_ = sched::make_plan(graph, arch.active);
    planned_ = true;
  }
  return plan_;
}

ScoredRows rows_to_score(const ir::Graph& graph, const Var& logits, const Var& labels) {
  if (!graph.state_in.valid()) return {logits, labels};
  const int64_t vocabulary = logits.shape().dims().back();
  const int64_t tokens = logits.value().numel() / vocabulary;
  return {ops::reshape(logits, Shape{tokens, vocabulary}), ops::reshape(labels, Shape{tokens})};
}

Tensor restore_hidden_state(const ir::Graph& graph, const io::Checkpoint& ckpt,
                            const std::string& name, int64_t batch, Device device) {
  if (ckpt.find(name) == nullptr) return Tensor();
  if (!graph.state_in.valid())
    throw error(ckpt.source(), ": entry '", name, "' is a language model's hidden state; ",
                "this network has none");
  const Shape shape{batch, graph.value(graph.state_in).shape.dims().back()};
  const Tensor& saved = ckpt.tensor(name, shape);
  if (!all_finite(saved))
    throw error(ckpt.source(), ": entry '", name,
                "' holds inf or NaN; the checkpoint is damaged or its run had diverged");
  Tensor t = Tensor::zeros(shape, device);
  t.copy_from(saved);
  return t;
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  // Read in place when the scores are a contiguous host tensor: a language model's are
  // B·T rows of the vocabulary (22M floats at DARTS' RNN sizes), which two copies would
  // double in memory and time.
  const Tensor host =
      (logits.device() == Device::cpu ? logits : logits.to(Device::cpu)).contiguous();
  const float* l = host.data();
  const std::vector<float> y = labels.to_vector();
  const int64_t n = logits.dim(0), c = logits.dim(1);
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = l + i * c;
    correct += int64_t(std::max_element(row, row + c) - row) == int64_t(y[size_t(i)]);
  }
  return correct;
}

Var forward_loss(StepContext& ctx, const Batch& batch, const std::vector<Var>& coefficients,
                 bool is_train) {
  return forward_loss(ctx, ctx.params, batch, coefficients, is_train);
}

Var forward_loss(StepContext& ctx, const ir::ParameterStore& params, const Batch& batch,
                 const std::vector<Var>& coefficients, bool is_train) {
  if (ctx.loss_model) {
    Var loss = ctx.loss_model(params, is_train, coefficients);
    (is_train ? ctx.metrics.train_loss : ctx.metrics.val_loss) += double(loss.value().item());
    (is_train ? ctx.metrics.train_count : ctx.metrics.val_count) += 1;
    return loss;
  }
  return forward_loss(ctx, params, batch, network_run_options(ctx, coefficients, is_train),
                      is_train);
}

sched::RunOptions network_run_options(const StepContext& ctx, const std::vector<Var>& coefficients,
                                      bool is_train) {
  sched::RunOptions options{.training = true,
                            .coefficients = coefficients,
                            .dropout_seed = ctx.step * 2 + (is_train ? 1 : 0)};
  if (ctx.graph.state_in.valid()) {
    const Tensor& state = is_train ? ctx.train_state : ctx.val_state;
    if (state.defined()) options.state = Var(state);
  }
  return options;
}

Var forward_loss(StepContext& ctx, const ir::ParameterStore& params, const Batch& batch,
                 const sched::RunOptions& options, bool is_train) {
  const bool language_model = ctx.graph.state_in.valid();
  const sched::RunOutputs out =
      sched::run_outputs(ctx.graph, params, ctx.plan(), Var(batch.images), options);
  if (language_model) (is_train ? ctx.train_state_out : ctx.val_state_out) = out.state.value();
  const auto [logits, labels] = rows_to_score(ctx.graph, out.logits, Var(batch.labels));
  Var loss = ops::cross_entropy(logits, labels);
  const double n = double(labels.value().numel());
  (is_train ? ctx.metrics.train_loss : ctx.metrics.val_loss) += double(loss.value().item()) * n;
  (is_train ? ctx.metrics.train_correct : ctx.metrics.val_correct) +=
      count_correct(logits.value(), labels.value());
  (is_train ? ctx.metrics.train_count : ctx.metrics.val_count) += labels.value().numel();
  return loss;
}

void update_weights(StepContext& ctx) {
  Sgd& sgd = ctx.weight_optimizer;
  sgd.zero_grad();
  forward_loss(ctx, ctx.train, current_coefficients(ctx.arch), true).backward();
  ctx.metrics.grad_norm = clip_or_measure_grad_norm(sgd.params(), ctx.grad_clip);
  sgd.step();
}

}  // namespace cellgraph::algorithms
