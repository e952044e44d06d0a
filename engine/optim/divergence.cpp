#include "engine/optim/divergence.h"

#include <cmath>

#include "engine/backends/vector_ops.h"
#include "engine/error.h"

namespace cellgraph {

bool all_finite(const Tensor& t) { return vec::all_finite(t); }

void require_finite(int64_t step, const std::string& quantity, double value,
                    const std::string& hint) {
  if (std::isfinite(value)) return;
  throw error("step ", step, ": the ", quantity, " is ",
              std::isnan(value) ? "NaN" : (value > 0 ? "inf" : "-inf"), ": the run diverged; ",
              hint);
}

void require_finite(int64_t step, const std::string& quantity, const std::vector<Var>& vars,
                    const std::string& hint) {
  for (const Var& v : vars)
    if (v.defined() && !all_finite(v.value()))
      throw error("step ", step, ": the ", quantity, " '", v.name(),
                  "' holds inf or NaN: the run diverged; ", hint);
}

}  // namespace cellgraph
