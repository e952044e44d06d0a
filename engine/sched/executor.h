// Runs a Plan: each planned node becomes one ops::apply call (so autodiff records exactly
// the ops that ran), values are released after their last reader, BN, dropout and
// drop-path follow the training flag, and summing nodes sum only their present inputs.
#pragma once

#include <vector>

#include "engine/autodiff/var.h"
#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "engine/sched/plan.h"

namespace cellgraph::sched {

// Hooks on the weighted sums of candidate outputs (mixed edges, node sums), for an
// architecture gradient formed in two passes (algorithms/two_pass_gradient.h): the first
// pass runs the selected candidates only and taps the loss's gradient at every sum; the
// second runs the others forward-only and forms each sum's coefficient gradient from the
// tapped gradient as soon as the sum's inputs exist, so that no candidate output outlives
// its sum. Both indexed by the sum's output value id.
struct WeightedSumHooks {
  // Out: a zero leaf (wanting a gradient) added to each sum's output. After the backward,
  // its gradient is the loss's gradient at that sum.
  std::vector<Var>* taps = nullptr;
  // With taps: other values to tap the same way (by value index; null for none): a
  // recurrent node's add of its edges' sums, whose gradient is that of each sum, for the
  // sums a run lacks.
  const std::vector<uint8_t>* also_tap = nullptr;
  // In: the gradient at each sum. Where defined, the sum is also recorded on its own (grad
  // enabled, inside the caller's NoGradGuard) and run backward from it at once: the
  // coefficients' gradient <dy, input> accumulates in the coefficient leaves.
  const std::vector<Tensor>* grads = nullptr;
};

struct RunOptions {
  bool training = true;
  // One [rows, columns] matrix per architecture group (e.g. softmax of the logits);
  // may require a gradient. Ignored for graphs without groups.
  std::vector<Var> coefficients;
  uint64_t dropout_seed = 0;
  // Probability of the graph's drop_path nodes (training only; DARTS raises it with the
  // epoch). Their masks are seeded like dropout's, from dropout_seed and the node.
  float drop_path_prob = 0.0f;
  // A recurrent network's hidden state carried in (graph.state_in), [batch, H]; undefined
  // = zeros (the first batch of an epoch). Ignored by graphs without one.
  Var state;
  // false: batch norms in training mode normalise with the batch statistics but leave the
  // running statistics as they are (a pass that runs again with the update).
  bool update_running_stats = true;
  WeightedSumHooks weighted_sums;
  // Values carried from one run of a batch to a second (sched::make_forward_only_plan),
  // by value index. keep (out, with keep_mask): a copy without history of each marked
  // value this run computes. given (in): the values the plan marks given, moved from.
  std::vector<Var>* keep = nullptr;
  const std::vector<uint8_t>* keep_mask = nullptr;
  std::vector<Var>* given = nullptr;
};

struct RunOutputs {
  Var logits;      // [batch, classes] ([batch, T, vocabulary] for a language model)
  Var aux_logits;  // [batch, classes] when the graph has an auxiliary head, else undefined
  // A recurrent network's hidden state after the last time step (graph.state_out),
  // [batch, H], with its autodiff history: callers carrying it to the next batch detach it.
  Var state;
};

// Returns the logits [batch, classes] ([batch, T, vocabulary] for a language model).
Var run(const ir::Graph& graph, const ir::ParameterStore& params, const Plan& plan,
        const Var& images, const RunOptions& options);
// The same run, also returning the auxiliary head's logits (training).
RunOutputs run_outputs(const ir::Graph& graph, const ir::ParameterStore& params, const Plan& plan,
                       const Var& images, const RunOptions& options);

}  // namespace cellgraph::sched
