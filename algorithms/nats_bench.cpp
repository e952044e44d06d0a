#include "algorithms/nats_bench.h"

#include <numeric>

#include "algorithms/cpython_random.h"
#include "algorithms/nats_bench_table.h"
#include "engine/error.h"

namespace cellgraph::algorithms {

namespace {

constexpr uint64_t kNatsShuffleSeed = 88;

// Both directions of NATS-Bench's numbering: index -> base-5 code of the cell, and back.
struct NatsOrder {
  std::vector<int32_t> code_of_index, index_of_code;
};

const NatsOrder& nats_order() {
  static const NatsOrder kOrder = [] {
    NatsOrder o;
    o.code_of_index.resize(size_t(kNatsCellCount));
    std::iota(o.code_of_index.begin(), o.code_of_index.end(), 0);  // the base-5 enumeration
    CPythonRandom rng(kNatsShuffleSeed);
    rng.shuffle(o.code_of_index);
    o.index_of_code.resize(size_t(kNatsCellCount));
    for (size_t i = 0; i < o.code_of_index.size(); ++i)
      o.index_of_code[size_t(o.code_of_index[i])] = int32_t(i);
    return o;
  }();
  return kOrder;
}

// The compiled-in table, checked once: one row per cell, in index order.
const detail::NatsTableRow* nats_table() {
  static const bool kChecked = [] {
    CG_ASSERT(detail::kNatsTableRows == kNatsCellCount, "the NATS-Bench table has ",
              detail::kNatsTableRows, " rows; expected ", kNatsCellCount);
    for (int64_t i = 0; i < kNatsCellCount; ++i)
      CG_ASSERT(detail::kNatsTable[i].index == i, "NATS-Bench table row ", i, " holds index ",
                detail::kNatsTable[i].index);
    return true;
  }();
  (void)kChecked;
  return detail::kNatsTable;
}

void check_index(int64_t index) {
  if (index < 0 || index >= kNatsCellCount)
    throw error("NATS-Bench index ", index, ": expected 0 to ", kNatsCellCount - 1);
}

std::optional<NatsOp> nats_op(std::string_view name) {
  for (int k = 0; k < kNatsOpCount; ++k)
    if (nats_op_names()[size_t(k)] == name) return NatsOp(k);
  return std::nullopt;
}

std::string op_list() {
  std::string out;
  for (std::string_view name : nats_op_names()) out.append(out.empty() ? "" : ", ").append(name);
  return out;
}

// Reads an arch string left to right; every complaint names the 1-based character.
class ArchParser {
 public:
  explicit ArchParser(std::string_view text) : text_(text) {}

  NatsCell parse() {
    NatsCell cell;
    int edge = 0;
    for (int node = 1; node <= 3; ++node) {
      if (node > 1)
        expect('+', "'+' before node " + std::to_string(node) + " (node " +
                        std::to_string(node - 1) + " has " + edges_text(node - 1) + ")");
      expect('|', "'|' opening node " + std::to_string(node));
      for (int from = 0; from < node; ++from) cell.ops[size_t(edge++)] = read_edge(node, from);
    }
    if (pos_ < text_.size())
      fail(pos_, "expected the end after node 3's 3 edges, got " + quoted_rest());
    return cell;
  }

 private:
  static std::string edges_text(int n) { return std::to_string(n) + (n == 1 ? " edge" : " edges"); }

  [[noreturn]] void fail(size_t at, const std::string& what) const {
    throw error("NATS-Bench arch string '", text_, "': character ", at + 1, ": ", what,
                " (the form is |op~0|+|op~0|op~1|+|op~0|op~1|op~2|)");
  }

  std::string quoted_rest() const {
    if (pos_ >= text_.size()) return "the end of the string";
    return "'" + std::string(text_.substr(pos_, 12)) + (text_.size() - pos_ > 12 ? "...'" : "'");
  }

  void expect(char c, const std::string& what) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return;
    }
    fail(pos_, "expected " + what + ", got " + quoted_rest());
  }

  // "op~j|": the op of the edge into `node` from node `from`.
  NatsOp read_edge(int node, int from) {
    const size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != '~' && text_[pos_] != '|' && text_[pos_] != '+')
      ++pos_;
    const std::string_view name = text_.substr(start, pos_ - start);
    const std::string edge =
        "node " + std::to_string(node) + "'s edge from node " + std::to_string(from);
    if (name.empty()) {
      pos_ = start;
      fail(start, "expected the op of " + edge + ", got " + quoted_rest());
    }
    const std::optional<NatsOp> op = nats_op(name);
    if (!op)
      fail(start,
           "unknown op '" + std::string(name) + "' on " + edge + "; expected one of: " + op_list());
    expect('~', "'~' and the node " + edge + " reads (~" + std::to_string(from) + ")");
    const size_t digits = pos_;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    const std::string_view number = text_.substr(digits, pos_ - digits);
    if (number.empty()) {
      pos_ = digits;
      fail(digits, "expected the node " + edge + " reads (" + std::to_string(from) + "), got " +
                       quoted_rest());
    }
    if (number != std::to_string(from))
      fail(digits, "node " + std::to_string(node) + " reads node " + std::string(number) +
                       " here; expected ~" + std::to_string(from) + " (node " +
                       std::to_string(node) + " lists nodes 0 to " + std::to_string(node - 1) +
                       " in order, one op each)");
    expect('|', "'|' after " + edge);
    return *op;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

int32_t code_of(const NatsCell& cell) {
  int32_t code = 0;
  for (NatsOp op : cell.ops) code = code * kNatsOpCount + int32_t(op);
  return code;
}

NatsCell cell_of_code(int32_t code) {
  NatsCell cell;
  for (int e = kNatsEdgeCount - 1; e >= 0; --e) {
    cell.ops[size_t(e)] = NatsOp(code % kNatsOpCount);
    code /= kNatsOpCount;
  }
  return cell;
}

}  // namespace

const std::array<std::string_view, kNatsOpCount>& nats_op_names() {
  static constexpr std::array<std::string_view, kNatsOpCount> kNames{
      "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"};
  return kNames;
}

NatsCell parse_nats_arch(std::string_view arch) { return ArchParser(arch).parse(); }

std::string nats_arch_string(const NatsCell& cell) {
  std::string out;
  for (int e = 0; e < kNatsEdgeCount; ++e) {
    if (e > 0 && kNatsEdgeFrom[size_t(e)] == 0) out += '+';  // a new node starts
    if (kNatsEdgeFrom[size_t(e)] == 0) out += '|';
    out.append(nats_op_names()[size_t(cell.ops[size_t(e)])]);
    out.append("~").append(std::to_string(kNatsEdgeFrom[size_t(e)])).append("|");
  }
  return out;
}

int64_t nats_index(const NatsCell& cell) {
  return nats_order().index_of_code[size_t(code_of(cell))];
}

NatsCell nats_cell_at(int64_t index) {
  check_index(index);
  return cell_of_code(nats_order().code_of_index[size_t(index)]);
}

NatsAccuracy nats_accuracy(int64_t index) {
  check_index(index);
  const detail::NatsTableRow& row = nats_table()[index];
  return {row.cifar10, row.cifar100, row.imagenet16_120};
}

NatsEntry nats_entry(int64_t index) {
  return {index, nats_arch_string(nats_cell_at(index)), nats_accuracy(index)};
}

NatsEntry nats_entry(std::string_view arch) {
  return nats_entry(nats_index(parse_nats_arch(arch)));
}

std::optional<NatsCell> nats_cell_of(const spec::Cell& cell, std::string* why) {
  auto no = [&](const std::string& reason) -> std::optional<NatsCell> {
    if (why != nullptr) *why = "cell '" + cell.name + "' " + reason;
    return std::nullopt;
  };
  if (cell.kind != spec::CellKind::convolutional) return no("is recurrent");
  if (cell.inputs.size() != 1) return no("has two inputs; a NATS cell has one");
  if (cell.reduction) return no("is a reduction cell");
  if (cell.nodes.size() != 3)
    return no("has " + std::to_string(cell.nodes.size()) + " nodes; a NATS cell has 3");
  if (cell.output.concat.size() != 1 || cell.output.concat[0] != cell.nodes[2].name)
    return no("does not output its last node alone");
  NatsCell out;  // every op none until an edge says otherwise
  int edge = 0;  // index of the node's first edge in NATS order
  for (int node = 1; node <= 3; ++node) {
    std::array<bool, 3> seen{};
    for (const spec::Edge& e : cell.nodes[size_t(node - 1)].edges) {
      const std::string where = "edge " + e.pointer;
      if (e.ops.size() != 1)
        return no(where + " has " + std::to_string(e.ops.size()) + " candidate ops; not fixed");
      const std::optional<NatsOp> op = nats_op(e.ops[0]);
      if (!op) return no(where + " has op '" + e.ops[0] + "', not one of: " + op_list());
      int from = -1;
      if (e.from == cell.inputs[0]) from = 0;
      for (int m = 0; m + 1 < node; ++m)
        if (e.from == cell.nodes[size_t(m)].name) from = m + 1;
      if (from < 0) return no(where + " reads '" + e.from + "', not an earlier node");
      if (seen[size_t(from)]) return no(where + " is a second edge from '" + e.from + "'");
      seen[size_t(from)] = true;
      out.ops[size_t(edge) + size_t(from)] = *op;
    }
    edge += node;
  }
  return out;
}

std::optional<NatsEntry> nats_lookup(const spec::Space& fixed) {
  const spec::Cell* only = nullptr;
  for (const spec::Stage& stage : fixed.network.body) {
    if (stage.cell.empty()) continue;
    const spec::Cell* cell = fixed.find_cell(stage.cell);
    if (cell == nullptr || (only != nullptr && cell != only)) return std::nullopt;
    only = cell;
  }
  if (only == nullptr) return std::nullopt;
  const std::optional<NatsCell> cell = nats_cell_of(*only);
  if (!cell) return std::nullopt;
  return nats_entry(nats_index(*cell));
}

SkipRatio skip_ratio(const spec::Space& fixed) {
  SkipRatio out;
  for (const spec::Cell& cell : fixed.cells) {
    if (cell.kind != spec::CellKind::convolutional) continue;
    SkipCount count{cell.name};
    for (const spec::Node& node : cell.nodes)
      for (const spec::Edge& e : node.edges) {
        if (e.ops.size() != 1)
          throw error(fixed.file, ":", e.pointer, ": the skip-connection ratio is defined for ",
                      "a fixed cell; this edge has ", e.ops.size(),
                      " candidate ops (derive the network first)");
        ++count.edges;
        count.skip += e.ops[0] == "skip_connect";
      }
    if (nats_cell_of(cell)) count.edges = kNatsEdgeCount;  // dropped none edges count
    out.skip += count.skip;
    out.edges += count.edges;
    out.cells.push_back(std::move(count));
  }
  return out;
}

}  // namespace cellgraph::algorithms
