// The multiply-accumulates `cellgraph info` counts (ir::Graph::macs(): one forward pass of
// one sample, every candidate active, convolutions and linear layers only), split by the
// kind of product, for bench/run_gflops: dense convolutions (an im2col GEMM, what oneDNN
// runs near its matrix-product peak), depthwise and other grouped ones (k*k MACs per
// output element: bound by memory traffic, far below that peak however well written), linear
// layers, and the MACs of ops reading the network input, whose data gradient no step forms.
// It also splits them by owner (issue 17, item 3): the MACs of candidate ops (nodes with
// ir::Node::candidate) and of the rest of the network (stem, the cells' preprocessing and
// factorized reductions, head), and, for a sparse step that runs K candidate ops per cell
// node (ISTA-NAS runs 2), the expected split when those K are drawn uniformly among the
// node's candidates other than `none` (`per_node_K`): the share of the MACs outside
// candidate ops that such a step cannot avoid, whatever it selects.
//   macs_split SPEC [K]    (K default 2)
// Prints one JSON line; the kind parts add up to macs_per_sample, and so do the owner parts.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "engine/error.h"
#include "ops/candidates.h"
#include "spec/compile.h"
#include "spec/json_value.h"
#include "spec/parse.h"

using namespace cellgraph;

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: macs_split SPEC [K]\n");
    return 2;
  }
  const int per_node = argc == 3 ? std::atoi(argv[2]) : 2;
  if (per_node < 1) {
    std::fprintf(stderr, "macs_split: K must be a positive count of ops per node, got %s\n",
                 argv[2]);
    return 2;
  }
  try {
    const ir::Graph graph = spec::compile(spec::parse_file(argv[1]));
    int64_t dense = 0, grouped = 0, linear = 0, on_input = 0;
    std::vector<int64_t> candidate_macs(graph.candidates.size(), 0);
    int64_t network = 0;
    for (const ir::Node& n : graph.nodes) {
      if (n.auxiliary || (n.op != OpKind::conv2d && n.op != OpKind::linear)) continue;
      const Shape& w = graph.value(n.inputs[1]).shape;
      const int64_t out = graph.value(n.outputs[0]).shape.numel();
      int64_t macs = 0;
      if (n.op == OpKind::linear) {
        macs = out * w[1];
        linear += macs;
      } else {
        macs = out * w[1] * w[2] * w[3];
        const ConvAttrs* attrs = std::get_if<ConvAttrs>(&n.attrs);
        (attrs != nullptr && attrs->groups > 1 ? grouped : dense) += macs;
      }
      if (n.inputs[0] == graph.input) on_input += macs;
      if (n.candidate.valid()) {
        candidate_macs[n.candidate.index()] += macs;
      } else {
        network += macs;
      }
    }
    // Per cell node (cell instance, arch group, the row label's node name): the mean MACs of
    // its candidates other than `none`; a K-per-node step runs K of them.
    std::map<std::tuple<int32_t, int32_t, std::string>, std::pair<int64_t, int64_t>> nodes;
    int64_t all_candidates = 0;
    for (size_t i = 0; i < graph.candidates.size(); ++i) {
      const ir::Candidate& c = graph.candidates[i];
      all_candidates += candidate_macs[i];
      if (c.op == Candidate::none) continue;
      const std::string& label = graph.arch_groups[c.arch.index()].row_labels[size_t(c.row)];
      auto& [sum, count] = nodes[{c.cell, c.arch.value, label.substr(0, label.find('/'))}];
      sum += candidate_macs[i];
      ++count;
    }
    double selected = 0;
    for (const auto& [key, node] : nodes)
      selected += double(std::min<int64_t>(per_node, node.second)) * double(node.first) /
                  double(node.second);
    CG_ASSERT(dense + grouped + linear == graph.macs(), "macs_split disagrees with macs()");
    CG_ASSERT(all_candidates + network == graph.macs(), "macs_split's owners disagree");
    spec::JsonValue j = spec::JsonValue::object();
    j.set("spec", std::string(argv[1]));
    j.set("macs_per_sample", graph.macs());
    j.set("dense_conv", dense);
    j.set("grouped_conv", grouped);
    j.set("linear", linear);
    j.set("reading_input", on_input);
    j.set("candidate_ops", all_candidates);
    j.set("network", network);
    spec::JsonValue k = spec::JsonValue::object();
    k.set("ops_per_node", int64_t(per_node));
    k.set("cell_nodes", int64_t(nodes.size()));
    k.set("candidate_ops_expected", selected);
    k.set("network", network);
    k.set("network_share", double(network) / (double(network) + selected));
    j.set("per_node_K", k);
    std::printf("%s\n", spec::dump(j).c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
