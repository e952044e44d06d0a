// The plan of one step: which IR nodes run, in which order, and when each value can be
// released. Computed from the active set (one flag per candidate) once per step; the
// executor follows it without re-deriving anything.
//
// Rules, in graph order:
//  - a node of an inactive candidate is skipped; its outputs are absent (a forward-only
//    candidate runs like an active one; the executor just records no autodiff for it);
//  - so is `none`, active or not: its output is zero, and a sum without the term, with
//    the term's coefficient gradient <dy, 0> = 0 left unwritten, is the same sum (DARTS
//    would otherwise fill and keep a zero tensor per edge);
//  - a candidate node with an absent input is skipped too: in a search cell every
//    candidate op maps a zero input to zero (BNs there have no affine), so its output is
//    zero without computing it;
//  - so is a node shared between candidates (absent_with_input) with an absent input;
//  - a summing node (drops_absent_inputs) sums only inputs that are present and whose
//    candidate is active; with none left its output is absent;
//  - any other node with an absent input receives zeros for it;
//  - finally, nodes none of whose outputs reach the logits (or the auxiliary logits, or a
//    recurrent network's carried state graph.state_out) are skipped.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "engine/ir/graph.h"

namespace cellgraph::sched {

// Per graph candidate: how it runs this step.
using ActiveSet = std::vector<uint8_t>;
inline constexpr uint8_t kInactive = 0;  // not computed; its output reads as absent
inline constexpr uint8_t kActive = 1;    // computed, recorded for backward
// Computed without recording autodiff (NASP's architecture step): its output feeds the
// gradient of its coefficient, but no gradient flows into it and it keeps no activations.
inline constexpr uint8_t kForwardOnly = 2;

ActiveSet all_active(const ir::Graph& graph);

struct Plan {
  std::vector<ir::NodeId> order;  // nodes to run
  std::vector<uint8_t> absent;    // per value: skipped (reads as zero)
  std::vector<int32_t> last_use;  // per value: position in `order` of its last reader
  std::vector<uint8_t> active;    // the active set it was made for
  int64_t skipped_nodes = 0;
  // A cut plan's (make_forward_only_plan) values read from RunOptions::given, per value;
  // empty in a plan make_plan made.
  std::vector<uint8_t> given;
  // A cut plan's position of each node in the plan it was cut from, which seeds dropout
  // and drop-path masks as there; empty: its index in `order`.
  std::vector<int32_t> seed_position;
};

Plan make_plan(const ir::Graph& graph, const ActiveSet& active);

// The second run of one batch in an architecture gradient formed in two
// (algorithms/two_pass_gradient.h). `first` ran the active candidates alone; `full` is the
// plan with forward-only candidates too. The cut keeps of `full` the forward-only
// candidates' nodes, the weighted sums with forward-only terms (each summing those terms
// alone) and whatever they read that `first` did not compute; every other value they read
// is one `first` computed (Plan::given), equal in both runs since a forward-only term's
// coefficient is 0 and the weighted sum leaves such terms out. A weighted sum whose
// output is given runs for its coefficients' gradient alone. nullopt where a weighted sum
// would be left with no term although its output is read (all its terms were the active
// candidates', whose input first lacked): there the cut does not apply.
std::optional<Plan> make_forward_only_plan(const ir::Graph& graph, const Plan& full,
                                           const Plan& first);

// Whether input i of node n is summed under this plan (only for summing nodes).
bool input_summed(const Plan& plan, const ir::Node& n, size_t i);

}  // namespace cellgraph::sched
