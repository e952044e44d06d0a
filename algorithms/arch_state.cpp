#include "algorithms/arch_state.h"

#include <cmath>

#include "algorithms/algorithm.h"
#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"

namespace cellgraph::algorithms {

ArchState initial_arch_state(const ir::Graph& graph, double init_std, uint64_t seed) {
  ArchState state;
  Rng rng(seed);
  for (const ir::ArchGroup& g : graph.arch_groups) {
    const size_t cols = g.columns.size();
    std::vector<float> v(size_t(g.rows) * cols);
    for (size_t r = 0; r < size_t(g.rows); ++r)
      for (size_t c = 0; c < cols; ++c) {
        const double random = init_std * double(rng.normal());  // drawn always: stable streams
        const double given = g.init[r][c];
        v[r * cols + c] = float(std::isnan(given) ? random : given);
      }
    state.logits.emplace_back(Tensor::from_vector({g.rows, int64_t(cols)}, v), true,
                              "arch." + g.name);
  }
  state.active = sched::all_active(graph);
  return state;
}

std::vector<Var>& arch_variables(ArchState& state) {
  return state.algorithm != nullptr ? state.algorithm->variables(state) : state.logits;
}

std::vector<Var> softmax_coefficients(const ArchState& state) {
  std::vector<Var> out;
  for (const Var& logits : state.logits) out.push_back(ops::softmax(logits));
  return out;
}

std::vector<Var> relaxed_coefficients(const ArchState& state) {
  return state.algorithm != nullptr ? state.algorithm->relaxed_coefficients(state)
                                    : softmax_coefficients(state);
}

std::vector<Var> current_coefficients(const ArchState& state) {
  if (state.algorithm != nullptr) return state.algorithm->coefficients(state);
  NoGradGuard no_grad;
  return softmax_coefficients(state);
}

std::vector<std::vector<float>> coefficient_values(const ArchState& state) {
  if (state.algorithm != nullptr) return state.algorithm->ranking_values(state);
  std::vector<std::vector<float>> out;
  for (const Var& c : current_coefficients(state)) out.push_back(c.value().to_vector());
  return out;
}

namespace {
void move_vars(std::vector<Var>& vars, Device device) {
  for (Var& v : vars)
    if (v.device() != device) v = Var(v.value().to(device), v.requires_grad(), v.name());
}
}  // namespace

void move_to_device(ArchState& state, Device device) {
  backend_for(device);  // an unavailable device is an error even for an empty state
  move_vars(state.logits, device);
  std::vector<Var>& variables = arch_variables(state);  // ISTA-NAS: its codes
  if (&variables != &state.logits) move_vars(variables, device);
}

}  // namespace cellgraph::algorithms
