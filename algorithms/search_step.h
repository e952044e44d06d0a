// One search step as a pipeline of named passes over a StepContext. An algorithm is a
// readable list of passes (algorithms.cpp); each pass is a free function that reads the
// step's batches and updates the architecture state or the weights.
#pragma once

#include <string>
#include <vector>

#include "algorithms/arch_state.h"
#include "algorithms/lasso.h"
#include "engine/data/batches.h"
#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "engine/optim/optimizer.h"
#include "engine/optim/sgd.h"
#include "engine/sched/plan.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

struct StepMetrics {
  double train_loss = 0, val_loss = 0;  // summed over samples
  int64_t train_correct = 0, val_correct = 0, train_count = 0, val_count = 0;
  double grad_norm = 0;  // of the weight gradient, before clipping (0: no weight step)
};

// ISTA-NAS (Yang et al., NeurIPS 2020) sparse coding; defaults are the paper's.
struct SparseCodeOptions {
  int64_t measurements = 7;  // m: rows of each node's A_j and length of b_j
  bool gaussian = false;     // A_j entries N(0, 1/m) instead of uniform [0, 1)
  LassoOptions lasso;        // lambda 1e-5, FISTA
  // One-stage: b freezes once every node's ||z_new - z_old||_2 <= epsilon with an
  // unchanged support.
  double epsilon = 1e-3;
};

// Hyperparameters of the algorithms' own passes (the optimizers carry theirs).
struct AlgorithmOptions {
  float milenas_lambda = 1.0f;  // MiLeNAS: weight of dL_train/dalpha
  float nasp_eta = 0.0f;        // NASP: weight of the parameter-count regulariser R(A)
  // NASP: step A with the architecture Adam (as the authors' code does) instead of the
  // paper's plain gradient step; prox_C2 follows either way.
  bool nasp_adam = false;
  SparseCodeOptions sparse;  // ISTA-NAS
};

struct StepContext {
  StepContext(const ir::Graph& g, const ir::ParameterStore& p, ArchState& a, Sgd& w, Optimizer& ao,
              const Batch& train_batch, const Batch& val_batch)
      : graph(g),
        params(p),
        arch(a),
        weight_optimizer(w),
        arch_optimizer(ao),
        train(train_batch),
        val(val_batch) {}

  const ir::Graph& graph;
  const ir::ParameterStore& params;
  ArchState& arch;
  Sgd& weight_optimizer;
  Optimizer& arch_optimizer;
  const Batch& train;
  const Batch& val;
  float grad_clip = 5.0f;  // <= 0: no clipping
  AlgorithmOptions options;
  uint64_t step = 0;  // global step, seeds dropout
  StepMetrics metrics;

  // The plan for the current active set, made on first use and again after the active
  // set changes.
  const sched::Plan& plan();

 private:
  sched::Plan plan_;
  bool planned_ = false;
};

using Pass = void (*)(StepContext&);

struct NamedPass {
  const char* name;
  Pass run;
};

struct Algorithm {
  std::string name;
  std::string description;
  std::vector<NamedPass> step;  // run in order, once per search step
  Relaxation relaxation = Relaxation::softmax;
  // ISTA-NAS one-stage: searches the evaluation network itself (spec network.edge_bn).
  bool one_stage = false;
};

const std::vector<Algorithm>& algorithms();
// The algorithm names for help texts: "darts, darts2, ... or ista-onestage".
std::string algorithm_names();
// Throws Error listing the known names when `name` is not one.
const Algorithm& find_algorithm(const std::string& name);
void run_step(const Algorithm& algorithm, StepContext& ctx);

// The algorithm's starting state: initial_arch_state's logits, then per relaxation: box
// clips them into [0, 1] (NASP's A_0 = prox_C2(alpha_0)); sparse_code samples every node's
// A_j and an initial code, and recovers the first support. Throws Error (naming the spec
// place) when the space does not fit the algorithm.
ArchState prepared_arch_state(const Algorithm& algorithm, const ir::Graph& graph,
                              const spec::Space& space, const AlgorithmOptions& options,
                              uint64_t seed);

// Building blocks shared by the passes.
// Forward in training mode on `batch` with the given coefficients; returns the mean loss
// and adds the batch's loss and accuracy to the metrics (train or val side).
Var forward_loss(StepContext& ctx, const Batch& batch, const std::vector<Var>& coefficients,
                 bool is_train);
// Number of rows of `logits` whose arg-max equals the label.
int64_t count_correct(const Tensor& logits, const Tensor& labels);

// Passes.
// SGD on L_train at the relaxation's coefficients (softmax(alpha), NASP's one-hot rows,
// ISTA-NAS's sparse coefficients), none of which receives a gradient.
void update_weights(StepContext& ctx);
void update_architecture_first_order(StepContext& ctx);   // Adam on dL_val/dalpha
void update_architecture_second_order(StepContext& ctx);  // Adam on the unrolled gradient
// The second-order DARTS gradient alone, left in the logits' grad() (for tests).
void second_order_gradient(StepContext& ctx);
void update_architecture_mixed_level(StepContext& ctx);  // MiLeNAS
// NASP: A <- clip(A - lr * dF/dA_bar) at the one-hot A_bar, then A_bar from the new A.
void update_architecture_proximal(StepContext& ctx);
// ISTA-NAS: z_j by ISTA/FISTA from b_j for every node, the top-s support, the active set.
void recover_sparse_codes(StepContext& ctx);
// ISTA-NAS: Adam on dL_val/db (two-stage).
void update_codes(StepContext& ctx);
// ISTA-NAS one-stage: recover_sparse_codes until the termination rule freezes the codes.
void recover_sparse_codes_until_converged(StepContext& ctx);
// ISTA-NAS one-stage: one backward of L_train for the weights (SGD) and, until frozen, b
// (Adam); the edge BNs' gamma and beta stay at 1 and 0 until then.
void update_weights_and_codes(StepContext& ctx);

}  // namespace cellgraph::algorithms
