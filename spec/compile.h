// spec::Space -> ir::Graph: builds the network the spec describes with one batch-1 shape
// per value, creates its parameters and its architecture-parameter groups. Errors
// (shapes that do not fit, ops that cannot take a stride) read like the validator's,
// "FILE:POINTER: what", POINTER naming the spec's layer, stage, or the cell's edge or node
// being built; inside a cell they end with the instance, "(in cells.3, repeat 2 of 4 at
// /network/body/0)", since one cell definition serves every instance.
#pragma once

#include <optional>
#include <string>

#include "engine/ir/graph.h"
#include "spec/space.h"

namespace cellgraph::spec {

// Training-only additions (DARTS evaluation); the defaults build the plain network that
// eval, export and infer use. Neither changes the network's parameters: drop_path nodes
// have none, and the auxiliary head's come after all others (so seeded initial weights of
// the rest are the same with or without it).
struct CompileOptions {
  // A drop_path node after every op of a fixed cell's edge that is not the identity
  // (skip_connect at stride 1); its probability is set at run time (sched::RunOptions).
  bool drop_path = false;
  // DARTS' AuxiliaryHeadCIFAR on the output of the second reduction cell: ReLU, 2x2 average
  // pool (see aux_pool_attrs), conv1x1 128-BN-ReLU, conv2x2 768-BN-ReLU, linear. Throws
  // Error when the network has fewer than two reduction cells or a map too small to pool.
  bool auxiliary_head = false;
  // In a search network, a cell output's preprocessing ReLU folded into the cell's concat
  // (spec/fold_concat_relu.h). Changes no value; off only to test that.
  bool fold_relus = true;
  // In a search network, the ReLUs before depthwise convs folded into those convs
  // (spec/fold_conv_relu.h). Off to test it against the unfolded graph, and where a test
  // is about ReLU nodes themselves (a shared ReLU's scheduling).
  bool fold_conv_relus = true;
};

ir::Graph compile(const Space& space, const CompileOptions& options = {});

// Something a valid spec may say that compile cannot build yet. Nothing at present (recurrent
// cells compile since the language-model form); kept so that `cellgraph validate` and the
// tests can tell such a spec from a broken one when a later format adds one.
struct Unsupported {
  std::string pointer;  // JSON pointer of the spec element
  std::string what;
};
// What compile would refuse as not supported yet (it throws "FILE:POINTER: what"), or
// nullopt (always, at present).
std::optional<Unsupported> unsupported_by_compile(const Space& space);

// The auxiliary head's pool for an H x W map: DARTS' 5x5 window at stride 3 when it gives
// 2x2 (maps of 8 to 10 pixels: CIFAR's 8x8), otherwise the square window and stride that
// split the map into 2x2 windows covering it (kernel ceil(H/2), stride floor(H/2), as
// PyTorch's AdaptiveAvgPool2d(2) on a square map: Fashion-MNIST's 7x7 gives kernel 4,
// stride 3). Throws Error for a map under 2x2, or a non-square one DARTS' pool does not fit.
PoolAttrs aux_pool_attrs(int64_t height, int64_t width);

}  // namespace cellgraph::spec
