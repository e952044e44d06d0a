// The architecture search loop as a library: the runner (`cellgraph search`) and the tests
// drive the same code.
//
// A session owns the compiled supernet, its weights, the architecture state, both
// optimizers and two seeded batch iterators over the halves of the training set (DARTS:
// weights train on the first part, the architecture on the second). One step() is one
// run_step() of the algorithm on one train batch and one val batch; the weight learning
// rate follows a cosine schedule over epochs, set at every step from the epoch number.
//
// Resuming is exact: checkpoint() captures everything a step reads or a record reports
// (weights, BN buffers, architecture logits and active set, SGD and Adam state, iterator
// positions, epoch and step counters, the epoch's metric sums, the session Rng), and the
// rest is a pure function of the options (schedule, batch order and augmentation, dropout
// seeds). A session built with the same space, data and options and then restore()d runs
// the remaining steps bit-identically to one that never stopped, on the same thread count.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "algorithms/arch_state.h"
#include "algorithms/derive.h"
#include "algorithms/search_step.h"
#include "engine/data/batches.h"
#include "engine/data/dataset.h"
#include "engine/data/split.h"
#include "engine/io/checkpoint.h"
#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "engine/optim/adam.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"
#include "engine/tensor/random.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

// Defaults are DARTS' (docs/algorithms.md).
struct SearchOptions {
  std::string algorithm = "darts";
  int64_t epochs = 50;
  int64_t batch_size = 64;
  int64_t max_steps = 0;        // stop after this many steps in total; 0: no limit
  uint64_t seed = 0;            // weights, architecture init and batch order all derive from it
  double train_fraction = 0.5;  // of the training set for the weights; the rest is val
  int64_t log_every = 50;       // a log record every this many global steps; 0: none
  float lr = 0.025f;            // weights: SGD, cosine from lr to lr_min over the epochs
  float lr_min = 0.001f;
  float momentum = 0.9f;
  float weight_decay = 3e-4f;
  float grad_clip = 5.0f;  // <= 0: no clipping
  float arch_lr = 3e-4f;   // architecture: Adam
  float arch_beta1 = 0.5f;
  float arch_beta2 = 0.999f;
  float arch_weight_decay = 1e-3f;
  AlgorithmOptions algorithm_options;  // the passes' own hyperparameters (MiLeNAS lambda)
};

// ISTA-NAS, per node, in epoch records: the support as "edge: op" entries, how many steps
// of the epoch changed it, and the last step's ||z_new - z_old||_2.
struct SparseNodeRecord {
  std::string node;
  std::vector<std::string> support;
  int64_t support_changes = 0;
  double z_change = 0;
};

// What a run reports at log intervals and epoch ends. Losses and accuracies are means
// over the steps of the current epoch so far (DARTS' running averages).
struct SearchRecord {
  enum class Kind { log, epoch };
  Kind kind = Kind::log;
  int64_t epoch = 0;  // 0-based epoch the reported steps belong to
  int64_t step = 0;   // global steps done
  double train_loss = 0, train_accuracy = 0, val_loss = 0, val_accuracy = 0;
  bool has_validation = true;  // false: the algorithm has no validation split (ista-onestage)
  double lr = 0;  // the float learning rate as its shortest decimal (0.025, not 0.0250000004)
  double seconds_per_step = 0;  // timing: mean over the interval (log) or the epoch (epoch)
  double elapsed = 0;           // timing: seconds of search so far, across resumes
  // Epoch records only: the derived genotype and, per architecture group, the arg-max
  // column of every row (edge).
  std::string genotype;
  std::vector<std::pair<std::string, std::vector<std::string>>> argmax;
  std::vector<SparseNodeRecord> sparse_nodes;  // ISTA-NAS only
};

// The shortest decimal that reads back as `value`, as a double: how metrics report floats.
double decimal_of(float value);

// The network input and class count of a data set.
struct DataShape {
  int64_t channels = 0, height = 0, width = 0, classes = 0;
};
DataShape data_shape(const Dataset& data);

// A search space is independent of the data: sets the space's network input and classes
// to `shape`. Returns "" when they already agree, else a one-line note saying what changed.
std::string fit_space_to_data(spec::Space& space, const DataShape& shape);

// Per group, per row: the name of the column with the largest logit (ties: lower index).
std::vector<std::pair<std::string, std::vector<std::string>>> argmax_ops(const ir::Graph& graph,
                                                                         const ArchState& arch);

class SearchSession {
 public:
  // `space` must fit the data (fit_space_to_data); `train_set` is the whole training set,
  // already normalised. Throws Error for invalid options or a training set too small for
  // one batch on each side.
  SearchSession(spec::Space space, const Dataset& train_set, SearchOptions options);

  // Called for every record, in order, from inside step().
  void set_record_callback(std::function<void(const SearchRecord&)> callback) {
    callback_ = std::move(callback);
  }

  // Every epoch done, or max_steps reached.
  bool finished() const;
  // One search step (asserts !finished()). Emits a log record when the global step is a
  // multiple of log_every, and an epoch record when the step ends an epoch.
  void step();
  // Steps until finished() or `stop` returns true (checked after each step).
  void run(const std::function<bool()>& stop = {});

  int64_t global_step() const { return step_; }
  int64_t epoch() const { return epoch_; }  // the epoch the next step belongs to
  int64_t step_in_epoch() const { return epoch_step_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  // Steps the run will have done when finished(): min(epochs * steps_per_epoch, max_steps).
  int64_t planned_steps() const;
  bool epoch_just_ended() const { return epoch_ended_; }  // by the last step()
  // The current epoch's means so far (kind log, no timings), e.g. for a progress bar.
  SearchRecord snapshot() const;
  double current_lr() const { return double(schedule_.lr_at(epoch_)); }
  double elapsed_seconds() const;

  // Extending a run: a new epoch count (> the epochs already begun or done, or equal when
  // the current epoch is complete) or max_steps (0: none). The cosine schedule stretches to
  // the new epoch count from here on. Throw Error when the value is too small.
  void set_epochs(int64_t epochs);
  void set_max_steps(int64_t max_steps);

  // Everything needed to continue exactly (see the file comment).
  io::Checkpoint checkpoint() const;
  // Loads a checkpoint() of a session with the same space, data and options. Throws Error
  // naming the checkpoint's source and the entry at fault; the session is then unusable.
  void restore(const io::Checkpoint& ckpt);

  Derived derive() const { return algorithms::derive(space_, graph_, arch_); }

  const spec::Space& space() const { return space_; }
  const SearchOptions& options() const { return options_; }
  const ir::Graph& graph() const { return graph_; }
  const ir::ParameterStore& params() const { return params_; }
  const ArchState& arch() const { return arch_; }
  const Sgd& weight_optimizer() const { return sgd_; }
  const Adam& arch_optimizer() const { return adam_; }

 private:
  struct Totals {  // sums over the current epoch's steps
    double train_loss = 0, val_loss = 0;
    int64_t train_correct = 0, val_correct = 0, train_count = 0, val_count = 0;
  };
  SearchRecord record(SearchRecord::Kind kind);
  // Throws Error (engine/optim/divergence.h) when the step just run produced a non-finite
  // loss, gradient norm or architecture parameter; called before anything is recorded.
  void check_finite(const StepMetrics& m) const;

  spec::Space space_;
  SearchOptions options_;
  const Algorithm* algorithm_;
  ir::Graph graph_;
  ir::ParameterStore params_;
  ArchState arch_;
  Sgd sgd_;
  Adam adam_;
  CosineSchedule schedule_;
  Dataset data_;
  TrainValSplit split_;
  BatchIterator train_it_;
  BatchIterator val_it_;
  Rng rng_;  // session stream for algorithms that sample (checkpointed; DARTS draws none)
  int64_t steps_per_epoch_ = 0;
  int64_t epoch_ = 0, epoch_step_ = 0, step_ = 0;
  bool epoch_ended_ = false;
  Totals totals_;
  double elapsed_before_ = 0;  // seconds spent before this session resumed
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point interval_start_, epoch_start_;
  int64_t interval_steps_ = 0, epoch_steps_timed_ = 0;
  std::function<void(const SearchRecord&)> callback_;
};

// The step counters of a search or train checkpoint, checked against each other (a checksum
// only proves the file is as written, not that a hand-edited or foreign file makes sense):
// step = epoch * steps_per_epoch + epoch_step, every count >= 0, epoch_step below
// steps_per_epoch. Also refuses any tensor entry holding inf or NaN. Throws Error naming the
// checkpoint and the entry.
struct StepCounters {
  int64_t step = 0, epoch = 0, epoch_step = 0;
};
StepCounters read_step_counters(const io::Checkpoint& ckpt, int64_t steps_per_epoch);

// ISTA-NAS state from a checkpoint into a state prepared for the same space: the supports
// (and, with_codes, the codes, the exact z and the statistics); sets the active set.
void restore_sparse_nodes(const ir::Graph& graph, ArchState& arch, const io::Checkpoint& ckpt,
                          bool with_codes);

// Derivation from a search checkpoint without data or optimizers: compiles `space` (fitted
// as the run fitted it) and reads the architecture logits. Throws Error as restore().
Derived derive_from_checkpoint(const spec::Space& space, const io::Checkpoint& ckpt);

}  // namespace cellgraph::algorithms
