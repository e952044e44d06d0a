#include "tests/support/gradcheck.h"

#include <cmath>
#include <sstream>

#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "ops/schema.h"

namespace cellgraph::testing {

namespace {
double weighted_sum(const std::vector<Var>& outs, const std::vector<std::vector<float>>& weights) {
  double total = 0;
  for (size_t o = 0; o < outs.size(); ++o) {
    const std::vector<float> v = outs[o].value().to_vector();
    for (size_t i = 0; i < v.size(); ++i) total += double(v[i]) * double(weights[o][i]);
  }
  return total;
}

std::vector<Var> as_vars(const std::vector<Tensor>& tensors, const std::vector<int>& grads) {
  std::vector<Var> vars;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].defined()) {
      vars.emplace_back();
      continue;
    }
    bool wants = false;
    for (int g : grads) wants = wants || g == int(i);
    vars.emplace_back(tensors[i], wants);
  }
  return vars;
}
}  // namespace

std::vector<int> checked_inputs(const GradCheck& spec) {
  if (!spec.check.empty()) return spec.check;
  std::vector<int> check;
  const uint32_t diff = schema(spec.kind).differentiable_inputs;
  for (size_t i = 0; i < spec.inputs.size(); ++i)
    if (spec.inputs[i].defined() && has_bit(diff, i)) check.push_back(int(i));
  return check;
}

GradCheckResult run_gradcheck(const GradCheck& spec) {
  GradCheckResult result;
  const std::vector<int> check = checked_inputs(spec);
  // Work on private copies: the numeric pass perturbs them in place.
  std::vector<Tensor> inputs;
  for (const Tensor& t : spec.inputs) inputs.push_back(t.defined() ? t.clone() : Tensor());

  // Analytic gradients.
  std::vector<Var> vars = as_vars(inputs, check);
  std::vector<Var> outs = ops::apply(spec.kind, spec.attrs, vars);
  Rng rng(spec.seed);
  std::vector<std::vector<float>> weights;
  std::vector<Tensor> seeds;
  for (const Var& out : outs) {
    Tensor r = uniform_tensor(out.shape(), -1.0f, 1.0f, rng);
    weights.push_back(r.to_vector());
    seeds.push_back(r);
  }
  backward(outs, seeds);

  std::ostringstream report;
  int reported = 0;
  for (int idx : check) {
    const Var& v = vars[size_t(idx)];
    const std::vector<float> analytic =
        v.has_grad() ? v.grad().to_vector() : std::vector<float>(size_t(v.value().numel()), 0.0f);
    Tensor& x = inputs[size_t(idx)];
    for (int64_t e = 0; e < x.numel(); ++e) {
      float* p = x.data() + e;  // CPU tensors: perturb in place
      const float saved = *p;
      std::vector<Var> plain = as_vars(inputs, {});
      *p = saved + spec.eps;
      const double up = weighted_sum(ops::apply(spec.kind, spec.attrs, plain), weights);
      *p = saved - spec.eps;
      const double down = weighted_sum(ops::apply(spec.kind, spec.attrs, plain), weights);
      *p = saved;
      const double numeric = (up - down) / (2.0 * double(spec.eps));
      const double err = std::fabs(double(analytic[size_t(e)]) - numeric);
      result.max_abs_error = std::max(result.max_abs_error, err);
      ++result.checked;
      if (err > spec.atol + spec.rtol * std::fabs(numeric)) {
        result.ok = false;
        if (reported++ < 8)
          report << op_name(spec.kind) << " input " << idx << " [" << e << "]: analytic "
                 << analytic[size_t(e)] << " numeric " << numeric << "\n";
      }
    }
  }
  report << op_name(spec.kind) << ": " << result.checked << " elements, max abs error "
         << result.max_abs_error;
  result.report = report.str();
  return result;
}

}  // namespace cellgraph::testing
