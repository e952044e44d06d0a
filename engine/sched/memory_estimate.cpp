#include "engine/sched/memory_estimate.h"

#include <cstdio>

#include "engine/error.h"
#include "engine/machine.h"

namespace cellgraph::sched {

namespace {
std::string gib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", bytes / double(int64_t(1) << 30));
  return text;
}
}  // namespace

int64_t planned_activation_bytes(const ir::Graph& graph, const Plan& plan) {
  int64_t elements = 0;
  for (ir::NodeId id : plan.order)
    for (ir::ValueId out : graph.node(id).outputs) elements += graph.value(out).shape.numel();
  return elements * int64_t(sizeof(float));
}

void require_batch_fits(const ir::Graph& graph, const Plan& plan, int64_t batch,
                        const std::string& flag) {
  const int64_t memory = physical_memory_bytes();
  const int64_t per_sample = planned_activation_bytes(graph, plan);
  if (memory <= 0 || per_sample <= 0) return;
  const double estimate = double(per_sample) * double(batch);
  if (estimate <= double(memory)) return;
  const int64_t fits = memory / per_sample;
  throw error(flag, ": a step would hold about ", gib(estimate), " of activations (",
              per_sample / 1024, " KiB per sample), more than this machine's ", gib(double(memory)),
              " of memory; ",
              fits > 0 ? detail::concat("use a batch of at most ", fits)
                       : std::string("the network is too large for this machine"));
}

}  // namespace cellgraph::sched
