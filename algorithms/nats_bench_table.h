// The NATS-Bench accuracy table as compiled into cellgraph_algorithms: one row per cell, in
// index order. The definition is generated at build time from data/nats_bench_tss.csv (see
// cmake/embed_nats_table.cmake); only nats_bench.cpp reads it.
//
// Why embedded rather than read from the CSV at run time: the runner has no install layout
// and is run from the build tree, from a copy, or from tests in scratch directories; a
// compiled-in table is found wherever the binary goes, and cannot go missing or stale
// against the code that computes the indices. The arch strings are not embedded (they follow
// from the index, nats_bench.h), so the table costs 15,625 x 32 bytes.
#pragma once

#include <cstdint>

namespace cellgraph::algorithms::detail {

struct NatsTableRow {
  int32_t index;
  double cifar10, cifar100, imagenet16_120;
};

extern const NatsTableRow kNatsTable[];
extern const int64_t kNatsTableRows;

}  // namespace cellgraph::algorithms::detail
