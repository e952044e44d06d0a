// ISTA-NAS against its equations: the identity behind the method (with b = A z for a z
// supported on S, the node computes sum_{i in S} z_i o_i), the gradient reaching b through
// A_S, the sparse execution (s ops per node), support recovery, and derivation.
#include <algorithm>
#include <cmath>

#include <doctest/doctest.h>

#include "algorithms/algorithm.h"
#include "algorithms/derive.h"
#include "algorithms/ista.h"
#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/optim/adam.h"
#include "engine/sched/executor.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/tiny_search.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {
using testing::kTinySpace;

struct Setup : testing::TinySearch {
  Setup() : TinySearch("ista") {}
};

// Puts a chosen sparse code z (given per dictionary index) on every node, b_j = A_j z.
void set_code(ArchState& arch, const std::vector<std::vector<std::pair<int32_t, double>>>& z) {
  for (size_t j = 0; j < sparse_codes(arch).nodes.size(); ++j) {
    SparseNode& n = sparse_codes(arch).nodes[j];
    n.z.assign(size_t(n.n()), 0.0);
    n.support.clear();
    for (const auto& [i, v] : z[j]) {
      n.z[size_t(i)] = v;
      n.support.push_back(i);
    }
    std::sort(n.support.begin(), n.support.end());
    float* b = sparse_codes(arch).codes[size_t(n.group)].value().data() + n.offset;
    for (int64_t t = 0; t < n.m; ++t) {
      double sum = 0;
      for (int64_t i = 0; i < n.n(); ++i) sum += n.a[size_t(t * n.n() + i)] * n.z[size_t(i)];
      b[t] = float(sum);
    }
  }
}

// The group's [rows, cols] matrix holding z at the dictionary entries.
Tensor code_matrix(const ArchState& arch, int64_t rows, int64_t cols) {
  std::vector<float> m(size_t(rows * cols), 0.0f);
  for (const SparseNode& n : sparse_codes(arch).nodes) {
    const size_t k = n.columns.size();
    for (int32_t i : n.support)
      m[size_t(n.rows[size_t(i) / k] * cols + n.columns[size_t(i) % k])] = float(n.z[size_t(i)]);
  }
  return Tensor::from_vector({rows, cols}, m);
}
}  // namespace

TEST_CASE("ista: nodes, dictionaries and the first support are built from the spec") {
  Setup s;
  REQUIRE(sparse_codes(s.arch).nodes.size() == 2);
  const SparseNode& a = sparse_codes(s.arch).nodes[0];
  const SparseNode& b = sparse_codes(s.arch).nodes[1];
  CHECK(a.label == "normal/a");
  CHECK(b.label == "normal/b");
  CHECK(a.columns == std::vector<int32_t>{1, 2, 3});  // none is not in the dictionary
  CHECK(a.n() == 2 * 3);
  CHECK(b.n() == 3 * 3);
  CHECK(a.m == 7);
  CHECK(b.offset == 7);
  CHECK(sparse_codes(s.arch).codes[0].shape() == Shape{14, 1});
  for (double v : a.a) CHECK((v >= 0 && v < 1));  // uniform [0, 1), as the authors sample
  CHECK(a.support.size() == 2);
  CHECK(b.support.size() == 2);
  int64_t active = 0;
  for (uint8_t f : s.arch.active) active += f == sched::kActive;
  CHECK(active == 4);  // s = 2 ops per node, two nodes, one cell instance

  // Spaces ISTA-NAS cannot code are named errors.
  std::string no_keep = kTinySpace;
  no_keep.replace(no_keep.find(", \"keep\": 2"), 11, "");
  const spec::Space bad = spec::parse_string(no_keep, "nokeep.json");
  const ir::Graph g = spec::compile(bad);
  CHECK_THROWS_WITH_AS(prepared_arch_state(find_algorithm("ista"), g, bad, 1),
                       doctest::Contains("nokeep.json:/cells/0/nodes/0: ISTA-NAS needs"), Error);
}

TEST_CASE("ista: with b = A z for z on S, each node computes sum_S z_i o_i, db = A_S dL/dc_S") {
  Setup s;
  // Node a: edge 0 skip_connect (i = 0) and edge 1 sep_conv_3x3 (i = 4);
  // node b: two ops on edge 2 ('a'): sep_conv_3x3 and max_pool_3x3 (i = 7, 8).
  set_code(s.arch, {{{0, 0.7}, {4, -1.3}}, {{7, 0.4}, {8, 2.1}}});
  s.arch.active = support_active_set(s.graph, s.arch);
  const int64_t rows = s.arch.logits[0].shape()[0], cols = s.arch.logits[0].shape()[1];

  // c = A_S^T b - E_SS z_S equals z on the support, 0 elsewhere.
  const std::vector<Var> c = sparse_code_coefficients(s.arch);
  const std::vector<float> expect = code_matrix(s.arch, rows, cols).to_vector();
  const std::vector<float> got = c[0].value().to_vector();
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(expect[i]).epsilon(1e-5));

  // The network on the sparse coefficients equals the dense network weighted by z.
  StepContext ctx = s.context();
  const Var sparse_loss = forward_loss(ctx, s.val, c, false);
  Var z_coef(code_matrix(s.arch, rows, cols), true);
  const sched::ActiveSet sparse_active = s.arch.active;
  s.arch.active = sched::all_active(s.graph);
  StepContext dense_ctx = s.context();
  const Var dense_loss = forward_loss(dense_ctx, s.val, {z_coef}, false);
  CHECK(sparse_loss.value().item() == doctest::Approx(dense_loss.value().item()).epsilon(1e-5));

  // dL/db_j = A_{j,S} dL/dc_S.
  {
    FreezeGuard freeze(s.sgd.params());
    dense_loss.backward();
    s.arch.active = sparse_active;
    for (Var& code : sparse_codes(s.arch).codes) code.zero_grad();
    sparse_loss.backward();
  }
  const std::vector<float> dc = z_coef.grad().to_vector();
  const std::vector<float> db = sparse_codes(s.arch).codes[0].grad().to_vector();
  for (const SparseNode& n : sparse_codes(s.arch).nodes) {
    const size_t k = n.columns.size();
    for (int64_t t = 0; t < n.m; ++t) {
      double want = 0;
      for (int32_t i : n.support)
        want += n.a[size_t(t * n.n() + i)] *
                double(dc[size_t(n.rows[size_t(i) / k] * cols + n.columns[size_t(i) % k])]);
      CHECK(double(db[size_t(n.offset + t)]) == doctest::Approx(want).epsilon(1e-4));
    }
  }
}

TEST_CASE("ista: a step runs s ops per node, recovers the support and trains only those ops") {
  Setup s;
  // Node codes whose LASSO solution is known: b = A z with one large entry per chosen op.
  set_code(s.arch, {{{1, 1.0}, {3, 0.8}}, {{2, 0.9}, {6, 1.1}}});
  for (SparseNode& n : sparse_codes(s.arch).nodes) {
    const std::vector<int32_t> planted = n.support;
    n.support.clear();
    n.z.assign(size_t(n.n()), 0.0);
    CHECK(recover_node(n, node_code(s.arch, n),
                       LassoOptions{.tolerance = 1e-10, .max_iterations = 200000}));
    CHECK(n.support == planted);
  }
  s.arch.active = support_active_set(s.graph, s.arch);

  reset_kernel_counts();
  StepContext ctx = s.context();
  s.sgd.zero_grad();
  update_weights(ctx);
  // Forward runs exactly the conv nodes outside candidates and in the supported ones.
  int64_t conv_nodes = 0;
  for (const ir::Node& node : s.graph.nodes)
    if (node.op == OpKind::conv2d &&
        (!node.candidate.valid() || s.arch.active[node.candidate.index()]))
      ++conv_nodes;
  CHECK(kernel_counts().forward[size_t(OpKind::conv2d)] == conv_nodes);
  for (size_t i = 0; i < s.graph.params.size(); ++i) {
    const ir::Parameter& p = s.graph.params[i];
    if (p.is_buffer || !p.candidate.valid()) continue;
    CHECK(s.params.all()[i].has_grad() == (s.arch.active[p.candidate.index()] == sched::kActive));
  }
  // The code step moves b (Adam) and forms no weight gradients.
  s.sgd.zero_grad();
  const std::vector<float> before = sparse_codes(s.arch).codes[0].value().to_vector();
  update_codes(ctx);
  CHECK(sparse_codes(s.arch).codes[0].value().to_vector() != before);
  for (const Var& w : s.sgd.params()) CHECK_FALSE(w.has_grad());
}

TEST_CASE("ista: derivation keeps exactly the support, parallel edges included") {
  Setup s;
  set_code(s.arch, {{{0, 0.7}, {4, -1.3}}, {{7, 0.4}, {8, 2.1}}});
  const Derived d = derive(s.space, s.graph, s.arch);
  const spec::Cell& cell = d.space.cells[0];
  REQUIRE(cell.nodes[0].edges.size() == 2);
  CHECK(cell.nodes[0].edges[0].from == "c_k-2");
  CHECK(cell.nodes[0].edges[0].ops == std::vector<std::string>{"skip_connect"});
  CHECK(cell.nodes[0].edges[1].from == "c_k-1");
  CHECK(cell.nodes[0].edges[1].ops == std::vector<std::string>{"sep_conv_3x3"});
  REQUIRE(cell.nodes[1].edges.size() == 2);
  CHECK(cell.nodes[1].edges[0].from == "a");
  CHECK(cell.nodes[1].edges[0].ops == std::vector<std::string>{"sep_conv_3x3"});
  CHECK(cell.nodes[1].edges[1].from == "a");
  CHECK(cell.nodes[1].edges[1].ops == std::vector<std::string>{"max_pool_3x3"});
  CHECK(d.space.is_fixed());
  spec::compile(d.space);  // the derived network compiles
}
