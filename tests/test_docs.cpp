// The user-facing docs stand on their own and their examples are true: no doc points at
// files a user of the project does not have, and example output quoted in docs/cli.md is
// what the command prints today.
#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "tests/support/cli.h"

using namespace cellgraph;

namespace {
namespace fs = std::filesystem;
const std::string kSource = CELLGRAPH_SOURCE_DIR;
}  // namespace

TEST_CASE("docs: no document refers to the developers' shared folder") {
  int checked = 0;
  for (const fs::path& dir :
       {fs::path(kSource), fs::path(kSource) / "docs", fs::path(kSource) / "bench"})
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
      if (e.path().extension() != ".md") continue;
      CAPTURE(e.path().string());
      const std::string text = testing::read_text(e.path().string());
      CHECK(!testing::has(text, "../shared"));
      CHECK(!testing::has(text, "DESIGN.md"));
      ++checked;
    }
  CHECK(checked >= 5);
}

TEST_CASE("docs: cli.md's export example prints what export prints") {
  const std::string doc = testing::read_text(kSource + "/docs/cli.md");
  const std::string prefix = "wrote net.onnx: network of examples/networks/nats_tss_00001.json";
  const size_t at = doc.find(prefix);
  REQUIRE(at != std::string::npos);
  const std::string documented = doc.substr(at, doc.find('\n', at) - at);
  testing::TempDir dir;
  const testing::Result r = testing::run_shell(
      "cd " + kSource + " && " + CELLGRAPH_CLI_PATH +
          " export examples/networks/nats_tss_00001.json --seed 3 --onnx " + (dir / "net.onnx"),
      dir);
  REQUIRE(r.status == 0);
  std::string printed = r.out.substr(0, r.out.find('\n'));
  printed.replace(printed.find(dir / "net.onnx"), (dir / "net.onnx").size(), "net.onnx");
  CHECK(printed == documented);
}
