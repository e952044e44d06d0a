#include "spec/candidate_build.h"

#include "engine/error.h"

namespace cellgraph {

namespace {
using ir::Builder;
using ir::ValueId;

// The BN an op ends with. In a search cell it has no affine parameters (DARTS); with
// network.edge_bn (ISTA-NAS one-stage, as its paper builds it) it is the op's closing BN,
// affine and named "<op>.out_bn", the one the op's coefficient is absorbed into. Ops that
// end without a BN (identity, pooling, negation) get one there, so every op has one.
struct ClosingBn {
  bool affine = false;
  std::string name;  // "" : the op's own name for it ("<op>.bn")
};

ClosingBn closing_bn(const CandidateSite& site) {
  if (site.edge_bn) return {true, site.name + ".out_bn"};
  return {!site.search, ""};
}

// ReLU -> depthwise kxk (stride, dilation) -> pointwise 1x1 -> BN.
ValueId relu_dw_pw_bn(Builder& b, ValueId x, int64_t c, int kernel, int stride, int dilation,
                      bool affine, const std::string& name, const std::string& bn_name = "") {
  const ValueId r = b.op1(OpKind::relu, NoAttrs{}, {x}, name + ".relu");
  const int padding = dilation * (kernel - 1) / 2;
  const ValueId dw = ir::conv(
      b, r, c, kernel,
      ConvAttrs{.stride = stride, .padding = padding, .dilation = dilation, .groups = int(c)},
      name + ".dw");
  const ValueId pw = ir::conv(b, dw, c, 1, ConvAttrs{}, name + ".pw");
  return ir::batch_norm(b, pw, bn_name.empty() ? name + ".bn" : bn_name, {affine});
}

ValueId pool(Builder& b, OpKind kind, ValueId x, const CandidateSite& site) {
  const ValueId p = b.op1(kind, PoolAttrs{.kernel = 3, .stride = site.stride, .padding = 1}, {x},
                          site.name + ".pool");
  if (site.edge_bn) return ir::batch_norm(b, p, site.name + ".out_bn", {true});
  return site.search ? ir::batch_norm(b, p, site.name + ".bn", {false}) : p;
}

// An op that ends without a BN gets the closing BN under edge_bn.
ValueId closed(Builder& b, ValueId x, const CandidateSite& site) {
  return site.edge_bn ? ir::batch_norm(b, x, site.name + ".out_bn", {true}) : x;
}

// "FILE:POINTER: " while the spec compiler builds (it sets the builder's context).
std::string context_of(const Builder& b) { return b.context().empty() ? "" : b.context() + ": "; }

void require_stride(const Builder& b, const CandidateSite& site, int stride, const char* op) {
  if (site.stride == stride) return;
  throw error(context_of(b), site.name, ": op '", op, "' cannot be used with stride ", site.stride,
              stride == 1 ? "; expected it only on stride-1 edges (the edges leaving a reduction "
                            "cell's inputs have stride 2)"
                          : "; expected it only on the edges leaving a reduction cell's inputs "
                            "(stride 2)");
}
}  // namespace

void require_even_map(const Builder& b, ValueId x, const std::string& name,
                      const std::string& what) {
  const Shape& s = b.shape(x);
  const int64_t h = s[2], w = s[3];
  if (h % 2 == 0 && w % 2 == 0) return;
  throw error(context_of(b), name, ": ", what, " cannot halve a ", h, "x", w,
              " map: its even and its odd pixels give ", (h + 1) / 2, "x", (w + 1) / 2, " and ",
              h / 2, "x", w / 2,
              " halves; expected even sides here (change network.input or the stride-2 steps "
              "before this cell)");
}

ValueId build_candidate(Builder& b, Candidate op, ValueId x, const CandidateSite& site) {
  const bool affine = !site.search;  // the BNs before the closing one
  const ClosingBn last = closing_bn(site);
  const int64_t c = site.channels;
  const std::string& n = site.name;
  switch (op) {
    case Candidate::none:
      return b.op1(OpKind::zero, ZeroAttrs{site.stride}, {x}, n);
    case Candidate::skip_connect:
      if (site.stride == 1) return closed(b, x, site);
      require_even_map(b, x, n, "skip_connect at stride 2 (a factorized reduce)");
      return ir::factorized_reduce(b, x, c, last.affine, n, last.name);
    case Candidate::max_pool_3x3:
      return pool(b, OpKind::max_pool, x, site);
    case Candidate::avg_pool_3x3:
      return pool(b, OpKind::avg_pool, x, site);
    case Candidate::sep_conv_3x3:
    case Candidate::sep_conv_5x5: {
      const int k = op == Candidate::sep_conv_3x3 ? 3 : 5;
      const ValueId h = relu_dw_pw_bn(b, x, c, k, site.stride, 1, affine, n + ".0");
      return relu_dw_pw_bn(b, h, c, k, 1, 1, last.affine, n + ".1", last.name);
    }
    case Candidate::dil_conv_3x3:
    case Candidate::dil_conv_5x5:
      return relu_dw_pw_bn(b, x, c, op == Candidate::dil_conv_3x3 ? 3 : 5, site.stride, 2,
                           last.affine, n, last.name);
    case Candidate::conv_1x1:
    case Candidate::nor_conv_1x1:
      return ir::relu_conv_bn(b, x, c, 1, site.stride, 0, last.affine, n, last.name);
    case Candidate::conv_3x3:
    case Candidate::nor_conv_3x3:
      return ir::relu_conv_bn(b, x, c, 3, site.stride, 1, last.affine, n, last.name);
    case Candidate::neg_identity: {
      // -1 x identity; at stride 2, -1 x identity's stride-2 form (the factorized reduce),
      // so that the HB cell's x_t - x_{t-1} also spans a reduction cell's inputs. Under
      // edge_bn the reduce's own BN is the closing one (negation after it stays linear, so
      // absorbing a coefficient into that BN is still exact).
      if (site.stride == 1) return closed(b, b.op1(OpKind::negate, NoAttrs{}, {x}, n), site);
      require_even_map(b, x, n, "neg_identity at stride 2 (a negated factorized reduce)");
      const ValueId reduced = ir::factorized_reduce(b, x, c, last.affine, n, last.name);
      return b.op1(OpKind::negate, NoAttrs{}, {reduced}, n + ".negate");
    }
    case Candidate::conv_bn_relu_3x3: {  // post-activation, Phi(W x) of HBNet and AGDNet
      const ValueId y =
          ir::conv(b, x, c, 3, ConvAttrs{.stride = site.stride, .padding = 1}, n + ".conv");
      return b.op1(OpKind::relu, NoAttrs{}, {ir::batch_norm(b, y, n + ".bn", {affine})},
                   n + ".relu");
    }
    case Candidate::factorized_reduce:
      require_stride(b, site, 2, "factorized_reduce");
      require_even_map(b, x, n, "factorized_reduce");
      return ir::factorized_reduce(b, x, c, last.affine, n, last.name);
    case Candidate::rnn_none:
    case Candidate::rnn_tanh:
    case Candidate::rnn_relu:
    case Candidate::rnn_sigmoid:
    case Candidate::rnn_identity:
      break;
  }
  throw error(context_of(b), n, ": recurrent op '", candidate_ops()[size_t(op)].name,
              "' in a convolutional cell; expected a convolutional op");
}

}  // namespace cellgraph
