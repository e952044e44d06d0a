// One step of a run as a pipeline of named passes over a StepContext, and the building
// blocks the passes share: the forward pass with its loss and metrics, and the weight step
// every search algorithm (and the fixed-network trainer) ends with.
//
// A pass is a free function that reads the step's batches and updates the architecture
// state or the weights; an algorithm's step is a readable list of them (algorithm.h).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "algorithms/arch_state.h"
#include "algorithms/hyperparameters.h"
#include "engine/data/batches.h"
#include "engine/io/checkpoint.h"
#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "engine/optim/optimizer.h"
#include "engine/optim/sgd.h"
#include "engine/sched/executor.h"
#include "engine/sched/plan.h"

namespace cellgraph::algorithms {

// What steps report, summed over samples; the run loop sums steps into epoch totals with +=.
struct StepMetrics {
  double train_loss = 0, val_loss = 0;
  int64_t train_correct = 0, val_correct = 0, train_count = 0, val_count = 0;
  double aux_loss = 0;   // the auxiliary head's cross-entropy (training a fixed network)
  double grad_norm = 0;  // of the weight gradient, before clipping (0: no weight step)

  // Sums the counts and losses; grad_norm is per step and not summed.
  StepMetrics& operator+=(const StepMetrics& o);
};

// A stand-in for the network's forward and loss: the mean loss of the weights `params` on
// the train (is_train) or the validation side at `coefficients`. The papers' toy problems
// (RARTS Sec. III: scalar losses of one weight and one architecture variable) run the real
// passes through it (tests/test_rarts.cpp).
using LossModel = std::function<Var(const ir::ParameterStore& params, bool is_train,
                                    const std::vector<Var>& coefficients)>;

struct StepContext {
  StepContext(const ir::Graph& g, const ir::ParameterStore& p, ArchState& a, Sgd& w, Optimizer& ao,
              const Batch& train_batch, const Batch& val_batch, const HyperValues& h)
      : graph(g),
        params(p),
        arch(a),
        weight_optimizer(w),
        arch_optimizer(ao),
        train(train_batch),
        val(val_batch),
        hyper(h) {}

  const ir::Graph& graph;
  const ir::ParameterStore& params;
  ArchState& arch;
  Sgd& weight_optimizer;
  Optimizer& arch_optimizer;
  const Batch& train;
  const Batch& val;
  const HyperValues& hyper;  // the algorithm's own hyperparameters
  float grad_clip = 5.0f;    // <= 0: no clipping
  uint64_t step = 0;         // global step, seeds dropout
  // The epoch the step belongs to, of `epochs`: for an algorithm's own schedules (SparseNAS'
  // lambda and proximal step follow the epoch).
  int64_t epoch = 0, epochs = 1;
  StepMetrics metrics;
  // Language models (graph.state_in valid): the hidden state each stream's batch starts
  // from (undefined: zeros), and the one the latest forward pass on that stream ended with,
  // which the session carries to the stream's next batch (truncated backpropagation through
  // time: a plain tensor, no history).
  Tensor train_state, val_state;
  Tensor train_state_out, val_state_out;
  LossModel loss_model;  // empty: the network (sched::run and cross-entropy)

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

// Forward in training mode on `batch` with the given coefficients; returns the mean loss
// and adds the batch's loss and accuracy to the metrics (train or val side). A language
// model's loss is the mean over every predicted token (B x T of them), its accuracy that of
// the next-token arg-max, and it starts from ctx's state of that side.
Var forward_loss(StepContext& ctx, const Batch& batch, const std::vector<Var>& coefficients,
                 bool is_train);
// The same with other weights on the same graph (RARTS' second network).
Var forward_loss(StepContext& ctx, const ir::ParameterStore& params, const Batch& batch,
                 const std::vector<Var>& coefficients, bool is_train);
// The network's run options of forward_loss: training mode, the coefficients, dropout seeded
// by the step and side, the side's carried hidden state.
sched::RunOptions network_run_options(const StepContext& ctx, const std::vector<Var>& coefficients,
                                      bool is_train);
// forward_loss on the network (no loss model) with run options of the caller's making.
Var forward_loss(StepContext& ctx, const ir::ParameterStore& params, const Batch& batch,
                 const sched::RunOptions& options, bool is_train);
// What a loss scores: `logits` [rows, classes] against `labels` [rows]. A language model's
// [B, T, V] and [B, T] become one row per token ([B·T, V], [B·T]); others pass through.
struct ScoredRows {
  Var logits, labels;
};
ScoredRows rows_to_score(const ir::Graph& graph, const Var& logits, const Var& labels);

// A language model's hidden state [batch, H] from the checkpoint entry `name` (a session's
// "state/train" or "state/val"), on `device`; undefined when the entry is absent (no batch
// of that stream yet). Throws Error naming the checkpoint and entry when the network has no
// hidden state, or the values are not finite.
Tensor restore_hidden_state(const ir::Graph& graph, const io::Checkpoint& ckpt,
                            const std::string& name, int64_t batch, Device device);

// Number of rows of `logits` whose arg-max equals the label.
int64_t count_correct(const Tensor& logits, const Tensor& labels);

// The weight pass: SGD on L_train at the relaxation's coefficients (softmax(alpha), NASP's
// one-hot rows, ISTA-NAS's sparse coefficients), none of which receives a gradient; the
// gradient norm is clipped (grad_clip > 0) and reported.
void update_weights(StepContext& ctx);

}  // namespace cellgraph::algorithms
