// DARTS (Liu et al., ICLR 2019): softmax relaxation of each mixed edge; architecture
// updated by Adam on the validation loss, first order (w treated as constant) or second
// order (one unrolled SGD step, Hessian-vector product by finite differences). The
// equations are in docs/algorithms.md.
#include "algorithms/darts.h"

#include <cmath>

#include "algorithms/algorithm.h"
#include "engine/backends/vector_ops.h"
#include "engine/error.h"

namespace cellgraph::algorithms {

namespace {
std::vector<Var> fixed_coefficients(const ArchState& arch) {
  NoGradGuard no_grad;
  return relaxed_coefficients(arch);
}

void zero_arch_grads(ArchState& arch) {
  for (Var& l : arch_variables(arch)) l.zero_grad();
}

// dst = a + s * b, element-wise over matching parameter lists (a copy, then b added
// scaled: the same bits as a + s * b in one pass).
void set_axpy(const std::vector<Var>& dst, const std::vector<Tensor>& a, float s,
              const std::vector<Tensor>& b) {
  for (size_t i = 0; i < dst.size(); ++i) {
    dst[i].value().copy_from(a[i]);
    if (b[i].defined()) vec::axpy(s, b[i], dst[i].value());
  }
}

std::vector<Tensor> clone_values(const std::vector<Var>& vars) {
  std::vector<Tensor> out;
  out.reserve(vars.size());
  for (const Var& v : vars) out.push_back(v.value().clone());
  return out;
}

std::vector<Tensor> grads_of(const std::vector<Var>& vars) {
  std::vector<Tensor> out;
  out.reserve(vars.size());
  for (const Var& v : vars) out.push_back(v.has_grad() ? v.grad().clone() : Tensor());
  return out;
}

// d/dalpha of L_train at the current weights (weights frozen: no weight gradients).
std::vector<Tensor> arch_grad_of_train_loss(StepContext& ctx) {
  FreezeGuard freeze(ctx.weight_optimizer.params());
  zero_arch_grads(ctx.arch);
  StepMetrics keep = ctx.metrics;  // extra passes are not part of the step's metrics
  forward_loss(ctx, ctx.train, relaxed_coefficients(ctx.arch), true).backward();
  ctx.metrics = keep;
  return grads_of(arch_variables(ctx.arch));
}
}  // namespace

void update_architecture_first_order(StepContext& ctx) {
  FreezeGuard freeze(ctx.weight_optimizer.params());
  ctx.arch_optimizer.zero_grad();
  forward_loss(ctx, ctx.val, relaxed_coefficients(ctx.arch), false).backward();
  ctx.arch_optimizer.step();
}

void second_order_gradient(StepContext& ctx) {
  Sgd& sgd = ctx.weight_optimizer;
  const std::vector<Var>& w = sgd.params();
  const float xi = sgd.lr();
  const SgdOptions& o = sgd.options();
  const std::vector<Tensor> backup = clone_values(w);

  // g = dL_train/dw at (w, alpha), alpha held fixed. The unrolled step stands for the weight
  // step that follows, so it trains what that step trains: candidates that run forward-only
  // for their coefficient's gradient (a sparse relaxation's zero entries, SparseNAS) are
  // left out of this pass, and weights without a gradient stay where they are, as
  // Sgd::step leaves them. (DARTS' dense supernet gives every weight a gradient.)
  sgd.zero_grad();
  {
    const sched::ActiveSet arch_active = ctx.arch.active;
    for (uint8_t& a : ctx.arch.active)
      if (a == sched::kForwardOnly) a = sched::kInactive;
    StepMetrics keep = ctx.metrics;
    forward_loss(ctx, ctx.train, fixed_coefficients(ctx.arch), true).backward();
    ctx.metrics = keep;
    ctx.arch.active = arch_active;
  }
  // w' = w - xi * (momentum * buf + g + wd * w)
  for (size_t i = 0; i < w.size(); ++i) {
    if (!w[i].has_grad()) continue;
    vec::sgd_lookahead(w[i].value(), w[i].grad(),
                       o.momentum != 0 ? sgd.momentum_buffer(i) : Tensor(), xi, o.momentum,
                       o.weight_decay);
  }
  // L_val(w', alpha): dalpha and dw'.
  sgd.zero_grad();
  zero_arch_grads(ctx.arch);
  forward_loss(ctx, ctx.val, relaxed_coefficients(ctx.arch), false).backward();
  const std::vector<Tensor> dalpha = grads_of(arch_variables(ctx.arch));
  const std::vector<Tensor> dw = grads_of(w);
  sgd.zero_grad();

  double norm2 = 0;
  for (const Tensor& t : dw)
    if (t.defined()) norm2 = vec::sum_squares_sequential(t, norm2);
  // Hessian-vector product by central differences along dw'.
  const float r = float(0.01 / std::max(std::sqrt(norm2), 1e-12));
  set_axpy(w, backup, r, dw);
  const std::vector<Tensor> plus = arch_grad_of_train_loss(ctx);
  set_axpy(w, backup, -r, dw);
  const std::vector<Tensor> minus = arch_grad_of_train_loss(ctx);
  set_axpy(w, backup, 0.0f, std::vector<Tensor>(w.size()));

  // dalpha - xi * (plus - minus) / 2r
  std::vector<Var>& alpha = arch_variables(ctx.arch);
  for (size_t g = 0; g < alpha.size(); ++g) {
    Tensor out = dalpha[g].defined() ? dalpha[g].clone()
                                     : Tensor::zeros(alpha[g].shape(), alpha[g].device());
    vec::subtract_difference_quotient(out, xi, plus[g], minus[g], 2.0f * r);
    alpha[g].set_grad(out);
  }
}

void update_architecture_second_order(StepContext& ctx) {
  second_order_gradient(ctx);
  ctx.arch_optimizer.step();
}

namespace {
class Darts final : public Algorithm {
 public:
  Darts()
      : Algorithm("darts", "DARTS, first order: alpha by Adam on dL_val/dalpha with w held fixed") {
  }
  std::vector<NamedPass> passes() const override {
    return {{"update_architecture_first_order", update_architecture_first_order},
            {"update_weights", update_weights}};
  }
};

class Darts2 final : public Algorithm {
 public:
  Darts2()
      : Algorithm("darts2",
                  "DARTS, second order: alpha by Adam on the gradient through one unrolled SGD "
                  "step") {}
  std::vector<NamedPass> passes() const override {
    return {{"update_architecture_second_order", update_architecture_second_order},
            {"update_weights", update_weights}};
  }
};
}  // namespace

const Algorithm& darts_algorithm() {
  static const Darts kDarts;
  return kDarts;
}

const Algorithm& darts2_algorithm() {
  static const Darts2 kDarts2;
  return kDarts2;
}

}  // namespace cellgraph::algorithms
