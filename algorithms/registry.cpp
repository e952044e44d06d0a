// The registry: every search algorithm, one line each, in the order help texts list them.
// Each algorithm's file defines its accessor.
#include "algorithms/algorithm.h"
#include "engine/error.h"

namespace cellgraph::algorithms {

const Algorithm& darts_algorithm();          // darts.cpp
const Algorithm& darts2_algorithm();         // darts.cpp
const Algorithm& milenas_algorithm();        // milenas.cpp
const Algorithm& nasp_algorithm();           // nasp.cpp
const Algorithm& ista_algorithm();           // ista.cpp
const Algorithm& ista_onestage_algorithm();  // ista_onestage.cpp
const Algorithm& rarts_algorithm();          // rarts.cpp
const Algorithm& sparsenas_algorithm();      // sparsenas.cpp

const std::vector<const Algorithm*>& algorithms() {
  static const std::vector<const Algorithm*> kList = {
      &darts_algorithm(), &darts2_algorithm(),        &milenas_algorithm(), &nasp_algorithm(),
      &ista_algorithm(),  &ista_onestage_algorithm(), &rarts_algorithm(),   &sparsenas_algorithm(),
  };
  return kList;
}

const Algorithm& find_algorithm(const std::string& name) {
  for (const Algorithm* a : algorithms())
    if (a->name() == name) return *a;
  throw error("unknown algorithm '", name, "'; expected one of: ", algorithm_names());
}

std::string algorithm_names() {
  std::string out;
  const std::vector<const Algorithm*>& all = algorithms();
  for (size_t i = 0; i < all.size(); ++i)
    out += (i == 0 ? "" : i + 1 == all.size() ? " or " : ", ") + all[i]->name();
  return out;
}

}  // namespace cellgraph::algorithms
