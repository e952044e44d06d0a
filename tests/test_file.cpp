// engine/io/file.h, the one whole-file reader and the one atomic writer: every byte
// comes back, failures name the file, a bound stops wrong files and endless devices, and
// a replacement is all or nothing.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "engine/io/file.h"
#include "spec/parse.h"
#include "tests/support/cli.h"
#include "tests/support/errors.h"

using namespace cellgraph;

namespace {
using testing::error_of;
using testing::has;
// Independent of the code under test: plain iostreams (tests/support/cli.h).
const auto& read_bytes = testing::read_text;
using testing::TempDir;
namespace fs = std::filesystem;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// 200,000 bytes of every value, NULs included: more than three 64 KiB reads.
std::string all_byte_values() {
  std::string bytes(200000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char((i * 7 + i / 256) % 256);
  return bytes;
}
}  // namespace

TEST_CASE("file: read_file returns every byte, and names the file it cannot open") {
  TempDir dir;
  const std::string path = dir / "data.bin";
  const std::string bytes = all_byte_values();
  write_bytes(path, bytes);
  CHECK(io::read_file(path) == bytes);
  write_bytes(path, "");
  CHECK(io::read_file(path).empty());
  CHECK(error_of([&] { io::read_file(dir / "missing.bin"); }) ==
        (dir / "missing.bin") + ": cannot open: No such file or directory");
  CHECK(error_of([&] { io::read_file(dir.path.string()); }) ==
        dir.path.string() + ": cannot open: Is a directory");
}

TEST_CASE("file: a read limit refuses a larger file and stops an endless device") {
  TempDir dir;
  const std::string path = dir / "ten.txt";
  write_bytes(path, "0123456789");
  CHECK(io::read_file(path, {10, "small"}) == "0123456789");
  CHECK(error_of([&] {
          io::read_file(path, {9, "a test file is small"});
        }) == path + ": the file has 10 bytes; a test file is small (at most 9)");
  // /dev/zero reports no size and never ends.
  CHECK(error_of([&] {
          io::read_file("/dev/zero", {100000, "zeros"});
        }) == "/dev/zero: more than 100000 bytes; zeros");
}

TEST_CASE("file: write_file_atomic replaces the file whole and leaves no temporary") {
  TempDir dir;
  const std::string path = dir / "out.bin";
  io::write_file_atomic(path, "first");
  io::write_file_atomic(path, all_byte_values());
  CHECK(read_bytes(path) == all_byte_values());
  CHECK_FALSE(fs::exists(path + ".tmp"));
  io::write_file_atomic(path, "");
  CHECK(read_bytes(path).empty());
  CHECK(fs::exists(path));
}

TEST_CASE("file: a failed atomic write names the file and leaves the old one as it was") {
  TempDir dir;
  const std::string path = dir / "out.txt";
  io::write_file_atomic(path, "old");
  // PATH.tmp cannot be created when a directory has its name (works as root too).
  fs::create_directory(path + ".tmp");
  CHECK(has(error_of([&] { io::write_file_atomic(path, "new"); }), path + ".tmp: cannot create"));
  CHECK(read_bytes(path) == "old");
  fs::remove(path + ".tmp");
  // Renaming over a directory fails after the temporary was written: it is removed.
  const std::string taken = dir / "taken";
  fs::create_directory(taken);
  CHECK(has(error_of([&] { io::write_file_atomic(taken, "x"); }),
            taken + ": cannot replace with " + taken + ".tmp"));
  CHECK_FALSE(fs::exists(taken + ".tmp"));
  CHECK(fs::is_directory(taken));
  const std::string nowhere = dir / "no/such/dir/out.txt";
  CHECK(
      has(error_of([&] { io::write_file_atomic(nowhere, "x"); }), nowhere + ".tmp: cannot create"));
}

TEST_CASE("file: spec::parse_file refuses a file over 16 MiB before reading it") {
  TempDir dir;
  const std::string path = dir / "huge.json";
  write_bytes(path, "");
  fs::resize_file(path, (16 << 20) + 1);  // sparse: costs no disk
  CHECK(error_of([&] { spec::parse_file(path); }) ==
        path + ": the file has 16777217 bytes; a spec is a small JSON file (at most 16777216)");
}
