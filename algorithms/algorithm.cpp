// The defaults of the Algorithm interface: DARTS' softmax relaxation, keep-k derivation, no
// state beyond the logits.
#include "algorithms/algorithm.h"

#include "engine/error.h"
#include "engine/optim/schedule.h"

namespace cellgraph::algorithms {

ArchState Algorithm::initial_state(const ir::Graph& graph, const spec::Space& space,
                                   const HyperValues& /*hyper*/, uint64_t seed) const {
  if (!searches_widths())
    for (const ir::ArchGroup& g : graph.arch_groups)
      if (g.kind == ir::ArchGroup::Kind::channel_scores)
        throw error(space.file, ": the network searches a block's width (\"width_search\", ",
                    g.row_labels.at(0), "); only --algo rarts searches widths, --algo ", name(),
                    " does not");
  ArchState state = initial_arch_state(graph, space.arch.init_std, seed);
  state.algorithm = this;
  return state;
}

std::vector<Var> Algorithm::coefficients(const ArchState& arch) const {
  NoGradGuard no_grad;
  return softmax_coefficients(arch);
}

std::vector<Var> Algorithm::relaxed_coefficients(const ArchState& arch) const {
  return softmax_coefficients(arch);
}

std::vector<std::vector<float>> Algorithm::ranking_values(const ArchState& arch) const {
  std::vector<std::vector<float>> out;
  for (const Var& c : coefficients(arch)) out.push_back(c.value().to_vector());
  return out;
}

Derived Algorithm::derive(const spec::Space& space, const ir::Graph& graph,
                          const ArchState& arch) const {
  return derive_by_ranking(space, graph, ranking_values(arch));
}

void Algorithm::save(const ir::Graph& /*graph*/, const ArchState& /*arch*/,
                     io::Checkpoint& /*ckpt*/) const {}

void Algorithm::restore(const ir::Graph& /*graph*/, ArchState& /*arch*/,
                        const io::Checkpoint& /*ckpt*/, bool /*full*/) const {}

void Algorithm::end_epoch(const ir::Graph& /*graph*/, ArchState& /*arch*/,
                          const HyperValues& /*hyper*/, int64_t /*epoch*/) const {}

float Algorithm::weight_lr(const ArchState& /*arch*/, const HyperValues& /*hyper*/,
                           const LoopOptions& loop, int64_t epoch) const {
  return CosineSchedule(loop.lr, loop.lr_min, loop.epochs).lr_at(epoch);
}

void Algorithm::describe_epoch(const ir::Graph& /*graph*/, const ArchState& /*arch*/,
                               spec::JsonValue& /*record*/) const {}

TrainedNetwork Algorithm::trained_network(const spec::Space& /*space*/,
                                          const io::Checkpoint& ckpt) const {
  throw error(ckpt.source(), ": a ", name(),
              " search trains no network; train its derived.json with `cellgraph train`");
}

ArchState prepared_arch_state(const Algorithm& algorithm, const ir::Graph& graph,
                              const spec::Space& space, uint64_t seed) {
  return algorithm.initial_state(graph, space, algorithm.default_hyperparameters(), seed);
}

void run_step(const Algorithm& algorithm, StepContext& ctx) {
  for (const NamedPass& pass : algorithm.passes()) pass.run(ctx);
}

}  // namespace cellgraph::algorithms
