// Internal to exporters/onnx: translates a run of IR nodes into ONNX nodes, initializers and
// value infos of one GraphProto. The op mapping lives in emitter.cpp, BN folding in fold.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <onnx/onnx_pb.h>

#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "exporters/onnx/export.h"

namespace cellgraph::onnx_export::detail {

// What to translate: nodes in execution order, the IR values that enter as graph inputs and
// those that leave as graph outputs.
struct Region {
  struct Input {
    std::string name;
    ir::ValueId value;
    // When set, only nodes whose label starts with it read this input; the input with an
    // empty prefix serves every other reader of the value.
    std::string reader_prefix;
    // An int64 tensor (token ids, as ONNX Gather takes them) rather than float.
    bool int64 = false;
  };
  std::vector<ir::NodeId> nodes;
  std::vector<Input> inputs;
  std::vector<std::pair<std::string, ir::ValueId>> outputs;
};

class Emitter {
 public:
  Emitter(const ir::Graph& graph, const ir::ParameterStore& params, bool fold_batch_norm,
          onnx::GraphProto& out);

  // Adds the region's inputs, nodes, outputs and the value infos of its activations.
  // Throws Error "node 'LABEL' (op OP): ..." for a node it cannot express.
  void emit(const Region& region);

  // emit() in three steps, for a caller that adds nodes of its own between the region's
  // (a recurrent network's Scan): begin adds the inputs, emit_nodes the region's nodes in
  // the order given (any subset of region.nodes, each once), finish the outputs and
  // value infos.
  void begin(const Region& region);
  void emit_nodes(const std::vector<ir::NodeId>& nodes);
  void finish();

  using Names = std::vector<std::string>;
  onnx::NodeProto& node(const std::string& op_type, const Names& inputs, const Names& outputs);
  std::string unique(const std::string& base);
  // The initializer of a parameter or buffer value (added on first use).
  std::string param_tensor(ir::ValueId v);
  // `v` is available under `name` (made by a node the caller added, or another tensor that
  // holds its inference-mode value); readers of v read `name`.
  void bind(ir::ValueId v, const std::string& name);
  // The name of a value already emitted or bound.
  std::string value_name(ir::ValueId v) const;
  // The value's axis 1 is the sequence (T), a dynamic axis "T" in the declared shapes.
  void mark_sequence(ir::ValueId v) { sequence_values_.insert(v.value); }

 private:
  [[noreturn]] void unsupported(const ir::Node& n, const std::string& why) const;
  std::string input_name(const ir::Node& n, size_t slot);
  std::string output_name(ir::ValueId v);
  std::string float_initializer(const std::string& base, const std::vector<int64_t>& dims,
                                const std::vector<float>& data);
  std::string int_initializer(const std::string& base, const std::vector<int64_t>& data);
  void add_value_info(onnx::ValueInfoProto& info, const std::string& name, ir::ValueId v,
                      bool int64 = false);

  void plan_folding(const Region& region);
  void emit_node(const ir::Node& n);
  void conv_node(const ir::Node& conv, Names inputs, const std::string& output);
  void emit_conv(const ir::Node& n);
  void emit_batch_norm(const ir::Node& n);
  void emit_folded(const ir::Node& conv, const ir::Node& bn);
  void emit_pool(const ir::Node& n);
  void emit_slice(const ir::Node& n);
  void emit_zero(const ir::Node& n);
  void emit_linear(const ir::Node& n);

  const ir::Graph& graph_;
  const ir::ParameterStore& params_;
  bool fold_batch_norm_;
  onnx::GraphProto& out_;
  const Region* region_ = nullptr;
  std::map<int32_t, std::string> value_names_;  // by ValueId
  std::set<std::string> used_names_;
  std::map<int32_t, int32_t> folded_into_;  // conv NodeId -> the BN NodeId that absorbs it
  std::set<int32_t> in_region_;             // NodeIds
  std::map<int32_t, std::string> bound_;    // by ValueId: names given by bind()
  std::set<int32_t> sequence_values_;       // ValueIds whose axis 1 is T
};

// Builds the model around the graph that `build` fills, checks it (onnx::checker, then
// strict shape inference) and writes it atomically; every Error names `path`.
void write_model(const ir::Graph& graph, const ir::ParameterStore& params,
                 const std::function<void(onnx::GraphProto&)>& build, const std::string& path,
                 const ExportOptions& options,
                 const std::map<std::string, std::string>& extra_metadata);

// A search space cannot be exported: Error naming the first place that still chooses.
void require_fixed(const ir::Graph& graph);

// Rewrites a label or parameter name into a readable ONNX name: letters, digits and
// "_.-/:" are kept, anything else becomes '_'.
std::string sanitize(const std::string& name);

}  // namespace cellgraph::onnx_export::detail
