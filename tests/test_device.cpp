// Choosing a device: parameters, batches and the architecture state are made or moved
// there; a device that is not available is backend_for's named error before any work.
// Without a GPU the CUDA side checks that error; with one, that the values arrive intact.
#include <functional>
#include <string>

#include <doctest/doctest.h>

#include "algorithms/arch_state.h"
#include "engine/backends/backend.h"
#include "engine/data/batches.h"
#include "engine/error.h"
#include "engine/ir/parameter_store.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/random_batch.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;

namespace {
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

ir::Graph tiny_graph() {
  return spec::compile(spec::parse_string(testing::kTinySpace, "tiny.json"));
}
}  // namespace

TEST_CASE("device: names, and the CPU placement is the default one, shared not copied") {
  CHECK(device_named("cpu") == Device::cpu);
  CHECK(device_named("cuda") == Device::cuda);
  CHECK_FALSE(device_named("gpu").has_value());
  CHECK_FALSE(device_named("").has_value());

  const ir::Graph graph = tiny_graph();
  const ir::ParameterStore implicit(graph, 5);
  const ir::ParameterStore explicit_cpu(graph, 5, Device::cpu);
  CHECK(explicit_cpu.device() == Device::cpu);
  REQUIRE(implicit.all().size() == explicit_cpu.all().size());
  for (size_t i = 0; i < implicit.all().size(); ++i) {
    CHECK(explicit_cpu.all()[i].device() == Device::cpu);
    CHECK(explicit_cpu.all()[i].value().to_vector() == implicit.all()[i].value().to_vector());
    CHECK(explicit_cpu.all()[i].requires_grad() == implicit.all()[i].requires_grad());
  }

  const Batch batch = testing::random_batch(4, 1, 8, 3, 7);
  const Batch same = to_device(batch, Device::cpu);
  CHECK(same.images.shares_storage_with(batch.images));
  CHECK(same.labels.shares_storage_with(batch.labels));
  CHECK(same.indices == batch.indices);

  algorithms::ArchState arch = algorithms::initial_arch_state(graph, 0.5, 9);
  const std::vector<Var> before = arch.logits;
  algorithms::move_to_device(arch, Device::cpu);
  REQUIRE(arch.logits.size() == before.size());
  for (size_t g = 0; g < before.size(); ++g)  // the same Vars: an optimizer's handles hold
    CHECK(arch.logits[g].impl() == before[g].impl());
}

TEST_CASE("device: cuda without a usable device is backend_for's error, before any work") {
  const ir::Graph graph = tiny_graph();
  if (backend_available(Device::cuda)) {
    // Parameters and the state arrive with their values; the batch too.
    const ir::ParameterStore cpu(graph, 5);
    const ir::ParameterStore gpu(graph, 5, Device::cuda);
    CHECK(gpu.device() == Device::cuda);
    for (size_t i = 0; i < cpu.all().size(); ++i) {
      CHECK(gpu.all()[i].device() == Device::cuda);
      CHECK(gpu.all()[i].name() == cpu.all()[i].name());
      CHECK(gpu.all()[i].value().to_vector() == cpu.all()[i].value().to_vector());
    }
    const Batch batch = testing::random_batch(4, 1, 8, 3, 7);
    const Batch moved = to_device(batch, Device::cuda);
    CHECK(moved.images.device() == Device::cuda);
    CHECK(moved.images.to_vector() == batch.images.to_vector());
    CHECK(moved.labels.to_vector() == batch.labels.to_vector());
    algorithms::ArchState arch = algorithms::initial_arch_state(graph, 0.5, 9);
    const std::vector<float> alpha = arch.logits[0].value().to_vector();
    algorithms::move_to_device(arch, Device::cuda);
    CHECK(arch.logits[0].device() == Device::cuda);
    CHECK(arch.logits[0].requires_grad());
    CHECK(arch.logits[0].value().to_vector() == alpha);
    return;
  }
  const std::string expected = message_of([] { backend_for(Device::cuda); });
  CHECK(expected.find("device 'cuda' requested but") == 0);
  CHECK(message_of([&] { ir::ParameterStore(graph, 5, Device::cuda); }) == expected);
  const Batch batch = testing::random_batch(4, 1, 8, 3, 7);
  CHECK(message_of([&] { to_device(batch, Device::cuda); }) == expected);
  algorithms::ArchState arch = algorithms::initial_arch_state(graph, 0.5, 9);
  CHECK(message_of([&] { algorithms::move_to_device(arch, Device::cuda); }) == expected);
  MESSAGE("no CUDA device available (or built without CUDA): checked the named error only");
}
