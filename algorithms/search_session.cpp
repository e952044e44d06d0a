#include "algorithms/search_session.h"

#include <cinttypes>
#include <cstdio>
#include <limits>

#include "algorithms/cell_facts.h"
#include "engine/error.h"
#include "engine/optim/divergence.h"
#include "engine/sched/memory_estimate.h"
#include "spec/compile.h"

namespace cellgraph::algorithms {

namespace {

// Every item in order for the weights, none for validation.
TrainValSplit whole_set(int64_t n) {
  TrainValSplit s;
  for (int64_t i = 0; i < n; ++i) s.train.push_back(i);
  return s;
}

constexpr double kUnbounded = 1e30;

SearchOptions checked(SearchOptions o) {
  const Algorithm& algorithm = find_algorithm(o.algorithm);  // throws with the known names
  if (o.epochs < 1) throw error("search: epochs must be >= 1, got ", o.epochs);
  if (o.batch_size < 1) throw error("search: batch size must be >= 1, got ", o.batch_size);
  if (o.max_steps < 0) throw error("search: max steps must be >= 0, got ", o.max_steps);
  if (o.log_every < 0) throw error("search: log interval must be >= 0, got ", o.log_every);
  // An algorithm without a validation step may train on the whole set (fraction 1).
  const bool whole = !algorithm.has_validation_step() && o.train_fraction == 1.0;
  if (!(o.train_fraction > 0 && (o.train_fraction < 1 || whole)))
    throw error("search: train fraction must be in (0, 1)",
                algorithm.has_validation_step() ? "" : " or 1", " for ", o.algorithm, ", got ",
                o.train_fraction);
  if (!(o.lr > 0) || !(o.lr_min >= 0) || !(o.arch_lr > 0))
    throw error("search: learning rates must be > 0 (lr-min >= 0)");
  if (o.hyper.table().empty()) o.hyper = algorithm.default_hyperparameters();
  return o;
}

// The search's epoch totals in checkpoints, under the keys its first version wrote.
constexpr TotalsKeys kSearchTotals{.train_loss = "totals.train_loss",
                                   .val_loss = "totals.val_loss",
                                   .train_correct = "totals.train_correct",
                                   .val_correct = "totals.val_correct",
                                   .train_count = "totals.train_count",
                                   .val_count = "totals.val_count"};

std::string position_text(BatchPosition p) {
  return std::to_string(p.epoch) + "," + std::to_string(p.batch);
}

BatchPosition parse_position(const io::Checkpoint& ckpt, const std::string& key) {
  const std::string& s = ckpt.meta(key);
  BatchPosition p;
  char tail = 0;
  if (std::sscanf(s.c_str(), "%" SCNd64 ",%" SCNd64 "%c", &p.epoch, &p.batch, &tail) != 2)
    throw error(ckpt.source(), ": metadata '", key, "': expected 'EPOCH,BATCH', got '", s, "'");
  return p;
}

std::string rng_text(const Rng::State& s) {
  char buffer[80];
  std::snprintf(buffer, sizeof buffer, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
                s.s[0], s.s[1], s.s[2], s.s[3]);
  return buffer;
}

Rng::State parse_rng(const io::Checkpoint& ckpt, const std::string& key) {
  const std::string& s = ckpt.meta(key);
  Rng::State state{};
  bool ok = s.size() == 64;
  for (int i = 0; ok && i < 4; ++i) {
    char* end = nullptr;
    const std::string part = s.substr(size_t(i) * 16, 16);
    state.s[i] = std::strtoull(part.c_str(), &end, 16);
    ok = end == part.c_str() + 16;
  }
  if (!ok) throw error(ckpt.source(), ": metadata '", key, "': expected 64 hex digits");
  return state;
}

// The entries under `prefix` with the prefix removed, for an optimizer's load_state_tensors.
StateTensors with_prefix(const io::Checkpoint& ckpt, const std::string& prefix) {
  StateTensors out;
  for (const auto& [name, t] : ckpt.tensors())
    if (name.rfind(prefix, 0) == 0) out.emplace_back(name.substr(prefix.size()), t);
  return out;
}

void restore_logits(const ir::Graph& graph, ArchState& arch, const io::Checkpoint& ckpt) {
  for (size_t g = 0; g < graph.arch_groups.size(); ++g) {
    Var& logits = arch.logits[g];
    logits.value().copy_from(ckpt.tensor("arch/" + graph.arch_groups[g].name, logits.shape()));
  }
}

}  // namespace

std::vector<Hyperparameter> search_hyperparameters() {
  return {
      number("lr", 0.025, 0, kUnbounded, "weight learning rate (SGD), cosine-annealed per epoch",
             "DARTS"),
      number("lr-min", 0.001, 0, kUnbounded, "learning rate at the end of the cosine schedule",
             "DARTS"),
      number("momentum", 0.9, 0, 1, "SGD momentum", "DARTS"),
      number("weight-decay", 3e-4, 0, kUnbounded, "SGD weight decay", "DARTS"),
      number("grad-clip", 5, 0, kUnbounded, "clip the weight gradient norm (0: off)", "DARTS"),
      number("arch-lr", 3e-4, 0, kUnbounded, "architecture learning rate (Adam)", "DARTS"),
      number("arch-beta1", 0.5, 0, 0.999999, "Adam beta1 of the architecture optimizer", "DARTS"),
      number("arch-beta2", 0.999, 0, 0.999999, "Adam beta2 of the architecture optimizer", "DARTS"),
      number("arch-weight-decay", 1e-3, 0, kUnbounded, "architecture weight decay", "DARTS")};
}

void apply_search_hyperparameters(const HyperValues& v, SearchOptions& o) {
  o.lr = float(v.number("lr"));
  o.lr_min = float(v.number("lr-min"));
  o.momentum = float(v.number("momentum"));
  o.weight_decay = float(v.number("weight-decay"));
  o.grad_clip = float(v.number("grad-clip"));
  o.arch_lr = float(v.number("arch-lr"));
  o.arch_beta1 = float(v.number("arch-beta1"));
  o.arch_beta2 = float(v.number("arch-beta2"));
  o.arch_weight_decay = float(v.number("arch-weight-decay"));
}

std::vector<std::pair<std::string, std::vector<std::string>>> argmax_ops(const ir::Graph& graph,
                                                                         const ArchState& arch) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  const std::vector<std::vector<float>> values = coefficient_values(arch);
  for (size_t g = 0; g < graph.arch_groups.size(); ++g) {
    const ir::ArchGroup& group = graph.arch_groups[g];
    if (group.kind == ir::ArchGroup::Kind::channel_scores) continue;  // scores, not choices
    const std::vector<float>& v = values[g];
    const size_t cols = group.columns.size();
    std::vector<std::string> rows;
    for (size_t r = 0; r < size_t(group.rows); ++r) {
      size_t best = 0;
      for (size_t c = 1; c < cols; ++c)
        if (v[r * cols + c] > v[r * cols + best]) best = c;
      rows.push_back(group.columns[best]);
    }
    out.emplace_back(group.name, std::move(rows));
  }
  return out;
}

namespace {
// The algorithm's initial state, after refusing a recurrent cell it cannot search (before
// it reports anything else about the space).
ArchState first_state(const Algorithm& algorithm, const ir::Graph& graph, const spec::Space& space,
                      const SearchOptions& options) {
  if (graph.state_in.valid() && !algorithm.recurrent_refusal().empty())
    throw error(space.file, ": a recurrent cell (a language model); --algo ", options.algorithm,
                " cannot search it: ", algorithm.recurrent_refusal());
  return algorithm.initial_state(graph, space, options.hyper, stream_seed(options.seed, 1));
}

// The initial architecture state, moved to the run's device before the optimizer holds it.
ArchState on_device(ArchState state, Device device) {
  move_to_device(state, device);
  return state;
}
}  // namespace

spec::JsonValue arch_weights_json(const ir::Graph& graph, const ArchState& arch) {
  const std::vector<std::vector<float>> values = coefficient_values(arch);
  spec::JsonValue groups = spec::JsonValue::object();
  for (size_t g = 0; g < graph.arch_groups.size(); ++g) {
    const ir::ArchGroup& group = graph.arch_groups[g];
    const size_t cols = group.columns.size();
    CG_ASSERT(values[g].size() == size_t(group.rows) * cols, "group ", group.name, " has ",
              values[g].size(), " values for ", group.rows, "x", cols);
    spec::JsonValue columns = spec::JsonValue::array(), rows = spec::JsonValue::array(),
                    matrix = spec::JsonValue::array();
    for (const std::string& c : group.columns) columns.push_back(c);
    for (size_t r = 0; r < size_t(group.rows); ++r) {
      rows.push_back(group.row_labels[r]);
      spec::JsonValue row = spec::JsonValue::array();
      for (size_t c = 0; c < cols; ++c) row.push_back(decimal_of(values[g][r * cols + c]));
      matrix.push_back(row);
    }
    spec::JsonValue entry = spec::JsonValue::object();
    entry.set("kind", group.kind == ir::ArchGroup::Kind::edge_paths       ? "paths"
                      : group.kind == ir::ArchGroup::Kind::channel_scores ? "channels"
                                                                          : "ops");
    entry.set("columns", columns);
    entry.set("rows", rows);
    entry.set("values", matrix);
    groups.set(group.name, entry);
  }
  return groups;
}

namespace {

// DARTS takes the two parts of the training set in order (no shuffle); the iterators
// shuffle each epoch. An algorithm without a validation step may take the whole set.
std::pair<std::unique_ptr<BatchSource>, std::unique_ptr<BatchSource>> image_streams(
    const Dataset& train_set, const SearchOptions& unchecked) {
  const SearchOptions o = checked(unchecked);
  const TrainValSplit split = o.train_fraction < 1.0
                                  ? split_train_val(train_set.size(), o.train_fraction)
                                  : whole_set(train_set.size());
  std::pair<std::unique_ptr<BatchSource>, std::unique_ptr<BatchSource>> s;
  s.first = std::make_unique<BatchIterator>(
      train_set, split.train,
      BatchOptions{.batch_size = o.batch_size, .drop_last = true, .seed = stream_seed(o.seed, 2)});
  if (!split.val.empty())
    s.second = std::make_unique<BatchIterator>(
        train_set, split.val,
        BatchOptions{
            .batch_size = o.batch_size, .drop_last = true, .seed = stream_seed(o.seed, 3)});
  return s;
}

}  // namespace

SearchSession::SearchSession(spec::Space space, const Dataset& train_set,
                             const SearchOptions& options)
    : SearchSession(std::move(space), image_streams(train_set, options), options) {}

SearchSession::SearchSession(spec::Space space, std::unique_ptr<BatchSource> train,
                             std::unique_ptr<BatchSource> val, SearchOptions options)
    : SearchSession(std::move(space), Streams(std::move(train), std::move(val)),
                    std::move(options)) {}

SearchSession::SearchSession(spec::Space space, Streams streams, SearchOptions options)
    : space_(std::move(space)),
      options_(checked(std::move(options))),
      algorithm_(&find_algorithm(options_.algorithm)),
      graph_(spec::compile(space_)),
      params_(graph_, options_.seed, options_.device),
      arch_(on_device(first_state(*algorithm_, graph_, space_, options_), options_.device)),
      sgd_(params_.weights(), SgdOptions{.lr = options_.lr,
                                         .momentum = options_.momentum,
                                         .weight_decay = options_.weight_decay}),
      adam_(arch_variables(arch_), AdamOptions{.lr = options_.arch_lr,
                                               .beta1 = options_.arch_beta1,
                                               .beta2 = options_.arch_beta2,
                                               .weight_decay = options_.arch_weight_decay}),
      train_it_(std::move(streams.first)),
      val_it_(std::move(streams.second)),
      rng_(stream_seed(options_.seed, 4)),
      loop_(LoopOptions{.epochs = options_.epochs,
                        .max_steps = options_.max_steps,
                        .log_every = options_.log_every,
                        .lr = options_.lr,
                        .lr_min = options_.lr_min},
            train_it_->batches_per_epoch(), kSearchTotals) {
  if (algorithm_->has_validation_step() && val_it_ == nullptr)
    throw error("search: --algo ", options_.algorithm,
                " needs validation batches for its architecture step; none were given");
  sched::require_batch_fits(graph_, sched::make_plan(graph_, arch_.active), options_.batch_size,
                            "--batch " + std::to_string(options_.batch_size));
  loop_.set_decorate([this](RunRecord& r, const StepMetrics&) { decorate(r); });
  loop_.set_lr_schedule([this](int64_t epoch) {
    return algorithm_->weight_lr(arch_, options_.hyper, loop_.options(), epoch);
  });
}

void SearchSession::step() {
  CG_ASSERT(!finished(), "step() on a finished search");
  // DARTS steps the scheduler per epoch; setting it every step makes resuming trivial.
  sgd_.set_lr(loop_.lr());
  // A text stream starting over no longer continues the hidden state it carried.
  if (train_it_->starts_epoch()) train_state_ = Tensor();
  if (val_it_ && val_it_->starts_epoch()) val_state_ = Tensor();
  const Batch train = to_device(train_it_->next(), options_.device);
  // No validation split (fraction 1): an empty batch no pass reads.
  const Batch val = val_it_ ? to_device(val_it_->next(), options_.device) : Batch{};
  StepContext ctx(graph_, params_, arch_, sgd_, adam_, train, val, options_.hyper);
  ctx.grad_clip = options_.grad_clip;
  ctx.step = uint64_t(loop_.global_step());
  ctx.epoch = loop_.epoch();
  ctx.epochs = loop_.options().epochs;
  ctx.train_state = train_state_;
  ctx.val_state = val_state_;
  run_step(*algorithm_, ctx);
  check_finite(ctx.metrics);
  if (ctx.train_state_out.defined()) train_state_ = ctx.train_state_out;
  if (ctx.val_state_out.defined()) val_state_ = ctx.val_state_out;
  loop_.finish_step(ctx.metrics);
  if (loop_.epoch_just_ended())
    algorithm_->end_epoch(graph_, arch_, options_.hyper, loop_.epoch() - 1);
}

void SearchSession::check_finite(const StepMetrics& m) {
  const int64_t step = loop_.global_step() + 1;
  const std::string hint =
      detail::concat("lower the learning rates (--lr ", decimal_of(options_.lr), ", --arch-lr ",
                     decimal_of(options_.arch_lr), ") or restart from the last checkpoint");
  if (m.train_count > 0) require_finite(step, "training loss", m.train_loss, hint);
  if (m.val_count > 0) require_finite(step, "validation loss", m.val_loss, hint);
  require_finite(step, "weight gradient norm", m.grad_norm, hint);
  require_finite(step, "architecture parameter", arch_.logits, hint);
  require_finite(step, "architecture variable", algorithm_->variables(arch_), hint);
}

void SearchSession::run(const std::function<bool()>& stop) {
  while (!finished()) {
    step();
    if (stop && stop()) break;
  }
}

RunRecord SearchSession::snapshot() const {
  RunRecord r = loop_.snapshot();
  r.has_validation = algorithm_->has_validation_step();
  r.language_model = graph_.state_in.valid();
  return r;
}

void SearchSession::decorate(RunRecord& r) const {
  r.has_validation = algorithm_->has_validation_step();
  r.language_model = graph_.state_in.valid();
  if (r.kind != RunRecord::Kind::epoch) {
    r.details.set("arch_weights", arch_weights_json(graph_, arch_));
    return;
  }
  try {
    // The architecture only (not the width search's weights, which derive() adds).
    const Derived derived = algorithms::derive(space_, graph_, arch_);
    r.details.set("genotype", derived.genotype);
    // The derived cell's NATS-Bench entry and skip ratio: a search read against the benchmark.
    add_cell_facts(derived.space, r.details);
  } catch (const Error& e) {  // nothing derivable yet (SparseNAS pruned a whole cell)
    r.details.set("genotype", spec::JsonValue());
    r.details.set("derive_error", std::string(e.what()));
  }
  spec::JsonValue argmax = spec::JsonValue::object();
  for (const auto& [group, ops] : argmax_ops(graph_, arch_)) {
    spec::JsonValue list = spec::JsonValue::array();
    for (const std::string& op : ops) list.push_back(op);
    argmax.set(group, list);
  }
  r.details.set("argmax", argmax);
  r.details.set("arch_weights", arch_weights_json(graph_, arch_));
  algorithm_->describe_epoch(graph_, arch_, r.details);
}

Derived SearchSession::derive() const {
  Derived d = algorithms::derive(space_, graph_, arch_);
  d.weights = algorithm_->derived_weights(d, graph_, arch_, params_);
  return d;
}

void SearchSession::set_epochs(int64_t epochs) {
  loop_.set_epochs(epochs);
  options_.epochs = epochs;
}

void SearchSession::set_max_steps(int64_t max_steps) {
  loop_.set_max_steps(max_steps);
  options_.max_steps = max_steps;
}

io::Checkpoint SearchSession::checkpoint() const {
  io::Checkpoint ckpt;
  ckpt.set_meta("kind", "search");
  ckpt.set_meta("algorithm", options_.algorithm);
  loop_.save(ckpt);
  ckpt.set_meta("train_position", position_text(train_it_->position()));
  if (val_it_) ckpt.set_meta("val_position", position_text(val_it_->position()));
  ckpt.set_meta("rng", rng_text(rng_.state()));
  if (train_state_.defined()) ckpt.add("state/train", train_state_);
  if (val_state_.defined()) ckpt.add("state/val", val_state_);
  for (size_t i = 0; i < graph_.params.size(); ++i)
    ckpt.add("param/" + graph_.params[i].name, params_.all()[i].value());
  for (size_t g = 0; g < graph_.arch_groups.size(); ++g)
    ckpt.add("arch/" + graph_.arch_groups[g].name, arch_.logits[g].value());
  algorithm_->save(graph_, arch_, ckpt);
  std::vector<float> active(arch_.active.begin(), arch_.active.end());
  ckpt.add("arch_active", Tensor::from_vector({int64_t(active.size())}, active));
  for (const auto& [key, t] : sgd_.state_tensors()) ckpt.add("sgd/" + key, t);
  for (const auto& [key, t] : adam_.state_tensors()) ckpt.add("adam/" + key, t);
  return ckpt;
}

void SearchSession::restore(const io::Checkpoint& ckpt) {
  const std::string& src = ckpt.source();
  if (ckpt.meta("kind") != "search")
    throw error(src, ": a '", ckpt.meta("kind"), "' checkpoint, not a search checkpoint");
  if (ckpt.meta("algorithm") != options_.algorithm)
    throw error(src, ": checkpoint of algorithm '", ckpt.meta("algorithm"), "', the run uses '",
                options_.algorithm, "'");
  loop_.restore(ckpt, "the data, subset, batch size or train fraction differ");
  size_t param_entries = 0;
  for (const auto& [name, t] : ckpt.tensors()) param_entries += name.rfind("param/", 0) == 0;
  for (size_t i = 0; i < graph_.params.size(); ++i) {
    const Var& v = params_.all()[i];
    v.value().copy_from(ckpt.tensor("param/" + graph_.params[i].name, v.shape()));
  }
  if (param_entries != graph_.params.size())
    throw error(src, ": ", param_entries, " parameter entries, the network has ",
                graph_.params.size(), "; the checkpoint is of another network");
  restore_logits(graph_, arch_, ckpt);
  algorithm_->restore(graph_, arch_, ckpt, true);
  const std::vector<float> active =
      ckpt.tensor("arch_active", {int64_t(arch_.active.size())}).to_vector();
  for (size_t i = 0; i < active.size(); ++i) {
    if (active[i] != 0.0f && active[i] != 1.0f && active[i] != 2.0f)
      throw error(src, ": arch_active entry ", i, " is ", active[i], "; expected 0, 1 or 2");
    arch_.active[i] = uint8_t(active[i]);
  }
  sgd_.load_state_tensors(with_prefix(ckpt, "sgd/"), src);
  adam_.load_state_tensors(with_prefix(ckpt, "adam/"), src);
  train_it_->set_position(parse_position(ckpt, "train_position"));
  if (val_it_) val_it_->set_position(parse_position(ckpt, "val_position"));
  rng_.set_state(parse_rng(ckpt, "rng"));
  train_state_ =
      restore_hidden_state(graph_, ckpt, "state/train", options_.batch_size, options_.device);
  val_state_ =
      restore_hidden_state(graph_, ckpt, "state/val", options_.batch_size, options_.device);
}

ArchState arch_state_from_checkpoint(const spec::Space& space, const ir::Graph& graph,
                                     const io::Checkpoint& ckpt, const std::string& command) {
  if (ckpt.meta("kind") != "search")
    throw error(ckpt.source(), ": a '", ckpt.meta("kind"), "' checkpoint; ", command,
                " needs the checkpoint of a search");
  const Algorithm& algorithm = find_algorithm(ckpt.meta("algorithm"));
  ArchState arch = algorithm.initial_state(graph, space, algorithm.default_hyperparameters(), 0);
  restore_logits(graph, arch, ckpt);
  algorithm.restore(graph, arch, ckpt, false);
  return arch;
}

Derived derive_from_checkpoint(const spec::Space& space, const io::Checkpoint& ckpt) {
  const ir::Graph graph = spec::compile(space);
  const ArchState arch = arch_state_from_checkpoint(space, graph, ckpt, "derive");
  Derived d = derive(space, graph, arch);
  const Algorithm& algorithm = *arch.algorithm;
  if (algorithm.searches_widths()) {  // its derived weights come from the search network's
    const ir::ParameterStore params(graph, 0);
    for (size_t i = 0; i < graph.params.size(); ++i) {
      const Var& v = params.all()[i];
      v.value().copy_from(ckpt.tensor("param/" + graph.params[i].name, v.shape()));
    }
    d.weights = algorithm.derived_weights(d, graph, arch, params);
  }
  return d;
}

}  // namespace cellgraph::algorithms
