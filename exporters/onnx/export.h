// ONNX export of fixed networks (docs/architecture.md: the only place protobuf / ONNX headers
// are included; this header has none, so callers need neither).
//
// A fixed network (every edge one op: no candidates, no architecture groups) is written
// with its weights in inference form: BN in eval mode with its running statistics (or
// folded into the preceding conv), dropout as identity. The model has one input "images"
// [N, C, H, W] and one output "logits" [N, classes], N a dynamic axis; ONNX nodes and tensors
// are named after IR labels and parameter names. The model passes onnx::checker and ONNX's
// strict shape inference before the file is written (atomically). A recurrent language
// model has other inputs and outputs and a time loop (export_language_model_onnx below).
//
// Errors (cellgraph::Error): a search-space graph ("... is a mixed edge ..."), a node the
// exporter cannot express ("node 'LABEL' (op OP): ..."), an opset outside 13..max, a file
// that cannot be written. A model that would compute something else is never written.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "spec/space.h"

namespace cellgraph::onnx_export {

struct ExportOptions {
  // Fold each BN that directly follows a conv (whose output nothing else reads) into that
  // conv: w' = w·γ/√(var+ε), b' = β + (b − mean)·γ/√(var+ε).
  bool fold_batch_norm = false;
  int opset = 13;  // 13 up to the newest opset of the linked ONNX library
  std::string graph_name = "cellgraph";
  // Written as the model's metadata_props (e.g. "genotype", "spec").
  std::map<std::string, std::string> metadata;
};

void export_onnx(const ir::Graph& graph, const ir::ParameterStore& params, const std::string& path,
                 const ExportOptions& options);

// One cell instance as its own ONNX graph: the nodes labelled "cells.<k>." (spec/compile.cpp),
// inputs "c_km2" and "c_km1" (a one-input cell: "c_km1"), output "cell_output", each with the
// dynamic batch axis N. When both inputs of the cell are the same tensor (the first cell
// after the stem) they still appear as two inputs, c_km2 feeding the first preprocessing.
struct CellInput {
  std::string name;   // "c_km2", "c_km1"
  ir::ValueId value;  // the IR value it stands for (outside the cell)
};
struct CellBoundary {
  int instance = 0;        // k in "cells.<k>."
  std::string prefix;      // "cells.<k>."
  bool reduction = false;  // the output is spatially smaller than c_{k-1}
  std::vector<CellInput> inputs;
  ir::ValueId output;
};

// The boundary of cell instance `instance`; Error when there is no such cell (a residual
// block, or past the last stage).
CellBoundary cell_boundary(const ir::Graph& graph, int instance);

// The first instance of a cell type, told apart from the graph alone: "normal" is the first
// cell that keeps the spatial size, "reduce" / "reduction" the first that reduces it. Other
// names need the spec (below); Error naming the known choices otherwise.
int find_cell_instance(const ir::Graph& graph, const std::string& cell_type);
// Exact: the first body stage that stacks `cell_type` in `space` (instances count every
// repeat of every stage, fixed blocks included, as spec/compile.cpp numbers them).
int find_cell_instance(const spec::Space& space, const std::string& cell_type);

void export_cell_onnx(const ir::Graph& graph, const ir::ParameterStore& params, int instance,
                      const std::string& path, const ExportOptions& options);
// `cell_type` as in find_cell_instance(graph, cell_type).
void export_cell_onnx(const ir::Graph& graph, const ir::ParameterStore& params,
                      const std::string& cell_type, const std::string& path,
                      const ExportOptions& options);

// A recurrent language model (graph.state_in valid; export_onnx and export_cell_onnx take
// this path for one). The model: inputs "tokens" [N, T] int64 (ids in [0, V)) and "h0"
// [N, H] float, outputs "logits" [N, T, V] and "h_final" [N, H]; N and T are dynamic, the
// time loop one ONNX Scan over the cell's time step (export_recurrent.cpp says why).
void export_language_model_onnx(const ir::Graph& graph, const ir::ParameterStore& params,
                                const std::string& path, const ExportOptions& options);
// The recurrent cell as one time step: inputs "x_t" [N, H] (the embedded token, after the
// embedding lookup) and "h_prev" [N, H], output "h_t" [N, H].
void export_recurrent_cell_onnx(const ir::Graph& graph, const ir::ParameterStore& params,
                                const std::string& path, const ExportOptions& options);

}  // namespace cellgraph::onnx_export
