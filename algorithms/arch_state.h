// The architecture state algorithm passes update, and what the scheduler sees of it: one
// coefficient matrix per architecture group of the graph and the active set (one flag per
// candidate).
//
// How the coefficients come from the state is the algorithm's relaxation (algorithm.h):
// softmax(alpha) per row by default (DARTS, MiLeNAS); NASP's one-hot rows of its box
// matrix A (nasp.cpp); ISTA-NAS' sparse-code coefficients (ista.cpp). The state itself is
// generic: the logits (alpha, or A), the active set, and whatever an algorithm keeps
// beyond them in `extra` (ISTA-NAS: per node a dictionary, a code and a support).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/autodiff/var.h"
#include "engine/ir/graph.h"
#include "engine/sched/plan.h"

namespace cellgraph::algorithms {

class Algorithm;

// What an algorithm keeps beyond the logits; copied with the state.
struct AlgorithmState {
  virtual ~AlgorithmState() = default;
  virtual std::unique_ptr<AlgorithmState> clone() const = 0;
};

// A copyable owner of an AlgorithmState (deep copy), empty for most algorithms.
class ExtraState {
 public:
  ExtraState() = default;
  explicit ExtraState(std::unique_ptr<AlgorithmState> s) : state_(std::move(s)) {}
  ExtraState(const ExtraState& o) : state_(o.state_ ? o.state_->clone() : nullptr) {}
  ExtraState& operator=(const ExtraState& o) {
    if (this != &o) state_ = o.state_ ? o.state_->clone() : nullptr;
    return *this;
  }
  ExtraState(ExtraState&&) = default;
  ExtraState& operator=(ExtraState&&) = default;
  AlgorithmState* get() const { return state_.get(); }

 private:
  std::unique_ptr<AlgorithmState> state_;
};

struct ArchState {
  // Whose relaxation the coefficients follow (null: softmax, for states built by hand).
  const Algorithm* algorithm = nullptr;
  std::vector<Var> logits;  // per group [rows, columns]: alpha (softmax) or A (NASP)
  sched::ActiveSet active;  // per graph candidate
  ExtraState extra;
};

// Logits start at init_std * N(0, 1), except entries the spec initialises (ArchGroup::init);
// every candidate active; no algorithm (softmax).
ArchState initial_arch_state(const ir::Graph& graph, double init_std, uint64_t seed);

// What the architecture optimizer trains (the algorithm's variables(); the logits).
std::vector<Var>& arch_variables(ArchState& state);

// softmax over each row of each group's logits: the DARTS relaxation. Records autodiff
// when the logits require a gradient and grad mode is on.
std::vector<Var> softmax_coefficients(const ArchState& state);

// The state's relaxation as a differentiable function of its variables (the algorithm's
// relaxed_coefficients(); softmax without an algorithm).
std::vector<Var> relaxed_coefficients(const ArchState& state);

// The coefficient matrices the state's relaxation gives, without a gradient (for weight
// steps and evaluation).
std::vector<Var> current_coefficients(const ArchState& state);

// Row-major host copies of what derivation ranks (the relaxation's ranking_values()).
std::vector<std::vector<float>> coefficient_values(const ArchState& state);

// Puts the logits and arch_variables() (ISTA-NAS: its codes) on `device`: new leaf Vars
// (same names and values) for those elsewhere; a CPU state keeps its Vars. Call it before
// an optimizer takes arch_variables(), which it holds by handle. Coefficients made from
// the state follow its device. Throws Error (backend_for's) when the device is not
// available.
void move_to_device(ArchState& state, Device device);

}  // namespace cellgraph::algorithms
