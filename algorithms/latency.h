// Latency tables measured by cellgraph itself: the forward time of every candidate op of
// every mixed edge, at the input shape that edge really has in the network, on this machine
// (in the spirit of FBNet's runtime look-up table and ProxylessNAS' latency model: the
// network's latency is estimated as the sum of its ops' entries).
//
// Why here and not in engine/sched: the table is keyed by what the spec names (cell type,
// edge, op), is read and written as JSON (spec/json_value.h; the engine never sees JSON),
// and its consumers are a search algorithm (RARTS' latency penalty) and the runner. The
// timing itself only walks IR nodes through ops::apply, as the executor does.
//
// Measurement: per candidate, its own nodes and the shared ReLU it reads (builder.h), fed
// a seeded random input of the edge's shape at `batch`, in eval mode without autodiff; a few
// warm-up runs, then the median of `repeats` timed runs. `none` is 0 (it never runs), so is
// an identity skip (no node). `rest_ms` times, the same way, every node outside the
// candidates (stem, preprocessing, node sums, fixed edges and blocks, head; not the mixed
// edges' weighted sums): a derived network's estimate is rest_ms plus its ops' entries.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "engine/tensor/tensor.h"
#include "spec/json_value.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

struct LatencyOptions {
  int64_t batch = 1;
  int warmup = 3;    // untimed runs first
  int repeats = 15;  // timed runs; the median is kept
};

struct LatencyTable {
  std::string spec;            // what was measured (a path, for the record)
  std::string space;           // the space's name
  std::vector<int64_t> input;  // [C, H, W] the network was compiled for
  std::string device;          // "CPU: <model>"
  int threads = 0;
  int64_t batch = 1;
  std::string date;  // UTC, ISO 8601
  int warmup = 0, repeats = 0;
  double rest_ms = 0;
  std::map<std::string, int64_t> instances;  // per cell type: its instances in the network
  // cell type -> edge (its architecture row label, "n2/e1<-n1") -> op -> milliseconds, summed
  // over the cell type's instances (what RARTS' Lat holds).
  std::map<std::string, std::map<std::string, std::map<std::string, double>>> ms;
  std::string file = "latency table";  // where it was read from, for messages

  // One entry; throws Error naming the table file and the missing key.
  double at(const std::string& cell, const std::string& edge, const std::string& op) const;
};

// Measures every candidate of `graph` (compiled from `space`) with seeded weights.
LatencyTable measure_latency(const ir::Graph& graph, const spec::Space& space,
                             const LatencyOptions& options);

// The median forward time of a fixed network (eval mode, no autodiff) at `batch`, in ms:
// the end-to-end latency a table's estimate is compared with. Throws Error for a supernet.
double measure_forward_ms(const ir::Graph& graph, const ir::ParameterStore& params,
                          const LatencyOptions& options);

spec::JsonValue latency_json(const LatencyTable& table);
// Reads a table written by latency_json; throws Error "FILE:POINTER: ..." for what is
// missing or malformed.
LatencyTable read_latency_table(const std::string& path);

// Per architecture group, the [rows, columns] matrix Lat[e, k] = at(cell, row e, column k);
// undefined for a group that is not an edge-op group. Throws Error naming the table when an edge or
// op of the graph is not in it (a table of another space).
std::vector<Tensor> latency_matrices(const ir::Graph& graph, const LatencyTable& table);

// Per row of `logits` ([rows, cols]) with p = softmax(row): the gradient of <p, lat_row>,
// p_j (lat_j - <p, lat_row>).
Tensor latency_gradient(const Tensor& logits, const Tensor& latency);
// sum over rows of <softmax(row), lat_row>: the relaxed network's expected latency.
double expected_latency(const Tensor& logits, const Tensor& latency);

// The table's estimate of a fixed network derived from the table's space: rest_ms plus, per
// cell type, the entry of every edge's op (summed over instances). A derived edge is matched
// to the search edge of its node with the same `from` (the first not yet used); an edge with
// no such row was fixed in the search cell too, and runs in rest_ms. Throws Error when the
// matched row has no entry for the edge's op.
double estimated_latency_ms(const LatencyTable& table, const spec::Space& fixed);

}  // namespace cellgraph::algorithms
