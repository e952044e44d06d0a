// The architecture search as a library: the runner (`cellgraph search`) and the tests drive
// the same code.
//
// A session owns the compiled supernet, its weights, the architecture state, both
// optimizers and two seeded batch iterators over the parts of the training set (DARTS:
// weights train on the first part, the architecture on the second). One step() is one run
// of the algorithm's passes (algorithm.h) on one train batch and one val batch; the run
// loop (run_loop.h) owns the counters, the schedule, the records and the loop's part of the
// checkpoint.
//
// Resuming is exact: checkpoint() captures everything a step reads or a record reports
// (weights, BN buffers, the architecture state and what the algorithm keeps beyond it, SGD
// and Adam state, iterator positions, the loop's counters and totals, the session Rng), and
// the rest is a pure function of the options (schedule, batch order and augmentation,
// dropout seeds). A session built with the same space, data and options and then
// restore()d runs the remaining steps bit-identically to one that never stopped, on the
// same thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "algorithms/algorithm.h"
#include "algorithms/arch_state.h"
#include "algorithms/derive.h"
#include "algorithms/hyperparameters.h"
#include "algorithms/run_loop.h"
#include "engine/data/batches.h"
#include "engine/data/dataset.h"
#include "engine/data/split.h"
#include "engine/io/checkpoint.h"
#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "engine/optim/adam.h"
#include "engine/optim/sgd.h"
#include "engine/tensor/random.h"
#include "spec/json_value.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

// Defaults are DARTS' (docs/algorithms.md).
struct SearchOptions {
  std::string algorithm = "darts";
  int64_t epochs = 50;
  int64_t batch_size = 64;
  int64_t max_steps = 0;  // stop after this many steps in total; 0: no limit
  uint64_t seed = 0;      // weights, architecture init and batch order all derive from it
  // Of the training set for the weights; the rest is val. 1 (all, no validation split) only
  // for algorithms without a validation step (ista-onestage).
  double train_fraction = 0.5;
  int64_t log_every = 50;  // a log record every this many global steps; 0: none
  float lr = 0.025f;       // weights: SGD, cosine from lr to lr_min over the epochs
  float lr_min = 0.001f;
  float momentum = 0.9f;
  float weight_decay = 3e-4f;
  float grad_clip = 5.0f;  // <= 0: no clipping
  float arch_lr = 3e-4f;   // architecture: Adam
  float arch_beta1 = 0.5f;
  float arch_beta2 = 0.999f;
  float arch_weight_decay = 1e-3f;
  // The algorithm's own hyperparameters (its table, algorithm.h); an empty table means
  // the algorithm's defaults.
  HyperValues hyper;
  // Where the weights, the architecture state and every batch live (--device). Not a
  // result-changing option on the CPU: checkpoints hold host copies, so a run may resume on
  // another device.
  Device device = Device::cpu;
};

// The search loop's shared hyperparameters as a table (the runner's flags, config.json),
// and the options their values give.
std::vector<Hyperparameter> search_hyperparameters();
void apply_search_hyperparameters(const HyperValues& values, SearchOptions& options);

// Per group of ops or paths (not channel scores), per row: the name of the column with the
// largest ranking value (ties: lower).
std::vector<std::pair<std::string, std::vector<std::string>>> argmax_ops(const ir::Graph& graph,
                                                                         const ArchState& arch);

// Every architecture group's coefficients as the algorithm ranks them (coefficient_values:
// softmax(alpha) for DARTS and MiLeNAS, NASP's A, ISTA-NAS' c; path weights for a node's
// edges; RARTS' channel scores as they are), as the `arch_weights` object of metrics.jsonl:
// per group {"kind": "ops", "paths" or "channels", "columns": [...], "rows": [...], "values":
// [[...] per row]}, each value the shortest decimal of its float (docs/cli.md, metrics.jsonl).
spec::JsonValue arch_weights_json(const ir::Graph& graph, const ArchState& arch);

class SearchSession final : public Run {
 public:
  // `space` must fit the data (fit_space_to_data); `train_set` is the whole training set,
  // already normalised. Throws Error for invalid options, a training set too small for one
  // batch on each side, or a batch whose activations cannot fit in memory.
  SearchSession(spec::Space space, const Dataset& train_set, const SearchOptions& options);
  // Two given batch streams: the weights' (`train`) and the architecture's (`val`; null for an
  // algorithm without a validation step). A language model searches on the windows of a
  // corpus' training and validation text (DARTS RNN), each stream carrying its hidden state
  // from one batch to the next and starting from zeros at each of its epochs.
  SearchSession(spec::Space space, std::unique_ptr<BatchSource> train,
                std::unique_ptr<BatchSource> val, SearchOptions options);

  // Called for every record, in order, from inside step().
  void set_record_callback(RunLoop::RecordCallback callback) {
    loop_.set_record_callback(std::move(callback));
  }

  // One search step (asserts !finished()). Emits a log record when the global step is a
  // multiple of log_every, and an epoch record when the step ends an epoch. Throws Error
  // (nothing recorded) when the step produced a non-finite loss, gradient norm or
  // architecture parameter.
  void step() override;
  // Steps until finished() or `stop` returns true (checked after each step).
  void run(const std::function<bool()>& stop = {});

  RunLoop& loop() override { return loop_; }
  const RunLoop& loop() const { return loop_; }
  bool finished() const { return loop_.finished(); }
  int64_t global_step() const { return loop_.global_step(); }
  int64_t epoch() const { return loop_.epoch(); }
  int64_t step_in_epoch() const { return loop_.step_in_epoch(); }
  int64_t steps_per_epoch() const { return loop_.steps_per_epoch(); }
  int64_t planned_steps() const { return loop_.planned_steps(); }
  bool epoch_just_ended() const { return loop_.epoch_just_ended(); }
  RunRecord snapshot() const;
  double current_lr() const { return double(loop_.lr()); }
  void set_epochs(int64_t epochs);
  void set_max_steps(int64_t max_steps);

  // Everything needed to continue exactly (see the file comment).
  io::Checkpoint checkpoint() const override;
  // Loads a checkpoint() of a session with the same space, data and options. Throws Error
  // naming the checkpoint's source and the entry at fault; the session is then unusable.
  void restore(const io::Checkpoint& ckpt);

  // The derived network (and, for algorithms that keep some, its starting weights).
  Derived derive() const;

  const Algorithm& algorithm() const { return *algorithm_; }
  const spec::Space& space() const { return space_; }
  const SearchOptions& options() const { return options_; }
  const ir::Graph& graph() const { return graph_; }
  const ir::ParameterStore& params() const { return params_; }
  const ArchState& arch() const { return arch_; }
  const Sgd& weight_optimizer() const { return sgd_; }
  const Adam& arch_optimizer() const { return adam_; }

 private:
  using Streams = std::pair<std::unique_ptr<BatchSource>, std::unique_ptr<BatchSource>>;
  SearchSession(spec::Space space, Streams streams, SearchOptions options);

  // Throws Error (engine/optim/divergence.h) when the step just run produced a non-finite
  // loss, gradient norm or architecture parameter; called before anything is recorded.
  void check_finite(const StepMetrics& m);
  // What a search adds to every record (validation fields, the architecture weights) and
  // to epoch records (the derived genotype, the arg-max ops, the algorithm's own fields).
  void decorate(RunRecord& r) const;

  spec::Space space_;
  SearchOptions options_;
  const Algorithm* algorithm_;
  ir::Graph graph_;
  ir::ParameterStore params_;
  ArchState arch_;
  Sgd sgd_;
  Adam adam_;
  std::unique_ptr<BatchSource> train_it_;
  std::unique_ptr<BatchSource> val_it_;  // none without a validation split
  // Language models: each stream's hidden state after its last batch (undefined: zeros).
  Tensor train_state_, val_state_;
  Rng rng_;  // session stream for algorithms that sample (checkpointed; DARTS draws none)
  RunLoop loop_;
};

// The architecture state of a search checkpoint, as far as derivation and records read it
// (no optimizer state), on `graph` compiled from `space` fitted as the run fitted it.
// Throws Error naming the checkpoint when it is not a search's (`command` says who asks).
ArchState arch_state_from_checkpoint(const spec::Space& space, const ir::Graph& graph,
                                     const io::Checkpoint& ckpt, const std::string& command);

// Derivation from a search checkpoint without data or optimizers: compiles `space` (fitted
// as the run fitted it) and reads the architecture. Throws Error as restore().
Derived derive_from_checkpoint(const spec::Space& space, const io::Checkpoint& ckpt);

}  // namespace cellgraph::algorithms
