// ISTA-NAS (Yang, Li, You, Zhuang, Wang, Lin, NeurIPS 2020): architecture search as sparse
// coding. The state it keeps beyond the logits, its relaxation (shared by the two-stage
// `ista` and the one-stage `ista-onestage`, ista_onestage.cpp), and the pieces of its
// passes, exposed for tests and for absorption.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/algorithm.h"
#include "algorithms/arch_state.h"
#include "algorithms/lasso.h"
#include "algorithms/step_context.h"
#include "engine/io/checkpoint.h"
#include "engine/ir/graph.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

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
  // One-stage, checked per epoch: the code and support at the last check, and whether the
  // node's b froze (its support and b stay, its ops' closing BNs train).
  std::vector<double> z_checked;
  std::vector<int32_t> support_checked;
  bool frozen = false;

  int64_t n() const { return int64_t(rows.size() * columns.size()); }
};

// The state beyond the logits (ArchState::extra): per group the nodes' codes b_j stacked
// into [sum m, 1] (what the architecture optimizer trains), the nodes, and (one-stage)
// whether the codes froze.
struct SparseCodes final : AlgorithmState {
  std::vector<Var> codes;
  std::vector<SparseNode> nodes;
  // ISTA-NAS one-stage: set once the codes converged (termination rule; checked per epoch,
  // every node's frozen); from then on b and the supports stay fixed and the edge BNs'
  // affine parameters train. `frozen_epoch`: the first epoch run with every code frozen.
  bool codes_frozen = false;
  int64_t frozen_epoch = -1;
  std::unique_ptr<AlgorithmState> clone() const override {
    return std::make_unique<SparseCodes>(*this);
  }
};
// The state's SparseCodes (CG_ASSERT that it has them).
SparseCodes& sparse_codes(ArchState& state);
const SparseCodes& sparse_codes(const ArchState& state);

// ISTA-NAS's options; defaults are the paper's.
struct SparseCodeOptions {
  int64_t measurements = 7;  // m: rows of each node's A_j and length of b_j
  bool gaussian = false;     // A_j entries N(0, 1/m) instead of uniform [0, 1)
  LassoOptions lasso;        // lambda 1e-5, FISTA
  // One-stage: b freezes once every node's ||z_new - z_old||_2 <= epsilon with an
  // unchanged support.
  double epsilon = 1e-3;
};
// The hyperparameter table both forms share (one-stage adds ista-epsilon), and the options
// from its values.
std::vector<Hyperparameter> sparse_code_hyperparameters();
SparseCodeOptions sparse_code_options(const HyperValues& hyper);

// The relaxation both forms share: codes trained by the architecture optimizer, the
// coefficients of each node's support, derivation by support, the codes and supports in
// checkpoints and epoch records.
class SparseCodingAlgorithm : public Algorithm {
 public:
  using Algorithm::Algorithm;
  std::vector<Hyperparameter> hyperparameters() const override;
  ArchState initial_state(const ir::Graph& graph, const spec::Space& space,
                          const HyperValues& hyper, uint64_t seed) const override;
  std::vector<Var> coefficients(const ArchState& arch) const override;
  std::vector<Var> relaxed_coefficients(const ArchState& arch) const override;
  std::vector<Var>& variables(ArchState& arch) const override;
  Derived derive(const spec::Space& space, const ir::Graph& graph,
                 const ArchState& arch) const override;
  void save(const ir::Graph& graph, const ArchState& arch, io::Checkpoint& ckpt) const override;
  void restore(const ir::Graph& graph, ArchState& arch, const io::Checkpoint& ckpt,
               bool full) const override;
  void describe_epoch(const ir::Graph& graph, const ArchState& arch,
                      spec::JsonValue& record) const override;
  void end_epoch(const ir::Graph& graph, ArchState& arch, const HyperValues& hyper,
                 int64_t epoch) const override;
};

// Per group, the coefficient matrix c = A_S^T b - E_SS z_S on each node's support and 0
// elsewhere (E = A^T A - I), as a differentiable function of the codes.
std::vector<Var> sparse_code_coefficients(const ArchState& state);

// ISTA-NAS: z_j by ISTA/FISTA from b_j for every node, the top-s support, the active set.
void recover_sparse_codes(StepContext& ctx);
// ISTA-NAS: Adam on dL_val/db (two-stage).
void update_codes(StepContext& ctx);

// Builds the nodes of every searchable cell type (its first instance; instances share the
// rows), samples each A_j (seeded) and an initial code z_0 ~ init_std * N(0, 1) (a one-hot
// row's entries: 1 at its op, 0 elsewhere) with b_j = A_j z_0, then recovers the first support.
// Sets the state's SparseCodes and active set. Throws Error naming the spec place for a node
// without `keep`, edges of one node in different groups, or path weights.
void init_sparse_codes(ArchState& state, const ir::Graph& graph, const spec::Space& space,
                       const SparseCodeOptions& options, double init_std, uint64_t seed);

// z_j <- LASSO(A_j, b_j) warm-started at the previous z_j; the support becomes the top-s
// |z| (ties: lower index). Updates the node's statistics; returns whether the support changed.
bool recover_node(SparseNode& node, const std::vector<double>& b, const LassoOptions& options);

// Recovers every node from the current codes and sets the active set to the supports.
void recover_all(const ir::Graph& graph, ArchState& state, const LassoOptions& options);

// The node's b_j as doubles, read from its group's code vector.
std::vector<double> node_code(const ArchState& state, const SparseNode& node);

// Active: the candidates on some node's support (every instance of the cell type).
sched::ActiveSet support_active_set(const ir::Graph& graph, const ArchState& state);

}  // namespace cellgraph::algorithms
