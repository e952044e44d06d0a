#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/cli.h"

using namespace cellgraph;
namespace fs = std::filesystem;

namespace {

fs::path source_dir() { return CELLGRAPH_SOURCE_DIR; }

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot read ", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<fs::path> files_with(const fs::path& dir, const std::string& extension) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == extension)
      out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

spec::Space good(const std::string& name) {
  return spec::parse_file((source_dir() / "tests/specs/good" / name).string());
}

// The message parse_string throws for `text`, or "" when it parses.
std::string error_of(const std::string& text, const std::string& label = "x.json") {
  try {
    spec::parse_string(text, label);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The message reading `text` throws, else the one compiling it throws, or "" when both
// succeed: a spec under bad/ may be one that only the built network shows to be wrong.
std::string parse_or_compile_error_of(const std::string& text, const std::string& label) {
  spec::Space space;
  try {
    space = spec::parse_string(text, label);
    spec::compile(space);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// What is wrong with the specs in `dir`, all of which should read and compile: one entry
// per file that fails. A spec the compiler does not support yet (recurrent cells) is only
// read; the reason is printed.
std::vector<std::string> problems_of_good_specs(const fs::path& dir) {
  std::vector<std::string> problems;
  for (const fs::path& file : files_with(dir, ".json")) {
    try {
      const spec::Space space = spec::parse_file(file.string());
      if (const std::optional<spec::Unsupported> u = spec::unsupported_by_compile(space)) {
        MESSAGE("compile skipped for ", file.filename().string(), ": ", u->pointer, ": ", u->what);
        continue;
      }
      spec::compile(space);
    } catch (const Error& e) {
      problems.emplace_back(e.what());
    }
  }
  return problems;
}

// to_json is a normal form: reading it back and writing again changes nothing.
void check_round_trip(const spec::Space& space) {
  const std::string first = spec::to_json(space);
  spec::Space again;
  REQUIRE_NOTHROW(again = spec::parse_string(first, "round_trip.json"));
  CHECK(spec::to_json(again) == first);
}

// A small valid spec to which the unit cases below make one change each.
const char* const kTiny = R"({
  "format": 1, "name": "tiny",
  "cells": [{"name": "c", "inputs": ["c_k-2", "c_k-1"],
             "nodes": [{"name": "a", "from": ["c_k-2", "c_k-1"], "ops": ["skip_connect", "none"]}],
             "output": {"node": "a"}}],
  "network": {"input": [3, 8, 8], "classes": 10, "body": [{"cell": "c", "channels": 4}],
              "head": [{"op": "global_avg_pool"}, {"op": "linear"}]}
})";

}  // namespace

TEST_CASE("spec: the darts_cnn example parses with the documented defaults") {
  const std::string path = (source_dir() / "examples/spaces/darts_cnn.json").string();
  const spec::Space s = spec::parse_file(path);
  CHECK(s.file == path);
  CHECK(s.name == "darts_cnn");
  REQUIRE(s.cells.size() == 2);
  const spec::Cell& normal = s.cells[0];
  CHECK(normal.kind == CellForm::convolutional);
  CHECK(normal.preprocess == "auto");
  CHECK_FALSE(normal.reduction);
  CHECK(s.cells[1].reduction);
  REQUIRE(normal.nodes.size() == 4);
  CHECK(normal.nodes[3].edges.size() == 5);
  CHECK(normal.nodes[3].keep == 2);
  const spec::Edge& e = normal.nodes[1].edges[2];
  CHECK(e.from == "n0");
  CHECK(e.op_set == "darts");
  CHECK(e.ops.size() == 8);
  CHECK(e.pointer == "/cells/0/nodes/1/from/2");
  CHECK(e.from_pointer == "/cells/0/nodes/1/from/2");
  CHECK(normal.nodes[1].pointer == "/cells/0/nodes/1");
  CHECK(normal.output.concat == std::vector<std::string>{"n0", "n1", "n2", "n3"});
  CHECK(normal.output.pointers[1] == "/cells/0/output/concat/1");
  CHECK(s.network.body.size() == 5);
  CHECK(s.network.body[0].repeat == 2);
  CHECK(s.network.body[1].repeat == 1);
  CHECK(s.network.body[3].pointer == "/network/body/3");
  CHECK(s.network.stem[0].channels == 48);
  CHECK(s.network.in_channels == 3);
  CHECK(s.network.classes == 10);
  CHECK(s.arch.init_std == doctest::Approx(0.001));
  CHECK(s.arch.share_by_cell);
  CHECK_FALSE(s.is_fixed());
  check_round_trip(s);
}

TEST_CASE("spec: every good spec parses and round-trips through to_json") {
  const std::vector<fs::path> files = files_with(source_dir() / "tests/specs/good", ".json");
  CHECK(files.size() >= 6);
  for (const fs::path& file : files) {
    INFO("spec: ", file.filename().string());
    spec::Space s;
    REQUIRE_NOTHROW(s = spec::parse_file(file.string()));
    check_round_trip(s);
  }
}

TEST_CASE("spec: the example spaces and networks and the benchmark spaces parse and compile") {
  std::vector<fs::path> files = files_with(source_dir() / "examples/spaces", ".json");
  for (const char* dir : {"examples/networks", "bench/spaces"})
    for (const fs::path& f : files_with(source_dir() / dir, ".json")) files.push_back(f);
  CHECK(files.size() >= 18);
  for (const fs::path& file : files) {
    INFO("spec: ", file.string());
    spec::Space s;
    REQUIRE_NOTHROW(s = spec::parse_file(file.string()));
    ir::Graph g;
    REQUIRE_NOTHROW(g = spec::compile(s));
    CHECK(g.weight_count() > 0);
    check_round_trip(s);
  }
}

TEST_CASE("spec: the NATS-Bench topology cell and its residual blocks") {
  const spec::Space s =
      spec::parse_file((source_dir() / "examples/spaces/nats_bench_tss.json").string());
  const spec::Cell& cell = s.cells.at(0);
  CHECK(cell.inputs == std::vector<std::string>{"in"});
  CHECK(cell.preprocess == "none");
  CHECK(cell.output.concat == std::vector<std::string>{"n3"});
  REQUIRE(cell.nodes.size() == 3);
  CHECK(cell.nodes[2].edges.size() == 3);
  CHECK(cell.nodes[2].keep == 0);  // not given: every edge is kept (Node::keep)
  CHECK(cell.nodes[2].edges[0].ops == std::vector<std::string>{"none", "skip_connect",
                                                               "nor_conv_1x1", "nor_conv_3x3",
                                                               "avg_pool_3x3"});
  REQUIRE(s.network.body.size() == 5);
  CHECK(s.network.body[1].block == "residual");
  CHECK(s.network.body[1].stride == 2);
  CHECK(s.network.body[1].channels == 32);
  CHECK(s.network.body[2].repeat == 5);
  CHECK(s.network.head.size() == 4);
  CHECK(s.network.head[0].op == "batch_norm");
}

TEST_CASE("spec: the HB cell keeps parallel edges, their one-hot starts and logits") {
  const spec::Space s = good("hb_cell.json");
  const spec::Node& node = s.cells.at(0).nodes.at(0);
  REQUIRE(node.edges.size() == 3);
  CHECK(node.edges[0].from == "x_t");
  CHECK(node.edges[1].from == "x_t");  // a parallel edge, not a duplicate
  CHECK(node.edges[0].init_one_hot == "skip_connect");
  CHECK(node.edges[0].init.empty());
  CHECK(node.edges[1].init == std::map<std::string, double>{{"sep_conv_3x3", 1.0}});
  CHECK(node.edges[2].init_one_hot == "neg_identity");
  CHECK(node.edges[2].pointer == "/cells/0/nodes/0/edges/2");
  CHECK(node.edges[2].from_pointer == "/cells/0/nodes/0/edges/2/from");
  const spec::Node& y = s.cells.at(0).nodes.at(1);
  CHECK(y.edges[0].init.at("sep_conv_3x3") == -0.5);
  CHECK(y.edges[2].ops == std::vector<std::string>{"skip_connect"});
  CHECK(s.arch.init_std == 0.0);
  CHECK(s.arch.share_by_cell);
  const std::string written = spec::to_json(s);
  CHECK(written.find("\"init\": {\"sep_conv_3x3\": 1.0}") != std::string::npos);
  CHECK(written.find(R"({"from": "x_t", "ops": "hb", "init_one_hot": "skip_connect"})") !=
        std::string::npos);
}

TEST_CASE("spec: the AGD cell has per-edge path weights") {
  const spec::Space s = good("agd_cell.json");
  CHECK(s.cells.at(0).nodes.at(0).path_weights);
  CHECK(s.cells.at(0).nodes.at(1).path_weights);
  CHECK(s.cells.at(0).nodes.at(1).keep == 2);
  CHECK(s.cells.at(0).nodes.at(0).edges.size() == 3);
  CHECK_FALSE(s.network.stem.at(1).affine);
  CHECK(spec::to_json(s).find("\"path_weights\": true") != std::string::npos);
}

TEST_CASE("spec: a fixed network has one op per edge and is written with 'op'") {
  const spec::Space s = good("fixed_darts_v2.json");
  CHECK(s.is_fixed());
  CHECK(s.op_sets.empty());
  CHECK(s.cells.at(0).nodes.at(3).edges.at(1).ops == std::vector<std::string>{"dil_conv_3x3"});
  const std::string written = spec::to_json(s);
  CHECK(written.find("\"ops\"") == std::string::npos);
  CHECK(written.find(R"({"name": "n0", "from": ["c_k-2", "c_k-1"], "op": "sep_conv_3x3"})") !=
        std::string::npos);
  CHECK(written.find(R"({"from": "n0", "op": "dil_conv_3x3"})") != std::string::npos);
}

TEST_CASE("spec: a recurrent DARTS-RNN cell") {
  const spec::Space s = good("darts_rnn.json");
  const spec::Cell& cell = s.cells.at(0);
  CHECK(cell.kind == CellForm::recurrent);
  CHECK(cell.steps == 8);
  CHECK(cell.nodes.size() == 8);
  CHECK(cell.nodes[7].edges.size() == 8);
  CHECK(cell.nodes[7].keep == 1);
  CHECK(cell.nodes[0].edges[0].ops ==
        std::vector<std::string>{"none", "tanh", "relu", "sigmoid", "identity"});
  CHECK(s.network.stem.empty());
}

TEST_CASE("spec: defaults of optional fields") {
  const spec::Space s = spec::parse_string(kTiny, "tiny.json");
  const spec::Cell& cell = s.cells.at(0);
  CHECK(cell.kind == CellForm::convolutional);
  CHECK(cell.preprocess == "auto");
  CHECK_FALSE(cell.reduction);
  CHECK(cell.steps == 0);
  CHECK(cell.nodes.at(0).keep == 0);
  CHECK_FALSE(cell.nodes.at(0).path_weights);
  CHECK(cell.nodes.at(0).edges.at(0).op_set.empty());
  CHECK(cell.nodes.at(0).edges.at(0).init.empty());
  CHECK(s.network.stem.empty());
  CHECK(s.network.body.at(0).repeat == 1);
  CHECK(s.network.body.at(0).stride == 1);
  CHECK(s.arch.init_std == 0.001);
  CHECK(s.arch.share_by_cell);
  CHECK(s.description.empty());
  check_round_trip(s);
}

TEST_CASE("spec: an unused cell is fine, and keep is written only when given") {
  std::string text = kTiny;
  text.insert(text.find("{\"name\": \"c\""),
              R"({"name": "spare", "inputs": ["x"], "nodes": [{"name": "y", "from": ["x", "x"],
                  "op": "skip_connect", "keep": 2}], "output": {"node": "y"}}, )");
  const spec::Space s = spec::parse_string(text, "x.json");
  REQUIRE(s.cells.size() == 2);
  CHECK(s.cells[0].nodes.at(0).keep == 2);
  const std::string written = spec::to_json(s);
  CHECK(written.find(R"({"name": "y", "from": ["x", "x"], "op": "skip_connect", "keep": 2})") !=
        std::string::npos);
  CHECK(written.find(
            R"({"name": "a", "from": ["c_k-2", "c_k-1"], "ops": ["skip_connect", "none"]})") !=
        std::string::npos);
  check_round_trip(s);
}

TEST_CASE("spec: every bad spec fails to read or to compile with its expected message") {
  const fs::path dir = source_dir() / "tests/specs/bad";
  const std::vector<fs::path> files = files_with(dir, ".json");
  CHECK(files.size() >= 30);
  for (const fs::path& file : files) {
    const std::string name = file.filename().string();
    INFO("spec: tests/specs/bad/", name);
    fs::path expected_file = file;
    expected_file.replace_extension(".expected");
    std::string expected = read_text(expected_file);
    while (!expected.empty() && (expected.back() == '\n' || expected.back() == '\r'))
      expected.pop_back();
    CHECK(parse_or_compile_error_of(read_text(file), name) == expected);
  }
}

TEST_CASE("spec: every spec under tests/specs/good reads and compiles") {
  const fs::path dir = source_dir() / "tests/specs/good";
  CHECK(files_with(dir, ".json").size() >= 7);
  const std::vector<std::string> problems = problems_of_good_specs(dir);
  for (const std::string& problem : problems) FAIL_CHECK(problem);
  CHECK(problems.empty());
}

TEST_CASE("spec: the good-spec check reads its directory, so a bad file dropped in fails it") {
  testing::TempDir dir("cellgraph_good_specs");
  const fs::path good_dir = source_dir() / "tests/specs/good";
  const fs::path bad_dir = source_dir() / "tests/specs/bad";
  for (const fs::path& file : files_with(good_dir, ".json"))
    fs::copy_file(file, dir.path / file.filename());
  CHECK(problems_of_good_specs(dir.path).empty());
  // One that fails to read, one that fails to compile.
  for (const char* name : {"arch_share_none.json", "compile_factorized_reduce_stride_1.json"})
    fs::copy_file(bad_dir / name, dir.path / name);
  const std::vector<std::string> problems = problems_of_good_specs(dir.path);
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].rfind(dir / "arch_share_none.json:/arch/share: ", 0) == 0);
  CHECK(problems[1].rfind(
            dir / "compile_factorized_reduce_stride_1.json:/cells/0/nodes/0/edges/1: ", 0) == 0);
}

TEST_CASE("spec: a recurrent language model reads, writes back and compiles") {
  const spec::Space s = good("darts_rnn.json");
  CHECK(s.network.is_language_model());
  CHECK(s.network.sequence_length == 35);
  REQUIRE(s.network.dropout.has_value());
  CHECK(s.network.dropout->output == 0.75);
  CHECK(s.network.dropout->hidden == 0.25);
  CHECK(s.network.dropout->x == 0.75);
  CHECK(s.network.dropout->input == 0.2);
  CHECK(s.network.dropout->embedding == 0.0);
  CHECK_FALSE(spec::unsupported_by_compile(s).has_value());
  const std::string written = spec::to_json(s);
  CHECK(written.find(R"("input": [35])") != std::string::npos);
  check_round_trip(s);
  CHECK(spec::parse_string(written, "again.json").network.dropout == s.network.dropout);
  const ir::Graph g = spec::compile(s);
  CHECK(g.value(g.logits).shape == Shape{1, 35, 10000});
  // An unused recurrent cell beside an image network is fine.
  spec::Space unused = good("darts_cnn.json");
  unused.cells.push_back(s.cells.at(0));
  CHECK_NOTHROW(spec::compile(unused));
}

TEST_CASE("spec: parse_file names the file, or says why it cannot read it") {
  CHECK_THROWS_WITH_AS(spec::parse_file("/nonexistent/space.json"),
                       "/nonexistent/space.json: cannot open: No such file or directory", Error);
  const std::string dir = (source_dir() / "tests/specs").string();
  CHECK_THROWS_WITH_AS(spec::parse_file(dir), (dir + ": cannot open: Is a directory").c_str(),
                       Error);
  const std::string bad = (source_dir() / "tests/specs/bad/unknown_op.json").string();
  try {
    spec::parse_file(bad);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).rfind(bad + ":/cells/", 0) == 0);
  }
}

TEST_CASE("spec: JSON pointers escape '~' and '/' in keys") {
  std::string text = kTiny;
  text.insert(text.find("\"cells\""), "\"op_sets\": {\"a/b~c\": [\"none\"]}, ");
  CHECK(error_of(text) ==
        "x.json:/op_sets/a~1b~0c: invalid op set name 'a/b~c'; expected "
        "letters, digits, '_' and '-', starting with a letter");
}

TEST_CASE("spec: pathological inputs throw cellgraph::Error and nothing else") {
  std::vector<std::string> inputs = {"",
                                     " ",
                                     "null",
                                     "[]",
                                     "\"spec\"",
                                     "{}",
                                     "{\"format\": 1}",
                                     "{\"format\": 1.0}",
                                     "{\"format\": 1e400}",
                                     "{\"format\": -1e400}",
                                     "{\"format\": 99999999999999999999999}",
                                     "{\"format\": -9223372036854775809}",
                                     "{\"format\": NaN}",
                                     "{\"format\": Infinity}",
                                     "{\"format\": 1,",
                                     "\xef\xbb\xbf{",
                                     "{\"a\": \"\\ud800\"}",
                                     "{\"a\": \"\xff\xfe\"}",
                                     std::string(100000, '['),
                                     std::string(100000, '{'),
                                     std::string(3, '\0')};
  std::string nested = kTiny;  // valid JSON nested far too deep inside a spec
  nested.insert(nested.find("\"format\""),
                "\"deep\": " + std::string(500, '[') + std::string(500, ']') + ", ");
  inputs.push_back(nested);
  for (const char* huge : {"1e308", "-5", "0", "65537", "1.5", "true", "null", "\"16\"",
                           "18446744073709551615", "9223372036854775808", "[16]", "{}"}) {
    const std::string base = kTiny;
    const std::size_t at = base.find("\"channels\": 4") + 12;
    std::string text = base.substr(0, at);  // piecewise: GCC 12 -Wrestrict misfires on replace
    text += huge;
    text += base.substr(at + 1);
    inputs.push_back(text);
  }
  for (const std::string& text : inputs) {
    INFO("input: ", text.substr(0, 200));
    CHECK_THROWS_AS(spec::parse_string(text, "x.json"), Error);
  }
  CHECK(error_of(std::string(100000, '[')) ==
        "x.json:line 1, column 65: JSON nested deeper than 64 levels; a spec needs about 6");
  CHECK(error_of(nested).find("JSON nested deeper than 64 levels") != std::string::npos);
}

TEST_CASE("spec: randomly mutated specs parse or throw cellgraph::Error") {
  const std::string original = read_text(source_dir() / "examples/spaces/darts_cnn.json");
  // The string literals of the spec, to swap one name for another (valid JSON, wrong spec).
  std::vector<std::string> literals;
  for (std::size_t i = original.find('"'); i != std::string::npos;) {
    const std::size_t end = original.find('"', i + 1);
    if (end == std::string::npos) break;
    literals.push_back(original.substr(i, end - i + 1));
    i = original.find('"', end + 1);
  }
  std::mt19937 rng(20240521);
  auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  int parsed = 0, rejected = 0;
  for (int trial = 0; trial < 600; ++trial) {
    std::string text = original;
    const int edits = 1 + static_cast<int>(pick(3));
    for (int k = 0; k < edits && !text.empty(); ++k) {
      switch (pick(6)) {
        case 0:  // flip a byte to anything
          text[pick(text.size())] = static_cast<char>(pick(256));
          break;
        case 1:  // truncate
          text.resize(pick(text.size()));
          break;
        case 2: {  // delete a run
          const std::size_t at = pick(text.size());
          text.erase(at, 1 + pick(20));
          break;
        }
        case 3: {  // duplicate a run
          const std::size_t at = pick(text.size());
          text.insert(at, text.substr(at, 1 + pick(40)));
          break;
        }
        case 4: {  // change a digit
          const std::size_t at = text.find_first_of("0123456789", pick(text.size()));
          if (at != std::string::npos) text[at] = static_cast<char>('0' + pick(10));
          break;
        }
        default: {  // replace a string literal with another one of the spec
          const std::string& from = literals[pick(literals.size())];
          const std::size_t at = text.find(from, pick(text.size()));
          if (at != std::string::npos)
            text.replace(at, from.size(), literals[pick(literals.size())]);
        }
      }
    }
    try {
      const spec::Space s = spec::parse_string(text, "mutated.json");
      ++parsed;
      CHECK_NOTHROW(spec::parse_string(spec::to_json(s), "again.json"));
    } catch (const Error& e) {
      ++rejected;
      CHECK(std::string(e.what()).rfind("mutated.json:", 0) == 0);
    } catch (const std::exception& e) {
      FAIL("trial ", trial, " threw a non-cellgraph exception: ", e.what());
    }
  }
  INFO("mutated specs: ", parsed, " parsed, ", rejected, " rejected");
  CHECK(parsed > 0);  // some mutations leave a valid spec (a digit in a description, ...)
  CHECK(rejected > 300);
}
