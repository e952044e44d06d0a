// The multiply-accumulates `cellgraph info` counts (ir::Graph::macs(): one forward pass of
// one sample, every candidate active, convolutions and linear layers only), split by the
// kind of product, for bench/run_gflops: dense convolutions (an im2col GEMM, what oneDNN
// runs near its matrix-product peak), depthwise and other grouped ones (k*k MACs per
// output element: bound by memory traffic, far below that peak however well written), linear
// layers, and the MACs of ops reading the network input, whose data gradient no step forms.
//   macs_split SPEC
// Prints one JSON line; the parts add up to macs_per_sample.
#include <cstdio>
#include <variant>

#include "engine/error.h"
#include "spec/compile.h"
#include "spec/json_value.h"
#include "spec/parse.h"

using namespace cellgraph;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: macs_split SPEC\n");
    return 2;
  }
  try {
    const ir::Graph graph = spec::compile(spec::parse_file(argv[1]));
    int64_t dense = 0, grouped = 0, linear = 0, on_input = 0;
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
    }
    CG_ASSERT(dense + grouped + linear == graph.macs(), "macs_split disagrees with macs()");
    spec::JsonValue j = spec::JsonValue::object();
    j.set("spec", std::string(argv[1]));
    j.set("macs_per_sample", graph.macs());
    j.set("dense_conv", dense);
    j.set("grouped_conv", grouped);
    j.set("linear", linear);
    j.set("reading_input", on_input);
    std::printf("%s\n", spec::dump(j).c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
