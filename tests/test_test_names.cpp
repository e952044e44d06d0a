// ctest runs each TEST_CASE as `cellgraph_tests --test-case=NAME` (doctest_discover_tests).
// CMake splits lists at ';', so a name containing one becomes a filter that matches no test
// case: the entry then runs nothing and passes. Fifteen cases went unrun that way; this
// keeps it from happening again.
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "tests/support/cli.h"

namespace fs = std::filesystem;

TEST_CASE("tests: no test case name contains a semicolon (ctest would run nothing for it)") {
  const std::regex test_case(R"re(TEST_CASE\(\s*("(?:[^"\\]|\\.)*"(?:\s*"(?:[^"\\]|\\.)*")*))re");
  std::vector<std::string> bad;
  int names = 0;
  for (const fs::directory_entry& e :
       fs::directory_iterator(fs::path(CELLGRAPH_SOURCE_DIR) / "tests")) {
    if (e.path().extension() != ".cpp") continue;
    const std::string text = cellgraph::testing::read_text(e.path().string());
    for (std::sregex_iterator it(text.begin(), text.end(), test_case), end; it != end; ++it) {
      ++names;
      const std::string name = (*it)[1].str();
      if (name.find(';') != std::string::npos)
        bad.push_back(e.path().filename().string() + ": " + name);
    }
  }
  CHECK(names > 300);  // the scan found the suite
  for (const std::string& b : bad) FAIL_CHECK(b);
  CHECK(bad.empty());
}
