// The architecture state algorithm passes update, and what the scheduler sees of it: one
// coefficient matrix per architecture group of the graph and the active set (one flag per
// candidate).
//
// How the coefficients come from the state is the algorithm's relaxation:
//  - softmax (DARTS, MiLeNAS): logits alpha per group, coefficients softmax(alpha) per row;
//  - box (NASP): `logits` holds the continuous matrix A, kept in [0, 1]; the coefficients
//    are its proximal projection onto one-hot rows (the arg-max op of each edge);
//  - sparse_code (ISTA-NAS): per intermediate node a fixed measurement matrix A_j and a
//    trained code b_j (`codes`, stacked per group); the sparse code z_j recovered from b_j
//    picks the node's support, and the coefficients are nonzero only there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/autodiff/var.h"
#include "engine/ir/graph.h"
#include "engine/sched/plan.h"

namespace cellgraph::algorithms {

enum class Relaxation { softmax, box, sparse_code };

// ISTA-NAS: one intermediate node of a cell type. Dictionary entry i is the candidate
// (rows[i / columns.size()], columns[i % columns.size()]) of the node's group.
struct SparseNode {
  std::string label;             // "normal/n2"
  int32_t group = 0;             // the architecture group of the node's edges
  std::vector<int32_t> rows;     // its incoming edges' rows in that group
  std::vector<int32_t> columns;  // the group's columns in the dictionary (none excluded)
  int64_t m = 0;                 // measurements: rows of A and length of b
  int64_t offset = 0;            // where the node's b starts in its group's code vector
  int keep = 0;                  // s: the support size
  std::vector<double> a;         // m x n, row-major, fixed after sampling
  std::vector<double> z;         // the latest recovered code, n entries
  std::vector<int32_t> support;  // dictionary indices of the s largest |z|, ascending
  // Statistics since the last epoch record: did the support change, and the latest
  // ||z_new - z_old||_2.
  int64_t support_changes = 0;
  double z_change = 0;

  int64_t n() const { return int64_t(rows.size() * columns.size()); }
};

struct ArchState {
  Relaxation relaxation = Relaxation::softmax;
  std::vector<Var> logits;  // per group [rows, columns]: alpha (softmax) or A (box)
  sched::ActiveSet active;  // per graph candidate
  // sparse_code only: per group, the nodes' b_j stacked into [sum m, 1]; and the nodes.
  std::vector<Var> codes;
  std::vector<SparseNode> nodes;
  // ISTA-NAS one-stage: set once the codes converged (termination rule); from then on b
  // and the supports stay fixed and the edge BNs' affine parameters train.
  bool codes_frozen = false;
};

// Logits start at init_std * N(0, 1), except entries the spec initialises (ArchGroup::init);
// every candidate active; relaxation softmax.
ArchState initial_arch_state(const ir::Graph& graph, double init_std, uint64_t seed);

// What the architecture optimizer trains: the codes for sparse_code, else the logits.
std::vector<Var>& arch_variables(ArchState& state);

// softmax over each row of each group's logits: the DARTS relaxation. Records autodiff
// when the logits require a gradient and grad mode is on.
std::vector<Var> softmax_coefficients(const ArchState& state);

// The coefficient matrices the relaxation gives, without a gradient (for weight steps and
// evaluation).
std::vector<Var> current_coefficients(const ArchState& state);

// Row-major host copies of each group's coefficients, for derivation and logging.
std::vector<std::vector<float>> coefficient_values(const ArchState& state);

// Kept for callers that know the relaxation is softmax.
std::vector<std::vector<float>> softmax_values(const ArchState& state);

// box: per group, the one-hot projection of A (ties to the lower column).
std::vector<Tensor> one_hot_rows(const ArchState& state);

// sparse_code: per group, the coefficient matrix c = A_S^T b - E_SS z_S on each node's
// support and 0 elsewhere (E = A^T A - I), as a differentiable function of the codes.
std::vector<Var> sparse_code_coefficients(const ArchState& state);

}  // namespace cellgraph::algorithms
