// Every search algorithm as a readable pipeline of named passes, run once per step.
#include "algorithms/ista.h"
#include "algorithms/nasp.h"
#include "algorithms/search_step.h"
#include "engine/error.h"

namespace cellgraph::algorithms {

const std::vector<Algorithm>& algorithms() {
  static const std::vector<Algorithm> kList = {
      {"darts",
       "DARTS, first order: alpha by Adam on dL_val/dalpha with w held fixed",
       {{"update_architecture_first_order", update_architecture_first_order},
        {"update_weights", update_weights}}},
      {"darts2",
       "DARTS, second order: alpha by Adam on the gradient through one unrolled SGD step",
       {{"update_architecture_second_order", update_architecture_second_order},
        {"update_weights", update_weights}}},
      {"milenas",
       "MiLeNAS, mixed level: alpha by Adam on dL_val/dalpha + lambda * dL_train/dalpha",
       {{"update_architecture_mixed_level", update_architecture_mixed_level},
        {"update_weights", update_weights}}},
      {"nasp",
       "NASP: A in [0,1] by a proximal gradient step at its one-hot projection; weights train "
       "only the selected op of each edge",
       {{"update_architecture_proximal", update_architecture_proximal},
        {"update_weights", update_weights}},
       Relaxation::box},
      {"ista",
       "ISTA-NAS, two-stage: per node z = LASSO(A, b) picks the top-s support; weights on the "
       "supported ops (train), b by Adam (val)",
       {{"recover_sparse_codes", recover_sparse_codes},
        {"update_weights", update_weights},
        {"update_codes", update_codes}},
       Relaxation::sparse_code},
      {"ista-onestage",
       "ISTA-NAS, one-stage: the evaluation network searched and trained at once; weights and b "
       "share L_train until the codes converge, then b freezes and the edge BNs train",
       {{"recover_sparse_codes_until_converged", recover_sparse_codes_until_converged},
        {"update_weights_and_codes", update_weights_and_codes}},
       Relaxation::sparse_code,
       true},
  };
  return kList;
}

std::string algorithm_names() {
  std::string out;
  const std::vector<Algorithm>& all = algorithms();
  for (size_t i = 0; i < all.size(); ++i)
    out += (i == 0 ? "" : i + 1 == all.size() ? " or " : ", ") + all[i].name;
  return out;
}

const Algorithm& find_algorithm(const std::string& name) {
  std::string known;
  for (const Algorithm& a : algorithms()) {
    if (a.name == name) return a;
    known += (known.empty() ? "" : ", ") + a.name;
  }
  throw error("unknown algorithm '", name, "'; expected one of: ", known);
}

ArchState prepared_arch_state(const Algorithm& algorithm, const ir::Graph& graph,
                              const spec::Space& space, const AlgorithmOptions& options,
                              uint64_t seed) {
  ArchState state = initial_arch_state(graph, space.arch.init_std, seed);
  state.relaxation = algorithm.relaxation;
  if (algorithm.relaxation == Relaxation::box) project_box(state.logits);
  if (algorithm.one_stage && !space.network.edge_bn)
    throw error(space.file, ":", space.network.pointer, ": ", algorithm.name,
                " searches the evaluation network with a BN closing every edge op; set "
                "\"edge_bn\": true in the network");
  if (algorithm.relaxation == Relaxation::sparse_code)
    init_sparse_codes(state, graph, space, options.sparse, space.arch.init_std, seed + 1);
  return state;
}

void run_step(const Algorithm& algorithm, StepContext& ctx) {
  for (const NamedPass& pass : algorithm.step) pass.run(ctx);
}

}  // namespace cellgraph::algorithms
