// Reading back what a `cellgraph` run wrote, for the CLI tests: the tiny search space as a
// file, metrics.jsonl without its timings, and a bit-for-bit comparison of two checkpoints.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/io/checkpoint.h"
#include "spec/json_value.h"
#include "tests/support/bits.h"
#include "tests/support/cli.h"
#include "tests/support/tiny_space.h"

namespace cellgraph::testing {

// kTinySpace as DIR/tiny.json (input [1, 8, 8]: the runner fits it to the data's shape).
inline std::string write_tiny_space(const TempDir& dir) {
  std::string path = dir / "tiny.json";
  std::ofstream(path) << kTinySpace;
  return path;
}

// metrics.jsonl without the timings, line by line.
inline std::vector<std::string> metric_values(const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line)) {
    const spec::JsonValue v = spec::parse_json_string(line, path);
    spec::JsonValue kept = spec::JsonValue::object();
    for (const auto& [key, value] : v.members())
      if (key != "seconds_per_step" && key != "elapsed") kept.set(key, value);
    lines.push_back(spec::dump(kept));
  }
  return lines;
}

// Same entry names in the same order, every tensor equal bit for bit.
inline void check_same_tensors(const std::string& a_path, const std::string& b_path) {
  const io::Checkpoint a = io::load_checkpoint(a_path), b = io::load_checkpoint(b_path);
  REQUIRE(a.tensors().size() == b.tensors().size());
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    CAPTURE(a.tensors()[i].first);
    CHECK(a.tensors()[i].first == b.tensors()[i].first);
    const std::vector<float> x = a.tensors()[i].second.to_vector();
    const std::vector<float> y = b.tensors()[i].second.to_vector();
    REQUIRE(x.size() == y.size());
    CHECK(same_bits(x, y));
  }
}

}  // namespace cellgraph::testing
