// Hyperparameter tables: every algorithm's options come from one table each, from which
// flags, validation and config.json derive; the registry's tables must not collide.
#include <set>

#include <doctest/doctest.h>

#include "algorithms/algorithm.h"
#include "algorithms/hyperparameters.h"
#include "algorithms/search_session.h"
#include "engine/error.h"
#include "spec/json_value.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {
HyperValues sample() {
  Hyperparameter late = number("late", 2, 0, 10, "added later");
  late.optional_in_config = true;
  return HyperValues({number("rate", 0.025, 0, 1e30, "a rate"),
                      integer("count", 7, 1, 100, "a count"),
                      choice("solver", {"fista", "ista"}, "a solver"), late});
}
}  // namespace

TEST_CASE("hyperparameters: defaults, text as users write it, and named errors") {
  HyperValues v = sample();
  CHECK(v.number("rate") == 0.025);
  CHECK(v.integer("count") == 7);
  CHECK(v.choice("solver") == "fista");
  v.set_text("rate", "0.1");
  v.set_text("count", "12");
  v.set_text("solver", "ista");
  CHECK(v.number("rate") == 0.1);
  CHECK(v.integer("count") == 12);
  CHECK(v.choice("solver") == "ista");
  CHECK_THROWS_WITH_AS(v.set_text("count", "2.5"),
                       "--count: expected an integer in [1, 100], got '2.5'", Error);
  CHECK_THROWS_WITH_AS(v.set_text("count", "0"),
                       "--count: expected an integer in [1, 100], got '0'", Error);
  CHECK_THROWS_WITH_AS(v.set_text("rate", "fast"), "--rate: expected a number >= 0, got 'fast'",
                       Error);
  CHECK_THROWS_WITH_AS(v.set_text("rate", "nan"), "--rate: expected a number >= 0, got 'nan'",
                       Error);
  CHECK_THROWS_WITH_AS(v.set_text("solver", "newton"),
                       "--solver: expected 'fista' or 'ista', got 'newton'", Error);
  CHECK(v.choice("solver") == "ista");  // a refused value changes nothing
}

TEST_CASE("hyperparameters: config.json round trip, keys added later default when absent") {
  HyperValues v = sample();
  v.set_text("rate", "0.5");
  v.set_text("count", "3");
  spec::JsonValue config = spec::JsonValue::object();
  v.write_json(config);
  CHECK(spec::dump(config) == R"({"rate":0.5,"count":3,"solver":"fista","late":2.0})");
  HyperValues back = sample();
  back.read_json(config, "config.json");
  CHECK(back.number("rate") == 0.5);
  CHECK(back.integer("count") == 3);

  // A config written before "late" existed resumes with its default.
  spec::JsonValue older = spec::JsonValue::object();
  for (const auto& [key, value] : config.members())
    if (key != "late") older.set(key, value);
  HyperValues from_older = sample();
  from_older.read_json(older, "config.json");
  CHECK(from_older.number("late") == 2);
  // A key present from the start must be there; wrong types and ranges are named.
  spec::JsonValue missing = spec::JsonValue::object();
  missing.set("count", 3);
  CHECK_THROWS_WITH_AS(sample().read_json(missing, "run/config.json"),
                       doctest::Contains("run/config.json:/rate: missing"), Error);
  config.set("count", 1000);
  CHECK_THROWS_WITH_AS(sample().read_json(config, "run/config.json"),
                       "run/config.json:/count: expected an integer in [1, 100]", Error);
  config.set("count", 3);
  config.set("solver", "newton");
  CHECK_THROWS_WITH_AS(sample().read_json(config, "run/config.json"),
                       "run/config.json:/solver: expected 'fista' or 'ista', got 'newton'", Error);
}

TEST_CASE("hyperparameters: free text (a file path) is kept as written, through config.json") {
  Hyperparameter path = text("table", "", "a file");
  HyperValues v({number("rate", 0.025, 0, 1e30, "a rate"), path});
  CHECK(v.text("table").empty());
  CHECK(path.default_text().empty());
  v.set_text("table", "runs/lat 1.json");
  CHECK(v.text("table") == "runs/lat 1.json");
  v.set_text("table", "0.5");  // not parsed as a number
  CHECK(v.text("table") == "0.5");
  spec::JsonValue config = spec::JsonValue::object();
  v.write_json(config);
  CHECK(spec::dump(config) == R"({"rate":0.025,"table":"0.5"})");
  HyperValues back({number("rate", 0.025, 0, 1e30, "a rate"), path});
  back.read_json(config, "config.json");
  CHECK(back.text("table") == "0.5");
  config.set("table", 3);
  CHECK_THROWS_WITH_AS(back.read_json(config, "run/config.json"),
                       "run/config.json:/table: expected a string", Error);
  CHECK(back.text("table") == "0.5");
}

TEST_CASE("registry: every algorithm has a step, and no table collides with the search's") {
  std::set<std::string> names, common;
  for (const Hyperparameter& h : search_hyperparameters()) common.insert(h.flag);
  for (const Algorithm* a : algorithms::algorithms()) {
    CAPTURE(a->name());
    CHECK(names.insert(a->name()).second);
    CHECK(!a->passes().empty());
    CHECK(!a->description().empty());
    CHECK(&find_algorithm(a->name()) == a);
    for (const Hyperparameter& h : a->hyperparameters()) {
      CAPTURE(h.flag);
      CHECK(common.count(h.flag) == 0);
      CHECK(!h.help.empty());
      // A flag two algorithms share means the same thing to both: one help, one default.
      for (const Algorithm* b : algorithms::algorithms())
        for (const Hyperparameter& other : b->hyperparameters())
          if (other.flag == h.flag) {
            CHECK(other.help == h.help);
            CHECK(other.default_text() == h.default_text());
          }
    }
  }
  CHECK(names.size() >= 6);
}
