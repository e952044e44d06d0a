// The spec's optional "metadata" object: accepted, kept as written (key order included)
// through to_json, and refused when it is not an object.
#include <string>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "spec/parse.h"

using namespace cellgraph;

namespace {

std::string tiny_with(const std::string& metadata_field) {
  return R"({
  "format": 1, "name": "tiny",)" +
         metadata_field + R"(
  "cells": [{"name": "c", "inputs": ["c_k-2", "c_k-1"],
             "nodes": [{"name": "a", "from": ["c_k-2", "c_k-1"], "op": "skip_connect"}],
             "output": {"node": "a"}}],
  "network": {"input": [3, 8, 8], "classes": 10, "body": [{"cell": "c", "channels": 4}],
              "head": [{"op": "global_avg_pool"}, {"op": "linear"}]}
})";
}

}  // namespace

TEST_CASE("spec: metadata is optional, kept in its order through to_json, and round-trips") {
  const spec::Space plain = spec::parse_string(tiny_with(""), "tiny.json");
  CHECK(plain.metadata.is_null());
  CHECK(spec::to_json(plain).find("metadata") == std::string::npos);

  const spec::Space s = spec::parse_string(
      tiny_with(
          R"( "metadata": {"zeta": 1, "alpha": {"b": [1, 2.5, "x"], "a": null}, "mid": true},)"),
      "tiny.json");
  REQUIRE(s.metadata.is_object());
  const spec::JsonValue::Members& m = s.metadata.members();
  REQUIRE(m.size() == 3);
  CHECK(m[0].first == "zeta");  // as written, not sorted
  CHECK(m[1].first == "alpha");
  CHECK(m[1].second.members()[0].first == "b");
  CHECK(m[1].second.find("b")->items()[1].as_double() == 2.5);
  CHECK(m[2].second.as_bool());

  const std::string written = spec::to_json(s);
  const spec::Space again = spec::parse_string(written, "again.json");
  CHECK(spec::dump(again.metadata) == spec::dump(s.metadata));
  CHECK(spec::to_json(again) == written);
  CHECK(written.find("\"metadata\": {") < written.find("\"cells\""));
}

TEST_CASE("spec: metadata that is not an object is refused, naming the field") {
  CHECK_THROWS_WITH_AS(spec::parse_string(tiny_with(R"( "metadata": [1, 2],)"), "x.json"),
                       "x.json:/metadata: expected an object (free-form facts about the space), "
                       "got an array",
                       Error);
  // A misspelt field still reads as a typo.
  CHECK_THROWS_WITH_AS(spec::parse_string(tiny_with(R"( "metdata": {},)"), "x.json"),
                       "x.json: unknown field 'metdata'; did you mean 'metadata'?", Error);
}
