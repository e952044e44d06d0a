// NATS-Bench topology search space (NATS-Bench TSS, the NAS-Bench-201 cell space): a cell's
// arch string, its index among the 15,625 cells, and the test accuracies NATS-Bench measured
// for it (data/nats_bench_tss.csv, embedded into the library at build time).
//
// A NATS cell has four nodes: node 0 is the cell input, node 3 the output, and node j sums
// one op of each earlier node (6 edges). Its arch string lists the ops node by node, each
// with the node it reads: |op~0|+|op~0|op~1|+|op~0|op~1|op~2|.
//
// The index is computed, not looked up: NATS-Bench enumerates the cells in base 5 (op order
// none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3; edge 1<-0 the most
// significant digit, then 2<-0, 2<-1, 3<-0, 3<-1, 3<-2) and numbers them in the order that
// CPython's random.seed(88); random.shuffle(...) leaves that list in (cpython_random.h).
//
// In cellgraph a NATS cell is a one-input cell with three nodes in order (the names are
// free), the last one its output, every edge one op of the NATS set, and node k reading the
// input and the nodes before it once each. A `none` edge may be absent (a derived or
// hand-written cell may drop it): it reads as `none`. The figures belong to the cell inside
// NATS-Bench's own macro network and training; the lookup does not compare the network
// around the cell (a search at a smaller proxy is looked up the same way).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spec/space.h"

namespace cellgraph::algorithms {

enum class NatsOp : uint8_t { none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3 };
inline constexpr int kNatsOpCount = 5;
inline constexpr int kNatsEdgeCount = 6;
inline constexpr int64_t kNatsCellCount = 15625;  // 5^6

// The ops' names in NATS-Bench order (the enum's order).
const std::array<std::string_view, kNatsOpCount>& nats_op_names();

// Edge e of a cell runs from node kNatsEdgeFrom[e] into node kNatsEdgeTo[e] (string order).
inline constexpr std::array<int, kNatsEdgeCount> kNatsEdgeFrom{0, 0, 1, 0, 1, 2};
inline constexpr std::array<int, kNatsEdgeCount> kNatsEdgeTo{1, 2, 2, 3, 3, 3};

struct NatsCell {
  std::array<NatsOp, kNatsEdgeCount> ops{};  // in edge order (kNatsEdgeFrom/To)
  bool operator==(const NatsCell&) const = default;
};

// Parses "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|". Throws Error naming the string, the
// character position and what was expected there.
NatsCell parse_nats_arch(std::string_view arch);
std::string nats_arch_string(const NatsCell& cell);

// The cell's NATS-Bench index (0 .. 15624), and back. nats_cell_at throws Error for an index
// outside that range.
int64_t nats_index(const NatsCell& cell);
NatsCell nats_cell_at(int64_t index);

// Test accuracy in percent after 200 epochs, mean over NATS-Bench's seeds.
struct NatsAccuracy {
  double cifar10 = 0, cifar100 = 0, imagenet16_120 = 0;
};
NatsAccuracy nats_accuracy(int64_t index);  // throws Error outside 0 .. 15624

struct NatsEntry {
  int64_t index = 0;
  std::string arch;
  NatsAccuracy accuracy;
};
NatsEntry nats_entry(int64_t index);
NatsEntry nats_entry(std::string_view arch);

// The NATS cell a fixed spec cell is, or nullopt with the reason in `why` (when given): not
// one input, not three nodes, an op outside the NATS set, a mixed (search) edge, ...
std::optional<NatsCell> nats_cell_of(const spec::Cell& cell, std::string* why = nullptr);

// The NATS-Bench entry of a fixed network whose body stacks one cell type, a NATS cell (a
// derived.json of a NATS-Bench search, examples/networks/nats_tss_*.json); nullopt for any
// other network. Cheap enough to call every epoch (the enumeration is built once).
std::optional<NatsEntry> nats_lookup(const spec::Space& fixed);

// The skip-connection ratio of a fixed network: per cell type, the fraction of its edges
// whose op is skip_connect, and over all its cell types together (each type counted once,
// not per instance). The edges are the cell's edges as the spec lists them (a DARTS cell
// derived with keep 2: 8 per cell, so normal and reduce give 16 in all); a NATS cell counts
// all 6 of its edges, a dropped `none` edge included. Recurrent cells are left out.
// A high ratio is the sign of a collapsed DARTS search (RARTS, Table 4).
struct SkipCount {
  std::string cell;  // the cell type's name
  int skip = 0, edges = 0;
  double ratio() const { return edges > 0 ? double(skip) / edges : 0.0; }
};
struct SkipRatio {
  std::vector<SkipCount> cells;  // in spec order
  int skip = 0, edges = 0;       // all cell types together
  double ratio() const { return edges > 0 ? double(skip) / edges : 0.0; }
};
// Throws Error (naming the spec file and the edge) when an edge still has several ops.
SkipRatio skip_ratio(const spec::Space& fixed);

}  // namespace cellgraph::algorithms
