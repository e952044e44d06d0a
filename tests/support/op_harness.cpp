#include "tests/support/op_harness.h"

#include <cmath>
#include <set>
#include <sstream>
#include <utility>

#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"

namespace cellgraph::testing {

namespace {
std::vector<OpFamily>& families() {
  static std::vector<OpFamily> list;
  return list;
}

// "conv2d '3x3 pad 1, bias' on cuda"
std::string describe(const OpCase& c, Device device) {
  return std::string(op_name(c.op.kind)) + " '" + c.name + "' on " +
         std::string(device_name(device));
}

// Adds a line to `problems` when `got` and `want` disagree.
void compare(std::vector<std::string>& problems, const std::string& what, const Tensor& got,
             const Tensor& want, double tolerance) {
  const Agreement a = agree(what, got, want, tolerance);
  if (a.mismatched == 0) return;
  std::ostringstream line;
  line << what << ": " << a.mismatched << " of " << a.compared
       << " elements differ from the CPU's beyond " << tolerance << "\n"
       << a.report;
  problems.push_back(line.str());
}

// `all`'s gradients, each checked input alone: as in the run with every gradient wanted,
// and nothing for the other inputs.
void compare_single_gradients(std::vector<std::string>& problems, Device device, const OpCase& c,
                              const OpRun& all) {
  const std::vector<int> checked = checked_inputs(c.op);
  if (checked.size() < 2) return;  // the run with every gradient wanted was this one
  for (int i : checked) {
    const OpRun alone = run_op_case(device, c, {i});
    const std::string where =
        describe(c, device) + ", only input " + std::to_string(i) + "'s gradient wanted";
    if (!alone.grads[size_t(i)].defined())
      problems.push_back(where + ": no gradient arrived");
    else if (all.grads[size_t(i)].defined())
      compare(problems, where + ": gradient", alone.grads[size_t(i)], all.grads[size_t(i)],
              c.backend_tolerance);
    for (size_t j = 0; j < alone.grads.size(); ++j)
      if (int(j) != i && alone.grads[j].defined())
        problems.push_back(where + ": input " + std::to_string(j) +
                           " got a gradient it did not ask for");
  }
}
}  // namespace

const std::vector<OpFamily>& op_families() { return families(); }

bool add_op_family(const char* name, OpCaseList cases) noexcept {
  families().push_back({name, cases});
  return true;
}

std::string skip_reason(Device device, OpKind kind) {
  if (!backend_available(device)) {
    try {
      backend_for(device);
    } catch (const Error& e) {
      return e.what();
    }
    return "backend unavailable";
  }
  if (!backend_for(device).supports(kind))
    return "the " + std::string(device_name(device)) + " backend has no kernel for op '" +
           op_name(kind) + "'";
  return "";
}

Agreement agree(const std::string& what, const Tensor& got, const Tensor& want, double tolerance) {
  Agreement a;
  std::ostringstream report;
  if (got.shape() != want.shape()) {
    a.mismatched = 1;
    a.report = what + ": shape " + got.shape().str() + ", the CPU's " + want.shape().str();
    return a;
  }
  const std::vector<float> g = got.to_vector(), w = want.to_vector();
  for (size_t i = 0; i < g.size(); ++i) {
    ++a.compared;
    const double x = g[i], y = w[i];
    // An infinity agrees only with itself (the tolerance would grow infinite with it).
    const bool finite = std::isfinite(x) && std::isfinite(y);
    if (x == y || (finite && std::fabs(x - y) <= tolerance * (1.0 + std::fabs(y)))) continue;
    if (a.mismatched++ < 5) report << what << " [" << i << "]: got " << x << ", CPU " << y << "\n";
  }
  a.report = report.str();
  return a;
}

OpRun run_op_case(Device device, const OpCase& c, const std::vector<int>& wanted) {
  const GradCheck& spec = c.op;
  std::vector<Var> vars;
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    if (!spec.inputs[i].defined()) {
      vars.emplace_back();
      continue;
    }
    bool wants = false;
    for (int w : wanted) wants = wants || w == int(i);
    // A private copy: batch norm updates its running statistics in place.
    vars.emplace_back(spec.inputs[i].clone().to(device), wants);
  }
  const std::vector<Var> outs = ops::apply(spec.kind, spec.attrs, vars);
  // The same output weights R_o as gradcheck's L = sum_o <out_o, R_o>.
  Rng rng(spec.seed);
  std::vector<Tensor> seeds;
  seeds.reserve(outs.size());
  for (const Var& out : outs) seeds.push_back(uniform_tensor(out.shape(), -1.0f, 1.0f, rng));
  if (!wanted.empty()) {
    if (device != Device::cpu)
      for (Tensor& s : seeds) s = s.to(device);
    backward(outs, seeds);
  }
  OpRun run;
  for (const Var& out : outs) run.outputs.push_back(out.value().to(Device::cpu));
  for (const Var& v : vars) {
    run.inputs.push_back(v.defined() ? v.value().to(Device::cpu) : Tensor());
    run.grads.push_back(v.defined() && v.has_grad() ? v.grad().to(Device::cpu) : Tensor());
  }
  return run;
}

std::vector<std::string> compare_with_cpu(Device device, const OpCase& c, const OpRun& cpu) {
  std::vector<std::string> problems;
  const std::string where = describe(c, device);
  const OpRun run = run_op_case(device, c, checked_inputs(c.op));
  if (run.outputs.size() != cpu.outputs.size()) {
    problems.push_back(where + ": " + std::to_string(run.outputs.size()) + " outputs, the CPU " +
                       std::to_string(cpu.outputs.size()));
    return problems;
  }
  for (size_t o = 0; o < cpu.outputs.size(); ++o)
    compare(problems, where + ": output " + std::to_string(o), run.outputs[o], cpu.outputs[o],
            c.backend_tolerance);
  for (size_t i = 0; i < cpu.inputs.size(); ++i) {
    if (!cpu.inputs[i].defined()) continue;
    const std::string input = where + ": input " + std::to_string(i);
    compare(problems, input + " after the run", run.inputs[i], cpu.inputs[i], c.backend_tolerance);
    if (run.grads[i].defined() && cpu.grads[i].defined())
      compare(problems, input + "'s gradient", run.grads[i], cpu.grads[i], c.backend_tolerance);
    else if (run.grads[i].defined())
      problems.push_back(input + " got a gradient, the CPU none");
    else if (cpu.grads[i].defined())
      problems.push_back(input + " got no gradient, the CPU one");
  }
  compare_single_gradients(problems, device, c, run);
  return problems;
}

void run_op_cases(const std::vector<OpCase>& cases) {
  REQUIRE(!cases.empty());
  std::set<std::string> told;  // each skip is said once per family
  for (const OpCase& c : cases) {
    INFO(std::string(op_name(c.op.kind)), " '", c.name, "'");
    // 1. CPU gradients against central differences (an op whose schema has no
    // differentiable input, zero, has nothing to check).
    if (!checked_inputs(c.op).empty()) {
      CHECK_GRADIENTS(c.op);
    }
    const OpRun cpu = run_op_case(Device::cpu, c, checked_inputs(c.op));
    // 2 and 3, on every backend.
    for (int d = 0; d < kDeviceCount; ++d) {
      const auto device = static_cast<Device>(d);
      const std::string reason = skip_reason(device, c.op.kind);
      if (!reason.empty()) {
        if (told.insert(reason).second)
          MESSAGE(std::string(device_name(device)), " backend skipped: ", reason);
        continue;
      }
      const bool has_backward = backend_for(device).kernel(c.op.kind).backward != nullptr;
      if (!checked_inputs(c.op).empty())
        REQUIRE_MESSAGE(has_backward, std::string(device_name(device)),
                        " has a forward kernel for ", std::string(op_name(c.op.kind)),
                        " but no backward");
      const std::vector<std::string> problems = compare_with_cpu(device, c, cpu);
      std::string all;
      for (const std::string& p : problems) all += p + "\n";
      CHECK_MESSAGE(problems.empty(), all);
    }
  }
}

}  // namespace cellgraph::testing
