#include "algorithms/arch_state.h"

#include <cmath>

#include "engine/error.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"

namespace cellgraph::algorithms {

ArchState initial_arch_state(const ir::Graph& graph, double init_std, uint64_t seed) {
  ArchState state;
  Rng rng(seed);
  for (const ir::ArchGroup& g : graph.arch_groups) {
    const size_t cols = g.columns.size();
    std::vector<float> v(size_t(g.rows) * cols);
    for (size_t r = 0; r < size_t(g.rows); ++r)
      for (size_t c = 0; c < cols; ++c) {
        const double random = init_std * double(rng.normal());  // drawn always: stable streams
        const double given = g.init[r][c];
        v[r * cols + c] = float(std::isnan(given) ? random : given);
      }
    state.logits.emplace_back(Tensor::from_vector({g.rows, int64_t(cols)}, v), true,
                              "arch." + g.name);
  }
  state.active = sched::all_active(graph);
  return state;
}

std::vector<Var>& arch_variables(ArchState& state) {
  return state.relaxation == Relaxation::sparse_code ? state.codes : state.logits;
}

std::vector<Var> softmax_coefficients(const ArchState& state) {
  std::vector<Var> out;
  for (const Var& logits : state.logits) out.push_back(ops::softmax(logits));
  return out;
}

std::vector<Tensor> one_hot_rows(const ArchState& state) {
  std::vector<Tensor> out;
  for (const Var& a : state.logits) {
    const int64_t rows = a.shape()[0], cols = a.shape()[1];
    const std::vector<float> v = a.value().to_vector();
    std::vector<float> hot(v.size(), 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
      int64_t best = 0;
      for (int64_t c = 1; c < cols; ++c)
        if (v[size_t(r * cols + c)] > v[size_t(r * cols + best)]) best = c;
      hot[size_t(r * cols + best)] = 1.0f;
    }
    out.push_back(Tensor::from_vector({rows, cols}, hot));
  }
  return out;
}

std::vector<Var> sparse_code_coefficients(const ArchState& state) {
  std::vector<Var> out;
  for (size_t g = 0; g < state.logits.size(); ++g) {
    const int64_t rows = state.logits[g].shape()[0], cols = state.logits[g].shape()[1];
    const int64_t codes = state.codes[g].shape()[0];
    // c = M b + d with M [rows * cols, sum m] holding A_{j,S}^T in the supported rows and
    // d = -E_SS z_S: a constant map, so the gradient reaches b through A_S only.
    std::vector<float> map(size_t(rows * cols * codes), 0.0f), shift(size_t(rows * cols), 0.0f);
    for (const SparseNode& node : state.nodes) {
      if (node.group != int32_t(g)) continue;
      const int64_t n = node.n(), k = int64_t(node.columns.size());
      for (int32_t i : node.support) {
        const int64_t flat = int64_t(node.rows[size_t(i / k)]) * cols + node.columns[size_t(i % k)];
        for (int64_t t = 0; t < node.m; ++t)
          map[size_t(flat * codes + node.offset + t)] = float(node.a[size_t(t * n + i)]);
        double e_z = 0;  // (E_SS z_S)_i
        for (int32_t j : node.support) {
          double dot = 0;
          for (int64_t t = 0; t < node.m; ++t)
            dot += node.a[size_t(t * n + i)] * node.a[size_t(t * n + j)];
          e_z += (dot - (i == j ? 1.0 : 0.0)) * node.z[size_t(j)];
        }
        shift[size_t(flat)] = float(-e_z);
      }
    }
    const Var product =
        ops::matmul(Var(Tensor::from_vector({rows * cols, codes}, map)), state.codes[g]);
    const Var c = ops::add(product, Var(Tensor::from_vector({rows * cols, 1}, shift)));
    out.push_back(ops::reshape(c, {rows, cols}));
  }
  return out;
}

std::vector<Var> current_coefficients(const ArchState& state) {
  NoGradGuard no_grad;
  switch (state.relaxation) {
    case Relaxation::softmax:
      return softmax_coefficients(state);
    case Relaxation::box: {
      std::vector<Var> out;
      for (const Tensor& t : one_hot_rows(state)) out.emplace_back(t);
      return out;
    }
    case Relaxation::sparse_code:
      return sparse_code_coefficients(state);
  }
  CG_ASSERT(false, "unknown relaxation");
  return {};
}

std::vector<std::vector<float>> coefficient_values(const ArchState& state) {
  std::vector<std::vector<float>> out;
  if (state.relaxation == Relaxation::box) {  // derivation ranks by A itself
    for (const Var& a : state.logits) out.push_back(a.value().to_vector());
    return out;
  }
  for (const Var& c : current_coefficients(state)) out.push_back(c.value().to_vector());
  return out;
}

std::vector<std::vector<float>> softmax_values(const ArchState& state) {
  NoGradGuard no_grad;
  std::vector<std::vector<float>> out;
  for (const Var& c : softmax_coefficients(state)) out.push_back(c.value().to_vector());
  return out;
}

}  // namespace cellgraph::algorithms
