#include "algorithms/step_context.h"

#include "engine/optim/clip.h"
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

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  const std::vector<float> l = logits.to_vector(), y = labels.to_vector();
  const int64_t n = logits.dim(0), c = logits.dim(1);
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < c; ++j)
      if (l[size_t(i * c + j)] > l[size_t(i * c + best)]) best = j;
    correct += best == int64_t(y[size_t(i)]);
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
  sched::RunOptions options{.training = true,
                            .coefficients = coefficients,
                            .dropout_seed = ctx.step * 2 + (is_train ? 1 : 0)};
  const bool language_model = ctx.graph.state_in.valid();
  if (language_model) {
    const Tensor& state = is_train ? ctx.train_state : ctx.val_state;
    if (state.defined()) options.state = Var(state);
  }
  const sched::RunOutputs out =
      sched::run_outputs(ctx.graph, params, ctx.plan(), Var(batch.images), options);
  Var logits = out.logits, labels(batch.labels);
  if (language_model) {
    (is_train ? ctx.train_state_out : ctx.val_state_out) = out.state.value();
    // [B, T, V] scores of every position against [B, T] next tokens: one row per token.
    const int64_t vocabulary = logits.shape().dims().back();
    const int64_t tokens = logits.value().numel() / vocabulary;
    logits = ops::reshape(logits, Shape{tokens, vocabulary});
    labels = ops::reshape(labels, Shape{tokens});
  }
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
