// The user-facing docs stand on their own and their examples are true: no doc points at
// files a user of the project does not have, example output quoted in docs/cli.md is
// what the command prints today, and every code block ends where it should.
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "tests/support/cli.h"

using namespace cellgraph;

namespace {
namespace fs = std::filesystem;
const char* const kSource = CELLGRAPH_SOURCE_DIR;

// The Markdown files of the top folder, docs/ and bench/.
std::vector<fs::path> markdown_files() {
  std::vector<fs::path> out;
  for (const fs::path& dir :
       {fs::path(kSource), fs::path(kSource) / "docs", fs::path(kSource) / "bench"})
    for (const fs::directory_entry& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".md") out.push_back(e.path());
  return out;
}

// Lines ("line N: text") where a fenced code block was meant to close but the line holds
// more than the fence, which Markdown does not take as a close: the block runs on, and the
// prose after it shows as code.
std::vector<std::string> bad_fences(const std::string& text) {
  std::vector<std::string> bad;
  std::istringstream lines(text);
  std::string line;
  bool inside = false;
  for (int number = 1; std::getline(lines, line); ++number) {
    const size_t start = line.find_first_not_of(' ');
    if (start == std::string::npos || line.compare(start, 3, "```") != 0) continue;
    if (inside && line.find_last_not_of(' ') != start + 2) {
      bad.push_back("line " + std::to_string(number) + ": " + line);
      continue;  // still inside the block
    }
    inside = !inside;
  }
  if (inside) bad.emplace_back("a code block is never closed");
  return bad;
}
}  // namespace

TEST_CASE("docs: no document refers to the developers' shared folder") {
  const std::vector<fs::path> files = markdown_files();
  for (const fs::path& file : files) {
    CAPTURE(file.string());
    const std::string text = testing::read_text(file.string());
    CHECK(!testing::has(text, "../shared"));
    CHECK(!testing::has(text, "DESIGN.md"));
  }
  CHECK(files.size() >= 5);
}

TEST_CASE("docs: every code block closes with a bare fence") {
  CHECK(bad_fences("text\n```sh\nrun\n```\nmore\n").empty());
  CHECK(bad_fences("```\nrun\n``` `not.md` closes nothing\n```\n").size() == 1);
  CHECK(bad_fences("```sh\nrun\n").size() == 1);
  for (const fs::path& file : markdown_files()) {
    CAPTURE(file.string());
    std::string found;
    for (const std::string& line : bad_fences(testing::read_text(file.string())))
      found += line + "\n";
    CHECK_MESSAGE(found.empty(), found);
  }
}

TEST_CASE("docs: cli.md's export example prints what export prints") {
  const std::string doc = testing::read_text(std::string(kSource) + "/docs/cli.md");
  const std::string prefix = "wrote net.onnx: network of examples/networks/nats_tss_00001.json";
  const size_t at = doc.find(prefix);
  REQUIRE(at != std::string::npos);
  const std::string documented = doc.substr(at, doc.find('\n', at) - at);
  testing::TempDir dir;
  const testing::Result r = testing::run_shell(
      "cd " + std::string(kSource) + " && " + CELLGRAPH_CLI_PATH +
          " export examples/networks/nats_tss_00001.json --seed 3 --onnx " + (dir / "net.onnx"),
      dir);
  REQUIRE(r.status == 0);
  std::string printed = r.out.substr(0, r.out.find('\n'));
  printed.replace(printed.find(dir / "net.onnx"), (dir / "net.onnx").size(), "net.onnx");
  CHECK(printed == documented);
}
