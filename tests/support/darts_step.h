// One forward and backward of a compiled search network, for tests that compare two
// compilations of one space (the ReLU folds, spec/fold_*_relu.h): the shipped DARTS space
// on small RGB images, and what a step yields, in an order both compilations share.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/autodiff/var.h"
#include "engine/ir/parameter_store.h"
#include "engine/sched/executor.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "spec/parse.h"

namespace cellgraph::testing {

// examples/spaces/darts_cnn.json on 3 x size x size images.
inline spec::Space darts_space(int64_t size) {
  spec::Space s =
      spec::parse_file(std::string(CELLGRAPH_SOURCE_DIR) + "/examples/spaces/darts_cnn.json");
  s.network.in_channels = 3;
  s.network.in_height = s.network.in_width = size;
  return s;
}

// Only the candidates of the listed ops active (two ops per edge, as sparse algorithms run).
inline sched::ActiveSet ops_active(const ir::Graph& graph, std::initializer_list<Candidate> ops) {
  sched::ActiveSet active = sched::all_active(graph);
  for (size_t i = 0; i < graph.candidates.size(); ++i)
    active[i] = std::find(ops.begin(), ops.end(), graph.candidates[i].op) != ops.end();
  return active;
}

// The logits, then the gradient of their sum for every parameter (empty where it has none)
// and for the coefficients, after one forward and backward of `graph` (seeded weights, two
// 3 x 8 x 8 images) with `active` candidates; with `frozen` the weights get none (an
// architecture step).
inline std::vector<std::vector<float>> search_step(const ir::Graph& graph,
                                                   const sched::ActiveSet& active,
                                                   bool frozen = false) {
  const ir::ParameterStore params(graph, 3);
  Rng rng(4);
  const Var images(normal_tensor({2, 3, 8, 8}, 0, 1, rng));
  std::vector<Var> coefficients;
  for (const ir::ArchGroup& g : graph.arch_groups)
    coefficients.emplace_back(uniform_tensor({g.rows, int64_t(g.columns.size())}, 0.1f, 1.0f, rng),
                              true);
  const sched::RunOptions options{.training = true, .coefficients = coefficients};
  const std::vector<Var>& weights = params.all();
  FreezeGuard freeze(frozen ? weights : std::vector<Var>{});
  const Var logits = sched::run(graph, params, sched::make_plan(graph, active), images, options);
  ops::sum(logits).backward();
  std::vector<std::vector<float>> out{logits.value().to_vector()};
  for (const Var& p : weights)
    out.push_back(p.has_grad() ? p.grad().to_vector() : std::vector<float>{});
  for (const Var& c : coefficients) out.push_back(c.grad().to_vector());
  return out;
}

}  // namespace cellgraph::testing
