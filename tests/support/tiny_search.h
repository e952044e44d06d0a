// One search step's worth of state on the tiny space (tests/support/tiny_space.h) for an
// algorithm's unit tests: the compiled graph, seeded weights, the algorithm's prepared
// architecture state, both optimizers and a train and a val batch of four 1x8x8 images.
// Another spec text (e.g. tiny_space_without_none()) replaces the tiny space.
#pragma once

#include <functional>
#include <string>

#include "algorithms/algorithm.h"
#include "engine/optim/adam.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/random_batch.h"
#include "tests/support/tiny_space.h"

namespace cellgraph::testing {

struct TinySearch {
  // `configure` may change the algorithm's hyperparameters before its state is built.
  explicit TinySearch(const std::string& algorithm,
                      const std::function<void(algorithms::HyperValues&)>& configure = {},
                      const std::string& spec_text = kTinySpace)
      : space(spec::parse_string(spec_text, "tiny.json")),
        hyper(configured(algorithm, configure)),
        arch(algorithms::find_algorithm(algorithm).initial_state(graph, space, hyper, 1)) {}

  spec::Space space;
  ir::Graph graph = spec::compile(space);
  ir::ParameterStore params{graph, 3};
  algorithms::HyperValues hyper;  // the algorithm's defaults; tests may change them
  algorithms::ArchState arch;
  Sgd sgd{params.weights(), SgdOptions{.lr = 0.1f}};
  Adam adam{algorithms::arch_variables(arch), AdamOptions{.lr = 0.01f}};
  TinySearch(const std::string& algorithm, const std::string& spec_text)
      : TinySearch(algorithm, {}, spec_text) {}

  Batch train = random_batch(4, 1, 8, 3, 1), val = random_batch(4, 1, 8, 3, 2);

  static algorithms::HyperValues configured(
      const std::string& algorithm,
      const std::function<void(algorithms::HyperValues&)>& configure) {
    algorithms::HyperValues h = algorithms::find_algorithm(algorithm).default_hyperparameters();
    if (configure) configure(h);
    return h;
  }

  algorithms::StepContext context() {
    return algorithms::StepContext(graph, params, arch, sgd, adam, train, val, hyper);
  }
};

}  // namespace cellgraph::testing
