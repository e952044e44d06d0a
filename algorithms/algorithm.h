// A search algorithm is one object, in one file, that owns everything the rest of the system
// needs to know about it: its name and help, its hyperparameters as a table, its relaxation
// (how the architecture state becomes coefficient matrices and an active set, and what
// derivation ranks), its state beyond the logits and how that state goes into a checkpoint,
// what it adds to the per-epoch record, and its step as a readable list of named passes.
// The registry (registry.cpp) lists the algorithms; the runner and the search session only
// ever talk to this interface, so adding an algorithm touches no file outside algorithms/
// besides its docs and tests.
//
// The defaults below are DARTS' softmax relaxation and keep-k derivation; an algorithm
// overrides what differs. Algorithm objects are stateless singletons: the per-run state
// lives in ArchState (arch_state.h), whose `extra` holds what an algorithm keeps beyond the
// logits (ISTA-NAS: codes, dictionaries, supports).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "algorithms/arch_state.h"
#include "algorithms/derive.h"
#include "algorithms/hyperparameters.h"
#include "algorithms/run_loop.h"
#include "algorithms/step_context.h"
#include "engine/io/checkpoint.h"
#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "spec/json_value.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

// A search network trained while searched (ISTA-NAS one-stage), as a fixed network with
// its weights.
struct TrainedNetwork {
  spec::Space space;
  ir::Graph graph;
  ir::ParameterStore params;
  std::string how;  // "coefficients absorbed into the edge BNs"
};

class Algorithm {
 public:
  Algorithm(std::string name, std::string description)
      : name_(std::move(name)), description_(std::move(description)) {}
  virtual ~Algorithm() = default;
  Algorithm(const Algorithm&) = delete;
  Algorithm& operator=(const Algorithm&) = delete;

  const std::string& name() const { return name_; }
  const std::string& description() const { return description_; }  // one line for --help

  // Its own hyperparameters (the search loop's shared ones are in search_options.h).
  virtual std::vector<Hyperparameter> hyperparameters() const { return {}; }
  HyperValues default_hyperparameters() const { return HyperValues(hyperparameters()); }

  // The step, run in order once per search step.
  virtual std::vector<NamedPass> passes() const = 0;

  // ---- Relaxation ----
  // The starting state (logits from the spec's init and init_std, seeded; `algorithm` set
  // to this). Throws Error naming the spec place when the space does not fit the algorithm.
  virtual ArchState initial_state(const ir::Graph& graph, const spec::Space& space,
                                  const HyperValues& hyper, uint64_t seed) const;
  // The coefficient matrices, without gradient (weight steps, evaluation, records).
  virtual std::vector<Var> coefficients(const ArchState& arch) const;
  // The same as a differentiable function of the architecture variables (recorded for
  // autodiff in grad mode): what an architecture pass backpropagates into. Shared passes
  // (DARTS' first- and second-order gradients) reach the variables through it, so they
  // serve any relaxation.
  virtual std::vector<Var> relaxed_coefficients(const ArchState& arch) const;
  // What the architecture optimizer (Adam) trains.
  virtual std::vector<Var>& variables(ArchState& arch) const { return arch.logits; }
  // Per group, row-major: what derivation ranks and records report (default: coefficients).
  virtual std::vector<std::vector<float>> ranking_values(const ArchState& arch) const;
  virtual Derived derive(const spec::Space& space, const ir::Graph& graph,
                         const ArchState& arch) const;
  // The derived network's starting weights by parameter name, when derivation keeps some of
  // the search network's (RARTS' width search: the surviving channels). Default: none, the
  // derived network trains from scratch.
  virtual std::vector<std::pair<std::string, Tensor>> derived_weights(
      const Derived& /*derived*/, const ir::Graph& /*graph*/, const ArchState& /*arch*/,
      const ir::ParameterStore& /*params*/) const {
    return {};
  }
  // Whether the relaxation handles channel-score groups (a spec with "width_search"); the
  // default initial_state refuses such a graph otherwise.
  virtual bool searches_widths() const { return false; }
  // Why the algorithm cannot search a recurrent cell (a language model), or "" when it can;
  // the search session refuses such a space with this reason.
  virtual std::string recurrent_refusal() const { return ""; }

  // ---- State in checkpoints (logits, active set and optimizers are saved for everyone) ----
  virtual void save(const ir::Graph& graph, const ArchState& arch, io::Checkpoint& ckpt) const;
  // `full`: everything a resumed step reads; otherwise what derivation needs (derive from a
  // checkpoint, without data or options).
  virtual void restore(const ir::Graph& graph, ArchState& arch, const io::Checkpoint& ckpt,
                       bool full) const;

  // ---- Records ----
  // Adds the algorithm's own fields to an epoch record (metrics.jsonl), after the common ones.
  virtual void describe_epoch(const ir::Graph& graph, const ArchState& arch,
                              spec::JsonValue& record) const;
  // Called after each epoch record (`epoch`: the 0-based epoch that ended): per-epoch
  // statistics restart, per-epoch rules (a termination check) run.
  virtual void end_epoch(const ir::Graph& graph, ArchState& arch, const HyperValues& hyper,
                         int64_t epoch) const;

  // ---- Schedule ----
  // The weights' learning rate in `epoch` (0-based). Default: cosine from lr to lr_min over
  // the run's epochs (DARTS).
  virtual float weight_lr(const ArchState& arch, const HyperValues& hyper, const LoopOptions& loop,
                          int64_t epoch) const;

  // ---- Data and products ----
  // False: the step evaluates no validation batch, and records carry no validation fields.
  virtual bool has_validation_step() const { return true; }
  // True: the search trains the final network itself (export and eval take its run).
  virtual bool trains_network() const { return false; }
  // The trained network of such a search from its checkpoint; `space` is the run's space
  // fitted to its data. Default: throws (no such network).
  virtual TrainedNetwork trained_network(const spec::Space& space,
                                         const io::Checkpoint& ckpt) const;

 private:
  std::string name_, description_;
};

// The registry, in the order help texts list them.
const std::vector<const Algorithm*>& algorithms();
// Throws Error listing the known names when `name` is not one.
const Algorithm& find_algorithm(const std::string& name);
// "darts, darts2, ... or ista-onestage", for help texts.
std::string algorithm_names();

// The algorithm's starting state with its default hyperparameters (tests, benchmarks).
ArchState prepared_arch_state(const Algorithm& algorithm, const ir::Graph& graph,
                              const spec::Space& space, uint64_t seed);

// Runs the algorithm's passes on one step.
void run_step(const Algorithm& algorithm, StepContext& ctx);

}  // namespace cellgraph::algorithms
