// Training a fixed network (one op per edge) from scratch, and evaluating one: the loop
// behind `cellgraph train` and `cellgraph eval`.
//
// One step: a shuffled training batch, forward in training mode, cross-entropy, backward,
// gradient clipping, SGD with the epoch's cosine learning rate; the run loop (run_loop.h)
// owns the counters, schedule, records and checkpoint cadence, as for a search. Resuming is
// exact as in search_session.h: the checkpoint holds the weights, BN buffers, SGD state,
// the batch position, the counters and the epoch's metric sums; everything else is a pure
// function of the options.
//
// DARTS evaluation additions: augmentation goes into the BatchOptions built in the
// constructor; drop-path (drop_path nodes whose probability grows with the epoch) and the
// auxiliary head (loss CE + w * CE(aux)) are compiled into the training graph only
// (spec::CompileOptions), so evaluation, export and inference never see them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "algorithms/run_loop.h"
#include "engine/autodiff/var.h"
#include "engine/data/augment.h"
#include "engine/data/batches.h"
#include "engine/data/dataset.h"
#include "engine/io/checkpoint.h"
#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "engine/optim/sgd.h"
#include "engine/sched/plan.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

struct TrainOptions {
  int64_t epochs = 600;  // DARTS trains the derived CIFAR-10 network for 600 epochs
  int64_t batch_size = 96;
  int64_t max_steps = 0;  // 0: no limit
  uint64_t seed = 0;
  int64_t log_every = 50;  // 0: epoch records only
  float lr = 0.025f;
  float lr_min = 0.0f;
  float momentum = 0.9f;
  float weight_decay = 3e-4f;
  float grad_clip = 5.0f;  // <= 0: no clipping
  // Training batches only (never evaluation): random crop, flip, cutout. Off by default;
  // DARTS CIFAR uses crop_padding 4, flip and cutout 16.
  AugmentOptions augment = {};
  float label_smoothing = 0.0f;  // in [0, 1); cross-entropy against smoothed targets
  // Drop-path probability at the last epoch, in [0, 1): epoch e (0-based) uses
  // drop_path_prob * e / epochs, as DARTS. 0: no drop_path nodes (DARTS: 0.2).
  float drop_path_prob = 0.0f;
  // Weight of the auxiliary head's cross-entropy in the training loss, >= 0. 0: no head
  // (DARTS: 0.4).
  float auxiliary_weight = 0.0f;
  // Where the weights and every batch live (--device); checkpoints hold host copies.
  Device device = Device::cpu;
};

struct EvalResult {
  double loss = 0;      // mean cross-entropy
  double accuracy = 0;  // top-1
  int64_t correct = 0, count = 0;
};

// Throws Error (naming the spec file) unless every edge of `space` has one op.
void require_fixed(const spec::Space& space);

// Inference-mode accuracy and loss of a network on a data set, in order, in batches.
EvalResult evaluate(const ir::Graph& graph, const ir::ParameterStore& params, const Dataset& data,
                    int64_t batch_size = 256);
// The same over one epoch of a batch stream, in its order; a language model carries its
// hidden state from batch to batch (from zeros) and its loss is per token, its accuracy that
// of the next-token arg-max (perplexity = exp(loss)).
EvalResult evaluate(const ir::Graph& graph, const ir::ParameterStore& params, BatchSource& batches);

// Copies "param/<name>" entries of a checkpoint into `params` (shapes checked). Entries of
// an auxiliary head ("param/auxiliary.*") are skipped when `graph` was compiled without one
// (evaluating, exporting a run trained with it).
void restore_parameters(const ir::Graph& graph, const ir::ParameterStore& params,
                        const io::Checkpoint& ckpt);

class TrainSession final : public Run {
 public:
  // `space` must be fixed and fit the data; `train_set` normalised.
  TrainSession(spec::Space space, const Dataset& train_set, const TrainOptions& options);
  // Training on a given batch stream: a language model's windows of text, in order, its
  // hidden state carried from one batch to the next and reset at each epoch (the stream's
  // augmentation, if any, is its own).
  TrainSession(spec::Space space, std::unique_ptr<BatchSource> batches, TrainOptions options);

  // The training loss of one batch (CE + auxiliary_weight * CE(aux)) and its parts, in
  // training mode with this step's drop-path masks; does not touch the epoch's sums.
  struct Loss {
    Var total, cross_entropy, aux_cross_entropy;  // the last undefined without a head
    Var logits;    // [rows, classes]: a language model's [B, T, V] as [B * T, V]
    Var labels;    // [rows], the labels `logits` is scored against
    Tensor state;  // a language model's hidden state after the batch (else undefined)
  };
  Loss compute_loss(const Batch& batch) const;
  float drop_path_prob() const;  // of the current epoch

  void set_record_callback(RunLoop::RecordCallback callback) {
    loop_.set_record_callback(std::move(callback));
  }
  // One training step (asserts !finished()); throws Error (nothing recorded) when the loss
  // or the gradient norm is not finite.
  void step() override;

  RunLoop& loop() override { return loop_; }
  const RunLoop& loop() const { return loop_; }
  bool finished() const { return loop_.finished(); }
  int64_t global_step() const { return loop_.global_step(); }
  int64_t epoch() const { return loop_.epoch(); }
  int64_t step_in_epoch() const { return loop_.step_in_epoch(); }
  int64_t steps_per_epoch() const { return loop_.steps_per_epoch(); }
  int64_t planned_steps() const { return loop_.planned_steps(); }
  bool epoch_just_ended() const { return loop_.epoch_just_ended(); }
  RunRecord snapshot() const;  // running means, no timings
  void set_epochs(int64_t epochs);
  void set_max_steps(int64_t max_steps);

  io::Checkpoint checkpoint() const override;
  void restore(const io::Checkpoint& ckpt);

  const spec::Space& space() const { return space_; }
  const TrainOptions& options() const { return options_; }
  const ir::Graph& graph() const { return graph_; }
  const ir::ParameterStore& params() const { return params_; }

 private:
  // What training adds to every record: the auxiliary head's loss, the drop-path rate.
  void decorate(RunRecord& r, const StepMetrics& totals) const;

  spec::Space space_;
  TrainOptions options_;
  ir::Graph graph_;
  ir::ParameterStore params_;
  Sgd sgd_;
  std::unique_ptr<BatchSource> batches_;
  Tensor state_;  // a language model's hidden state after the last batch (undefined: zeros)
  sched::Plan plan_;
  RunLoop loop_;
};

}  // namespace cellgraph::algorithms
