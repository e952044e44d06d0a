// Every search algorithm as a readable pipeline of named passes, run once per step.
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
  };
  return kList;
}

const Algorithm& find_algorithm(const std::string& name) {
  std::string known;
  for (const Algorithm& a : algorithms()) {
    if (a.name == name) return a;
    known += (known.empty() ? "" : ", ") + a.name;
  }
  throw error("unknown algorithm '", name, "'; expected one of: ", known);
}

void run_step(const Algorithm& algorithm, StepContext& ctx) {
  for (const NamedPass& pass : algorithm.step) pass.run(ctx);
}

}  // namespace cellgraph::algorithms
