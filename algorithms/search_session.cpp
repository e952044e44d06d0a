#include "algorithms/search_session.h"

#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>

#include "algorithms/ista.h"
#include "engine/error.h"
#include "engine/optim/divergence.h"
#include "engine/sched/memory_estimate.h"
#include "spec/compile.h"

namespace cellgraph::algorithms {

namespace {

using Clock = std::chrono::steady_clock;

// Independent seeds for the session's random streams (weights use the seed itself, so a
// ParameterStore built with the run's seed matches the run's initial weights).
uint64_t stream_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + stream * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

SearchOptions checked(SearchOptions o) {
  find_algorithm(o.algorithm);  // throws with the known names
  if (o.epochs < 1) throw error("search: epochs must be >= 1, got ", o.epochs);
  if (o.batch_size < 1) throw error("search: batch size must be >= 1, got ", o.batch_size);
  if (o.max_steps < 0) throw error("search: max steps must be >= 0, got ", o.max_steps);
  if (o.log_every < 0) throw error("search: log interval must be >= 0, got ", o.log_every);
  if (!(o.train_fraction > 0 && o.train_fraction < 1))
    throw error("search: train fraction must be in (0, 1), got ", o.train_fraction);
  if (!(o.lr > 0) || !(o.lr_min >= 0) || !(o.arch_lr > 0))
    throw error("search: learning rates must be > 0 (lr-min >= 0)");
  return o;
}

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

// ISTA-NAS state beyond the codes: per node the support, the code z (exact: its doubles
// as text) and the epoch's statistics. A_j is not stored: it is a function of the seed.
void save_sparse_nodes(const ir::Graph& graph, const ArchState& arch, io::Checkpoint& ckpt) {
  if (arch.relaxation != Relaxation::sparse_code) return;
  for (const Var& code : arch.codes) ckpt.add("code/" + std::string(code.name()), code.value());
  // The coefficients, for absorption without the run's options (one-stage export).
  const std::vector<Var> coefficients = current_coefficients(arch);
  for (size_t g = 0; g < coefficients.size(); ++g)
    ckpt.add("sparse/coefficients/" + graph.arch_groups[g].name, coefficients[g].value());
  ckpt.set_meta("sparse/frozen", arch.codes_frozen ? "1" : "0");
  for (const SparseNode& n : arch.nodes) {
    std::vector<float> support(n.support.begin(), n.support.end());
    ckpt.add("sparse/" + n.label + "/support",
             Tensor::from_vector({int64_t(support.size())}, support));
    std::string z;
    for (double v : n.z) z += (z.empty() ? "" : " ") + io::format_double(v);
    ckpt.set_meta("sparse/" + n.label + "/z", z);
    ckpt.set_meta("sparse/" + n.label + "/support_changes", std::to_string(n.support_changes));
    ckpt.set_meta("sparse/" + n.label + "/z_change", io::format_double(n.z_change));
  }
}

}  // namespace

void restore_sparse_nodes(const ir::Graph& graph, ArchState& arch, const io::Checkpoint& ckpt,
                          bool with_codes) {
  const std::string& src = ckpt.source();
  if (with_codes)
    for (Var& code : arch.codes)
      code.value().copy_from(ckpt.tensor("code/" + std::string(code.name()), code.shape()));
  const std::string& frozen = ckpt.meta("sparse/frozen");
  if (frozen != "0" && frozen != "1")
    throw error(src, ": metadata 'sparse/frozen' is '", frozen, "'; expected 0 or 1");
  arch.codes_frozen = frozen == "1";
  for (SparseNode& n : arch.nodes) {
    const std::string key = "sparse/" + n.label;
    const std::vector<float> support = ckpt.tensor(key + "/support", {int64_t(n.keep)}).to_vector();
    n.support.clear();
    for (float i : support) {
      if (!(i >= 0 && i < float(n.n()) && i == std::floor(i)))
        throw error(src, ": '", key, "/support' holds ", i, "; expected an index below ", n.n());
      n.support.push_back(int32_t(i));
    }
    if (!with_codes) continue;
    const std::string& text = ckpt.meta(key + "/z");
    n.z.clear();
    const char* p = text.c_str();
    while (*p != 0) {
      char* end = nullptr;
      n.z.push_back(std::strtod(p, &end));
      if (end == p) break;
      p = end;
    }
    if (int64_t(n.z.size()) != n.n())
      throw error(src, ": metadata '", key, "/z': expected ", n.n(), " numbers");
    n.support_changes = ckpt.meta_int(key + "/support_changes");
    n.z_change = ckpt.meta_double(key + "/z_change");
  }
  arch.active = support_active_set(graph, arch);
}

StepCounters read_step_counters(const io::Checkpoint& ckpt, int64_t steps_per_epoch) {
  const std::string& src = ckpt.source();
  for (const auto& [name, t] : ckpt.tensors())
    if (!all_finite(t))
      throw error(src, ": entry '", name,
                  "' holds inf or NaN; the checkpoint is damaged or its run had diverged");
  StepCounters c{ckpt.meta_int("step"), ckpt.meta_int("epoch"), ckpt.meta_int("epoch_step")};
  int64_t done = 0;
  const bool consistent = c.step >= 0 && c.epoch >= 0 && c.epoch_step >= 0 &&
                          c.epoch_step < steps_per_epoch &&
                          !__builtin_mul_overflow(c.epoch, steps_per_epoch, &done) &&
                          !__builtin_add_overflow(done, c.epoch_step, &done) && done == c.step;
  if (!consistent)
    throw error(src, ": inconsistent step counters (step ", c.step, ", epoch ", c.epoch,
                ", step in epoch ", c.epoch_step, ", ", steps_per_epoch,
                " steps per epoch); expected step = epoch * steps per epoch + step in epoch");
  for (const char* key : {"elapsed"})
    if (const double v = ckpt.meta_double(key); !(std::isfinite(v) && v >= 0))
      throw error(src, ": metadata '", key, "' is ", v, "; expected a finite number >= 0");
  return c;
}

double decimal_of(float value) {
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  CG_ASSERT(ec == std::errc(), "to_chars failed");
  double out = 0;
  std::from_chars(buffer, end, out);
  return out;
}

DataShape data_shape(const Dataset& data) {
  const Shape& s = data.images.shape();
  return {s[1], s[2], s[3], data.num_classes};
}

std::string fit_space_to_data(spec::Space& space, const DataShape& shape) {
  spec::Network& net = space.network;
  if (net.in_channels == shape.channels && net.in_height == shape.height &&
      net.in_width == shape.width && net.classes == shape.classes)
    return "";
  std::string note = detail::concat(
      "the spec's network takes [", net.in_channels, ", ", net.in_height, ", ", net.in_width,
      "] with ", net.classes, " classes; the data has [", shape.channels, ", ", shape.height, ", ",
      shape.width, "] with ", shape.classes, " classes: using the data's");
  net.in_channels = shape.channels;
  net.in_height = shape.height;
  net.in_width = shape.width;
  net.classes = shape.classes;
  return note;
}

std::vector<std::pair<std::string, std::vector<std::string>>> argmax_ops(const ir::Graph& graph,
                                                                         const ArchState& arch) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  const std::vector<std::vector<float>> values = coefficient_values(arch);
  for (size_t g = 0; g < graph.arch_groups.size(); ++g) {
    const ir::ArchGroup& group = graph.arch_groups[g];
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

SearchSession::SearchSession(spec::Space space, const Dataset& train_set, SearchOptions options)
    : space_(std::move(space)),
      options_(checked(std::move(options))),
      algorithm_(&find_algorithm(options_.algorithm)),
      graph_(spec::compile(space_)),
      params_(graph_, options_.seed),
      arch_(prepared_arch_state(*algorithm_, graph_, space_, options_.algorithm_options,
                                stream_seed(options_.seed, 1))),
      sgd_(params_.weights(), SgdOptions{.lr = options_.lr,
                                         .momentum = options_.momentum,
                                         .weight_decay = options_.weight_decay}),
      adam_(arch_variables(arch_), AdamOptions{.lr = options_.arch_lr,
                                               .beta1 = options_.arch_beta1,
                                               .beta2 = options_.arch_beta2,
                                               .weight_decay = options_.arch_weight_decay}),
      schedule_(options_.lr, options_.lr_min, options_.epochs),
      data_(train_set),
      // DARTS takes the two parts in order (no shuffle): the iterators shuffle each epoch.
      split_(split_train_val(train_set.size(), options_.train_fraction)),
      train_it_(data_, split_.train,
                BatchOptions{.batch_size = options_.batch_size,
                             .drop_last = true,
                             .seed = stream_seed(options_.seed, 2)}),
      val_it_(data_, split_.val,
              BatchOptions{.batch_size = options_.batch_size,
                           .drop_last = true,
                           .seed = stream_seed(options_.seed, 3)}),
      rng_(stream_seed(options_.seed, 4)),
      steps_per_epoch_(train_it_.batches_per_epoch()) {
  sched::require_batch_fits(graph_, sched::make_plan(graph_, arch_.active), options_.batch_size,
                            "--batch " + std::to_string(options_.batch_size));
  start_ = interval_start_ = epoch_start_ = Clock::now();
}

bool SearchSession::finished() const {
  return epoch_ >= options_.epochs || (options_.max_steps > 0 && step_ >= options_.max_steps);
}

int64_t SearchSession::planned_steps() const {
  const int64_t all = options_.epochs * steps_per_epoch_;
  return options_.max_steps > 0 ? std::min(all, options_.max_steps) : all;
}

double SearchSession::elapsed_seconds() const {
  return elapsed_before_ + std::chrono::duration<double>(Clock::now() - start_).count();
}

void SearchSession::step() {
  CG_ASSERT(!finished(), "step() on a finished search");
  // DARTS steps the scheduler per epoch; setting it every step makes resuming trivial.
  sgd_.set_lr(schedule_.lr_at(epoch_));
  const Batch train = train_it_.next();
  const Batch val = val_it_.next();
  StepContext ctx(graph_, params_, arch_, sgd_, adam_, train, val);
  ctx.grad_clip = options_.grad_clip;
  ctx.options = options_.algorithm_options;
  ctx.step = uint64_t(step_);
  run_step(*algorithm_, ctx);

  const StepMetrics& m = ctx.metrics;
  check_finite(m);
  totals_.train_loss += m.train_loss;
  totals_.val_loss += m.val_loss;
  totals_.train_correct += m.train_correct;
  totals_.val_correct += m.val_correct;
  totals_.train_count += m.train_count;
  totals_.val_count += m.val_count;
  ++step_;
  ++epoch_step_;
  ++interval_steps_;
  ++epoch_steps_timed_;
  epoch_ended_ = false;
  if (options_.log_every > 0 && step_ % options_.log_every == 0 && callback_)
    callback_(record(SearchRecord::Kind::log));
  if (epoch_step_ == steps_per_epoch_) {
    if (callback_) callback_(record(SearchRecord::Kind::epoch));
    for (SparseNode& n : arch_.nodes) n.support_changes = 0;  // counted per epoch
    ++epoch_;
    epoch_step_ = 0;
    totals_ = {};
    epoch_ended_ = true;
  }
}

void SearchSession::check_finite(const StepMetrics& m) const {
  const int64_t step = step_ + 1;
  const std::string hint =
      detail::concat("lower the learning rates (--lr ", decimal_of(options_.lr), ", --arch-lr ",
                     decimal_of(options_.arch_lr), ") or restart from the last checkpoint");
  if (m.train_count > 0) require_finite(step, "training loss", m.train_loss, hint);
  if (m.val_count > 0) require_finite(step, "validation loss", m.val_loss, hint);
  require_finite(step, "weight gradient norm", m.grad_norm, hint);
  require_finite(step, "architecture parameter", arch_.logits, hint);
  require_finite(step, "architecture code", arch_.codes, hint);
}

void SearchSession::run(const std::function<bool()>& stop) {
  while (!finished()) {
    step();
    if (stop && stop()) break;
  }
}

SearchRecord SearchSession::snapshot() const {
  SearchRecord r;
  r.epoch = epoch_;
  r.step = step_;
  auto mean = [](double sum, int64_t n) { return n > 0 ? sum / double(n) : 0.0; };
  r.train_loss = mean(totals_.train_loss, totals_.train_count);
  r.val_loss = mean(totals_.val_loss, totals_.val_count);
  r.train_accuracy = mean(double(totals_.train_correct), totals_.train_count);
  r.val_accuracy = mean(double(totals_.val_correct), totals_.val_count);
  r.has_validation = !algorithm_->one_stage;
  r.lr = decimal_of(schedule_.lr_at(epoch_));
  return r;
}

SearchRecord SearchSession::record(SearchRecord::Kind kind) {
  SearchRecord r = snapshot();
  r.kind = kind;
  const Clock::time_point now = Clock::now();
  auto per_step = [&](Clock::time_point since, int64_t steps) {
    return steps > 0 ? std::chrono::duration<double>(now - since).count() / double(steps) : 0.0;
  };
  r.elapsed = elapsed_seconds();
  if (kind == SearchRecord::Kind::log) {
    r.seconds_per_step = per_step(interval_start_, interval_steps_);
    interval_start_ = now;
    interval_steps_ = 0;
  } else {
    r.seconds_per_step = per_step(epoch_start_, epoch_steps_timed_);
    epoch_start_ = now;
    epoch_steps_timed_ = 0;
    r.genotype = derive().genotype;
    r.argmax = argmax_ops(graph_, arch_);
    for (const SparseNode& n : arch_.nodes) {
      SparseNodeRecord s{n.label, {}, n.support_changes, n.z_change};
      const size_t k = n.columns.size();
      const ir::ArchGroup& g = graph_.arch_groups[size_t(n.group)];
      for (int32_t i : n.support)
        s.support.push_back(g.row_labels[size_t(n.rows[size_t(i) / k])] + ": " +
                            g.columns[size_t(n.columns[size_t(i) % k])]);
      r.sparse_nodes.push_back(std::move(s));
    }
  }
  return r;
}

void SearchSession::set_epochs(int64_t epochs) {
  // The current epoch must still fit: a run stopped inside epoch e needs at least e + 1.
  const int64_t minimum = epoch_ + (epoch_step_ > 0 ? 1 : 0);
  if (epochs < std::max<int64_t>(minimum, 1))
    throw error("--epochs ", epochs, ": the run has already begun ", minimum,
                " epochs; give at least ", std::max<int64_t>(minimum, 1));
  options_.epochs = epochs;
  schedule_ = CosineSchedule(options_.lr, options_.lr_min, epochs);
}

void SearchSession::set_max_steps(int64_t max_steps) {
  if (max_steps < 0) throw error("--max-steps must be >= 0, got ", max_steps);
  options_.max_steps = max_steps;
}

io::Checkpoint SearchSession::checkpoint() const {
  io::Checkpoint ckpt;
  ckpt.set_meta("kind", "search");
  ckpt.set_meta("algorithm", options_.algorithm);
  ckpt.set_meta("step", std::to_string(step_));
  ckpt.set_meta("epoch", std::to_string(epoch_));
  ckpt.set_meta("epoch_step", std::to_string(epoch_step_));
  ckpt.set_meta("steps_per_epoch", std::to_string(steps_per_epoch_));
  ckpt.set_meta("train_position", position_text(train_it_.position()));
  ckpt.set_meta("val_position", position_text(val_it_.position()));
  ckpt.set_meta("rng", rng_text(rng_.state()));
  ckpt.set_meta("elapsed", io::format_double(elapsed_seconds()));
  ckpt.set_meta("totals.train_loss", io::format_double(totals_.train_loss));
  ckpt.set_meta("totals.val_loss", io::format_double(totals_.val_loss));
  ckpt.set_meta("totals.train_correct", std::to_string(totals_.train_correct));
  ckpt.set_meta("totals.val_correct", std::to_string(totals_.val_correct));
  ckpt.set_meta("totals.train_count", std::to_string(totals_.train_count));
  ckpt.set_meta("totals.val_count", std::to_string(totals_.val_count));
  for (size_t i = 0; i < graph_.params.size(); ++i)
    ckpt.add("param/" + graph_.params[i].name, params_.all()[i].value());
  for (size_t g = 0; g < graph_.arch_groups.size(); ++g)
    ckpt.add("arch/" + graph_.arch_groups[g].name, arch_.logits[g].value());
  save_sparse_nodes(graph_, arch_, ckpt);
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
  if (ckpt.meta_int("steps_per_epoch") != steps_per_epoch_)
    throw error(src, ": ", ckpt.meta_int("steps_per_epoch"), " steps per epoch, this run has ",
                steps_per_epoch_, "; the data, subset, batch size or train fraction differ");
  const StepCounters counters = read_step_counters(ckpt, steps_per_epoch_);  // checks first
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
  const std::vector<float> active =
      ckpt.tensor("arch_active", {int64_t(arch_.active.size())}).to_vector();
  for (size_t i = 0; i < active.size(); ++i) {
    if (active[i] != 0.0f && active[i] != 1.0f && active[i] != 2.0f)
      throw error(src, ": arch_active entry ", i, " is ", active[i], "; expected 0, 1 or 2");
    arch_.active[i] = uint8_t(active[i]);
  }
  if (arch_.relaxation == Relaxation::sparse_code) {
    restore_sparse_nodes(graph_, arch_, ckpt, true);
    arch_.active.assign(active.begin(), active.end());
  }
  sgd_.load_state_tensors(with_prefix(ckpt, "sgd/"), src);
  adam_.load_state_tensors(with_prefix(ckpt, "adam/"), src);
  train_it_.set_position(parse_position(ckpt, "train_position"));
  val_it_.set_position(parse_position(ckpt, "val_position"));
  rng_.set_state(parse_rng(ckpt, "rng"));
  step_ = counters.step;
  epoch_ = counters.epoch;
  epoch_step_ = counters.epoch_step;
  totals_.train_loss = ckpt.meta_double("totals.train_loss");
  totals_.val_loss = ckpt.meta_double("totals.val_loss");
  totals_.train_correct = ckpt.meta_int("totals.train_correct");
  totals_.val_correct = ckpt.meta_int("totals.val_correct");
  totals_.train_count = ckpt.meta_int("totals.train_count");
  totals_.val_count = ckpt.meta_int("totals.val_count");
  elapsed_before_ = ckpt.meta_double("elapsed");
  start_ = interval_start_ = epoch_start_ = Clock::now();
  interval_steps_ = epoch_steps_timed_ = 0;
  epoch_ended_ = false;
}

Derived derive_from_checkpoint(const spec::Space& space, const io::Checkpoint& ckpt) {
  if (ckpt.meta("kind") != "search")
    throw error(ckpt.source(), ": a '", ckpt.meta("kind"),
                "' checkpoint; derive needs the checkpoint of a search");
  const ir::Graph graph = spec::compile(space);
  const Algorithm& algorithm = find_algorithm(ckpt.meta("algorithm"));
  ArchState arch = prepared_arch_state(algorithm, graph, space, AlgorithmOptions{}, 0);
  restore_logits(graph, arch, ckpt);
  if (arch.relaxation == Relaxation::sparse_code) restore_sparse_nodes(graph, arch, ckpt, false);
  return derive(space, graph, arch);
}

}  // namespace cellgraph::algorithms
