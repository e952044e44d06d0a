// RARTS (Xue, Qi, Xin, IEEE Access 2022), relaxed architecture search by network splitting.
// Two networks on one graph: w trained on the train split, y on the validation split, one
// shared alpha (softmax relaxation). With the relaxed Lagrangian
//   L(y, w, alpha) = L_v(y, alpha) + lambda L_t(w, alpha) + beta/2 ||y - w||^2
//                    + mu sum_g <softmax(alpha_g), Lat_g>
// a step is one Gauss-Seidel sweep (docs/algorithms.md): w, then y against the new w, then
// alpha against both new networks. No second derivatives: each pass is one or two ordinary
// backward passes, and they run one after another, so the peak holds one network's
// activations and two sets of weights.
#include "algorithms/rarts.h"

#include <algorithm>
#include <cmath>

#include "algorithms/algorithm.h"
#include "algorithms/latency.h"
#include "algorithms/width.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/optim/clip.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "spec/compile.h"

namespace cellgraph::algorithms {

std::unique_ptr<AlgorithmState> RartsState::clone() const {
  auto out = std::make_unique<RartsState>();
  if (y) out->y = std::make_unique<ir::ParameterStore>(y->clone());
  if (y_optimizer) {
    out->y_optimizer = std::make_unique<Sgd>(out->y->weights(), y_optimizer->options());
    out->y_optimizer->load_state_tensors(y_optimizer->state_tensors());
    out->y_optimizer->set_lr(y_optimizer->lr());
  }
  out->copy_w = copy_w;
  out->started = started;
  out->latency = latency;  // never written after loading: sharing the storage is safe
  out->distance = distance;
  out->channel_scores = channel_scores;
  out->width_keep = width_keep;
  return out;
}

RartsState& rarts_state(ArchState& arch) {
  auto* s = dynamic_cast<RartsState*>(arch.extra.get());
  CG_ASSERT(s != nullptr, "the architecture state has no RARTS state");
  return *s;
}

const RartsState& rarts_state(const ArchState& arch) {
  const auto* s = dynamic_cast<const RartsState*>(arch.extra.get());
  CG_ASSERT(s != nullptr, "the architecture state has no RARTS state");
  return *s;
}

void init_rarts_state(ArchState& arch, const ir::Graph& graph, const HyperValues& hyper,
                      uint64_t seed) {
  auto s = std::make_unique<RartsState>();
  s->y = std::make_unique<ir::ParameterStore>(graph, stream_seed(seed, 7));
  s->copy_w = hyper.choice("rarts-y-init") == "copy";
  const std::string& table = hyper.text("latency");
  if (!table.empty()) s->latency = latency_matrices(graph, read_latency_table(table));
  if (table.empty() && hyper.number("latency-weight") != 0)
    throw error("--latency-weight ", hyper.number("latency-weight"),
                " needs a latency table: give --latency TABLE.json (cellgraph latency SPEC "
                "--out TABLE.json measures one)");
  for (const ir::ArchGroup& g : graph.arch_groups)
    s->channel_scores.push_back(g.kind == ir::ArchGroup::Kind::channel_scores);
  s->width_keep = hyper.number("rarts-width-keep");
  arch.extra = ExtraState(std::move(s));
}

std::vector<Var> rarts_coefficients(const ArchState& arch) {
  const RartsState& s = rarts_state(arch);
  std::vector<Var> out;
  for (size_t g = 0; g < arch.logits.size(); ++g)
    out.push_back(s.channel_scores.at(g) ? arch.logits[g] : ops::softmax(arch.logits[g]));
  return out;
}

namespace {

// The first step: y copies w when asked, and its optimizer takes w's options.
RartsState& started(StepContext& ctx) {
  RartsState& s = rarts_state(ctx.arch);
  if (s.started) return s;
  // y, its optimizer and the coupling, scores and penalty loops below live on the host.
  if (ctx.params.device() != Device::cpu)
    throw error(
        "--algo rarts runs on the CPU only (its second network and the coupling "
        "term are host loops so far); give --device cpu");
  if (s.copy_w)
    for (size_t i = 0; i < ctx.params.all().size(); ++i)
      s.y->all()[i].value().copy_from(ctx.params.all()[i].value());
  s.y_optimizer = std::make_unique<Sgd>(s.y->weights(), ctx.weight_optimizer.options());
  s.started = true;
  return s;
}

// grad(a_i) += beta (a_i - b_i) for every weight; a weight the loss did not reach gets the
// coupling term alone.
void add_coupling(std::vector<Var> a, const std::vector<Var>& b, float beta) {
  CG_ASSERT(a.size() == b.size(), "two networks of different size");
  for (size_t i = 0; i < a.size(); ++i) {
    const Tensor x = a[i].value().contiguous(), y = b[i].value().contiguous();
    Tensor g = a[i].has_grad() ? a[i].grad().clone() : Tensor::zeros(a[i].shape());
    float* d = g.data();
    for (int64_t e = 0; e < g.numel(); ++e) d[e] += beta * (x.data()[e] - y.data()[e]);
    a[i].set_grad(g);
  }
}

// ||a - b|| over matching weight lists.
double distance(const std::vector<Var>& a, const std::vector<Var>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::vector<float> x = a[i].value().to_vector(), y = b[i].value().to_vector();
    for (size_t e = 0; e < x.size(); ++e) sum += double(x[e] - y[e]) * double(x[e] - y[e]);
  }
  return std::sqrt(sum);
}

float lambda_of(const StepContext& ctx) { return float(ctx.hyper.number("rarts-lambda")); }
float beta_of(const StepContext& ctx) { return float(ctx.hyper.number("rarts-beta")); }

}  // namespace

void rarts_update_w(StepContext& ctx) {
  RartsState& s = started(ctx);
  Sgd& sgd = ctx.weight_optimizer;
  sgd.zero_grad();
  forward_loss(ctx, ctx.train, current_coefficients(ctx.arch), true)
      .backward(Tensor::full({1}, lambda_of(ctx)));
  // Clipping guards the data term; the coupling is a smooth proximity term added after it.
  ctx.metrics.grad_norm = clip_or_measure_grad_norm(sgd.params(), ctx.grad_clip);
  add_coupling(sgd.params(), s.y->weights(), beta_of(ctx));
  sgd.step();
}

void rarts_update_y(StepContext& ctx) {
  RartsState& s = started(ctx);
  Sgd& sgd = *s.y_optimizer;
  sgd.set_lr(ctx.weight_optimizer.lr());  // the run's schedule
  sgd.zero_grad();
  forward_loss(ctx, *s.y, ctx.val, current_coefficients(ctx.arch), false).backward();
  clip_or_measure_grad_norm(sgd.params(), ctx.grad_clip);
  add_coupling(sgd.params(), ctx.weight_optimizer.params(), beta_of(ctx));  // w is w_new
  sgd.step();
  s.distance = distance(sgd.params(), ctx.weight_optimizer.params());
}

void rarts_update_architecture(StepContext& ctx) {
  RartsState& s = started(ctx);
  FreezeGuard freeze_w(ctx.weight_optimizer.params());  // architecture gradients only
  FreezeGuard freeze_y(s.y_optimizer->params());
  ctx.arch_optimizer.zero_grad();
  const StepMetrics keep = ctx.metrics;  // the weight passes reported these batches
  forward_loss(ctx, ctx.train, relaxed_coefficients(ctx.arch), true)
      .backward(Tensor::full({1}, lambda_of(ctx)));
  forward_loss(ctx, *s.y, ctx.val, relaxed_coefficients(ctx.arch), false).backward();
  ctx.metrics = keep;
  const float rho = float(ctx.hyper.number("rarts-width-l1"));
  for (size_t g = 0; g < s.channel_scores.size() && rho != 0; ++g) {
    if (!s.channel_scores[g]) continue;
    Var& gamma = ctx.arch.logits[g];
    Tensor grad = gamma.has_grad() ? gamma.grad().clone() : Tensor::zeros(gamma.shape());
    const Tensor v = gamma.value().contiguous();
    for (int64_t e = 0; e < grad.numel(); ++e)
      grad.data()[e] += rho * float((v.data()[e] > 0) - (v.data()[e] < 0));
    gamma.set_grad(grad);
  }
  const float mu = float(ctx.hyper.number("latency-weight"));
  if (mu != 0)
    for (size_t g = 0; g < s.latency.size(); ++g) {
      if (!s.latency[g].defined()) continue;
      Var& alpha = ctx.arch.logits[g];
      Tensor grad = alpha.has_grad() ? alpha.grad().clone() : Tensor::zeros(alpha.shape());
      const Tensor lat = latency_gradient(alpha.value(), s.latency[g]);
      for (int64_t e = 0; e < grad.numel(); ++e) grad.data()[e] += mu * lat.data()[e];
      alpha.set_grad(grad);
    }
  ctx.arch_optimizer.step();
}

namespace {

class Rarts final : public Algorithm {
 public:
  Rarts()
      : Algorithm("rarts",
                  "RARTS: two networks (w on train, y on val) coupled by beta/2 ||y-w||^2; "
                  "w, y, alpha updated in turn (Gauss-Seidel), optional latency penalty") {}

  std::vector<Hyperparameter> hyperparameters() const override {
    return {
        number("rarts-lambda", 1, 0, 1e30,
               "weight lambda of L_train in the relaxed Lagrangian (w's step, alpha's gradient)",
               "RARTS; the paper gives none for CIFAR: 1 here"),
        number("rarts-beta", 5, 0, 1e30,
               "coupling beta of (beta/2) ||y - w||^2; keep lr * beta < 0.2 (momentum 0.9)",
               "RARTS; the paper gives none for CIFAR: 5 here, so that DARTS' lr 0.025 "
               "times beta stays below 0.2, where the coupling contracts"),
        choice("rarts-y-init", {"independent", "copy"},
               "the second network y starts from its own seeded weights, or as a copy of w"),
        text("latency", "",
             "FILE: latency table of `cellgraph latency` (ms per candidate op) for the "
             "penalty mu sum_g <softmax(alpha_g), Lat_g>"),
        number("latency-weight", 0, 0, 1e30, "mu of the latency penalty (needs --latency)",
               "0: no penalty"),
        number("rarts-width-keep", 0.6, 1e-9, 1,
               "width search: the fraction of scored channels derivation keeps (global |gamma| "
               "ranking)",
               "the issue's example: ResNet-20 pruned 40%"),
        number("rarts-width-l1", 0, 0, 1e30,
               "width search: rho of the penalty rho ||gamma||_1 on the channel scores",
               "0: none; Network Slimming uses 1e-4 to 1e-5")};
  }

  bool searches_widths() const override { return true; }

  std::vector<Var> coefficients(const ArchState& arch) const override {
    NoGradGuard no_grad;
    return rarts_coefficients(arch);
  }
  std::vector<Var> relaxed_coefficients(const ArchState& arch) const override {
    return rarts_coefficients(arch);
  }

  // The cells by the space's rule (DARTS keep-k or NATS), then the widths by global |gamma|.
  Derived derive(const spec::Space& space, const ir::Graph& graph,
                 const ArchState& arch) const override {
    Derived d = Algorithm::derive(space, graph, arch);
    const RartsState& s = rarts_state(arch);
    if (std::find(s.channel_scores.begin(), s.channel_scores.end(), true) !=
        s.channel_scores.end()) {
      const std::vector<WidthBlock> blocks = select_widths(graph, arch.logits, s.width_keep);
      d.space = pruned_space(d.space, blocks);
      d.genotype += (d.genotype.empty() ? "" : "; ") + widths_text(blocks);
    }
    return d;
  }

  std::vector<std::pair<std::string, Tensor>> derived_weights(
      const Derived& derived, const ir::Graph& graph, const ArchState& arch,
      const ir::ParameterStore& params) const override {
    const RartsState& s = rarts_state(arch);
    if (std::find(s.channel_scores.begin(), s.channel_scores.end(), true) == s.channel_scores.end())
      return {};  // a cell search: the derived network trains from scratch
    return pruned_weights(graph, params, select_widths(graph, arch.logits, s.width_keep),
                          spec::compile(derived.space));
  }

  std::vector<NamedPass> passes() const override {
    return {{"rarts_update_w", rarts_update_w},
            {"rarts_update_y", rarts_update_y},
            {"rarts_update_architecture", rarts_update_architecture}};
  }

  ArchState initial_state(const ir::Graph& graph, const spec::Space& space,
                          const HyperValues& hyper, uint64_t seed) const override {
    ArchState state = Algorithm::initial_state(graph, space, hyper, seed);
    init_rarts_state(state, graph, hyper, seed);
    return state;
  }

  // y's weights and buffers, its optimizer (with the options it was made with) and the
  // latency matrices the run used, so that a resumed run does not depend on the table
  // file staying as it was.
  void save(const ir::Graph& graph, const ArchState& arch, io::Checkpoint& ckpt) const override {
    const RartsState& s = rarts_state(arch);
    for (size_t i = 0; i < graph.params.size(); ++i)
      ckpt.add("rarts/y/" + graph.params[i].name, s.y->all()[i].value());
    ckpt.set_meta("rarts/started", s.started ? "1" : "0");
    ckpt.set_meta("rarts/distance", io::format_double(s.distance));
    ckpt.set_meta("rarts/width_keep", io::format_double(s.width_keep));
    if (s.y_optimizer) {
      const SgdOptions& o = s.y_optimizer->options();
      ckpt.set_meta("rarts/y_sgd/momentum", io::format_double(o.momentum));
      ckpt.set_meta("rarts/y_sgd/weight_decay", io::format_double(o.weight_decay));
      ckpt.set_meta("rarts/y_sgd/nesterov", o.nesterov ? "1" : "0");
      for (const auto& [key, t] : s.y_optimizer->state_tensors()) ckpt.add("rarts/y_sgd/" + key, t);
    }
    for (size_t g = 0; g < s.latency.size(); ++g)
      if (s.latency[g].defined())
        ckpt.add("rarts/latency/" + graph.arch_groups[g].name, s.latency[g]);
  }

  void restore(const ir::Graph& graph, ArchState& arch, const io::Checkpoint& ckpt,
               bool full) const override {
    RartsState& s = rarts_state(arch);
    s.width_keep = ckpt.meta_double("rarts/width_keep");  // derivation reads it
    if (!full) return;
    const std::string& src = ckpt.source();
    for (size_t i = 0; i < graph.params.size(); ++i) {
      const Var& v = s.y->all()[i];
      v.value().copy_from(ckpt.tensor("rarts/y/" + graph.params[i].name, v.shape()));
    }
    const std::string& started = ckpt.meta("rarts/started");
    if (started != "0" && started != "1")
      throw error(src, ": metadata 'rarts/started' is '", started, "'; expected 0 or 1");
    s.started = started == "1";
    s.distance = ckpt.meta_double("rarts/distance");
    s.y_optimizer.reset();
    if (s.started) {
      const SgdOptions o{.momentum = float(ckpt.meta_double("rarts/y_sgd/momentum")),
                         .weight_decay = float(ckpt.meta_double("rarts/y_sgd/weight_decay")),
                         .nesterov = ckpt.meta("rarts/y_sgd/nesterov") == "1"};
      s.y_optimizer = std::make_unique<Sgd>(s.y->weights(), o);
      StateTensors state;
      const std::string prefix = "rarts/y_sgd/";
      for (const auto& [name, t] : ckpt.tensors())
        if (name.rfind(prefix, 0) == 0) state.emplace_back(name.substr(prefix.size()), t);
      s.y_optimizer->load_state_tensors(state, src);
    }
    for (size_t g = 0; g < s.latency.size(); ++g)
      if (s.latency[g].defined())
        s.latency[g] =
            ckpt.tensor("rarts/latency/" + graph.arch_groups[g].name, s.latency[g].shape()).clone();
  }

  // ||y - w|| after the epoch's last step; with a latency table the relaxed network's
  // expected latency sum_g <softmax(alpha_g), Lat_g> in ms; with a width search each
  // block's inner width as derivation would prune it now.
  void describe_epoch(const ir::Graph& graph, const ArchState& arch,
                      spec::JsonValue& record) const override {
    const RartsState& s = rarts_state(arch);
    spec::JsonValue r = spec::JsonValue::object();
    r.set("distance", s.distance);
    if (!s.latency.empty()) {
      double total = 0;
      for (size_t g = 0; g < s.latency.size(); ++g)
        if (s.latency[g].defined()) total += expected_latency(arch.logits[g].value(), s.latency[g]);
      r.set("expected_latency_ms", total);
    }
    if (std::find(s.channel_scores.begin(), s.channel_scores.end(), true) !=
        s.channel_scores.end()) {
      spec::JsonValue widths = spec::JsonValue::object();  // per block: channels kept now
      for (const WidthBlock& b : select_widths(graph, arch.logits, s.width_keep))
        widths.set(b.block, int64_t(b.kept.size()));
      r.set("widths", widths);
    }
    record.set("rarts", r);
  }
};

}  // namespace

const Algorithm& rarts_algorithm() {
  static const Rarts kRarts;
  return kRarts;
}

}  // namespace cellgraph::algorithms
