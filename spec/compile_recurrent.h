// The compiler of recurrent language models (spec "input": [T]): the one recurrent cell
// unrolled over T time steps (compile_recurrent.cpp). compile() calls it; it serves only
// compilation.
#pragma once

#include "engine/ir/graph.h"
#include "spec/compile.h"
#include "spec/space.h"

namespace cellgraph::spec {

// The graph of a validated language-model space: input token ids [1, T], graph.state_in and
// graph.state_out [1, H], logits [1, T, V].
ir::Graph compile_language_model(const Space& space, const CompileOptions& options);

}  // namespace cellgraph::spec
