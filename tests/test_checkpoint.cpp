// Checkpoint files: exact round trips, atomic replacement, and a named error for every kind
// of damage.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/tensor/random.h"
#include "tests/support/bits.h"
#include "tests/support/cli.h"
#include "tests/support/errors.h"

using namespace cellgraph;

namespace {
using testing::error_of;
using testing::has;
using testing::TempDir;

namespace fs = std::filesystem;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

io::Checkpoint sample() {
  Rng rng(3);
  io::Checkpoint c;
  c.set_meta("kind", "test");
  c.set_meta("loss", io::format_double(0.1 + 0.2));
  c.set_meta("step", "42");
  c.add("cells.0.weight", normal_tensor({4, 3, 3, 3}, 0, 1, rng));
  c.add("cells.0.bias", normal_tensor({4}, 0, 1, rng));
  c.add("scalar", Tensor::from_vector({1}, {-0.0f}));
  c.add("empty", Tensor::zeros({0, 5}));
  return c;
}

}  // namespace

TEST_CASE("checkpoint: a round trip is bit-exact, metadata and tensor order included") {
  TempDir dir;
  const io::Checkpoint original = sample();
  io::save_checkpoint(original, (dir / "a.bin"));
  const io::Checkpoint back = io::load_checkpoint((dir / "a.bin"));
  CHECK(back.source() == (dir / "a.bin"));
  CHECK(back.metadata() == original.metadata());
  CHECK(back.meta_double("loss") == 0.1 + 0.2);  // exactly, not approximately
  CHECK(back.meta_int("step") == 42);
  REQUIRE(back.tensors().size() == original.tensors().size());
  for (size_t i = 0; i < back.tensors().size(); ++i) {
    const auto& [name, t] = back.tensors()[i];
    CHECK(name == original.tensors()[i].first);
    CHECK(t.shape() == original.tensors()[i].second.shape());
    const std::vector<float> a = t.to_vector(), b = original.tensors()[i].second.to_vector();
    CHECK(testing::same_bits(a, b));
  }
  CHECK(std::signbit(back.find("scalar")->to_vector()[0]));
  // Saving what was loaded gives the same bytes.
  io::save_checkpoint(back, (dir / "b.bin"));
  CHECK(read_bytes((dir / "a.bin")) == read_bytes((dir / "b.bin")));
}

TEST_CASE("checkpoint: a failed write leaves the old file intact and no temporary behind") {
  TempDir dir;
  const std::string path = (dir / "ckpt.bin");
  io::save_checkpoint(sample(), path);
  const std::string before = read_bytes(path);
  // PATH.tmp cannot be created when a directory has its name (works as root too).
  fs::create_directory(path + ".tmp");
  io::Checkpoint other;
  other.add("x", Tensor::full({3}, 1.0f));
  const std::string message = error_of([&] { io::save_checkpoint(other, path); });
  CHECK(has(message, path + ".tmp: cannot create"));
  CHECK(read_bytes(path) == before);
  fs::remove(path + ".tmp");
  // A successful write replaces the file and removes the temporary.
  io::save_checkpoint(other, path);
  CHECK_FALSE(fs::exists(path + ".tmp"));
  CHECK(io::load_checkpoint(path).find("x") != nullptr);
  // Writing into a missing directory fails cleanly too.
  CHECK(has(error_of([&] { io::save_checkpoint(other, (dir / "no/such/dir.bin")); }),
            "cannot create"));
}

TEST_CASE("checkpoint: a truncated file names the entry where the data ends") {
  TempDir dir;
  const std::string path = (dir / "t.bin");
  io::save_checkpoint(sample(), path);
  const std::string full = read_bytes(path);
  // Cut in the header, the metadata, each tensor, and the checksum.
  const std::vector<std::pair<size_t, std::string>> cuts = {
      {3, "truncated in the header"},  // "CGC": the magic's prefix, then nothing
      {10, "truncated in the header"},
      {30, "truncated at metadata entry 1 of 3"},
      {full.size() - 4 - 5 * 4 - 20, "truncated at tensor entry"},
      {full.size() - 2, "truncated at the checksum"}};
  for (const auto& [size, expected] : cuts) {
    CAPTURE(size);
    write_bytes(path, full.substr(0, size));
    CHECK(has(error_of([&] { io::load_checkpoint(path); }), path + ": " + expected));
  }
  write_bytes(path, full.substr(0, full.size() - 4 - 20));
  const std::string message = error_of([&] { io::load_checkpoint(path); });
  CHECK(has(message, "tensor entry 4 of 4 ('empty')"));
  write_bytes(path, "");
  CHECK(has(error_of([&] { io::load_checkpoint(path); }), "bad magic"));
}

TEST_CASE("checkpoint: a flipped byte is a checksum mismatch; wrong magic and version are named") {
  TempDir dir;
  const std::string path = (dir / "c.bin");
  io::save_checkpoint(sample(), path);
  const std::string good = read_bytes(path);
  for (size_t at : {size_t(30), good.size() / 2, good.size() - 10}) {
    std::string bad = good;
    bad[at] = char(bad[at] ^ 0x10);
    write_bytes(path, bad);
    CAPTURE(at);
    CHECK(error_of([&] { io::load_checkpoint(path); }) ==
          path + ": checksum mismatch: the file is corrupted");
  }
  std::string magic = good;
  magic[0] = 'X';
  write_bytes(path, magic);
  CHECK(has(error_of([&] { io::load_checkpoint(path); }), "not a cellgraph checkpoint"));
  std::string version = good;
  version[6] = 7;
  write_bytes(path, version);
  CHECK(has(error_of([&] { io::load_checkpoint(path); }),
            "unsupported checkpoint version 7 (this build reads 1)"));
  write_bytes(path, good + "extra");
  CHECK(has(error_of([&] { io::load_checkpoint(path); }), "trailing data"));
  CHECK(has(error_of([&] { io::load_checkpoint((dir / "missing.bin")); }),
            "missing.bin: cannot open: No such file or directory"));
}

TEST_CASE("checkpoint: missing and mismatched entries are named on lookup") {
  const io::Checkpoint c = sample();
  CHECK(c.tensor("cells.0.bias", {4}).numel() == 4);
  CHECK(error_of([&] {
          c.tensor("cells.3.n1.e0.sep_conv_3x3.dw1.weight", {8, 1, 3, 3});
        }) == "checkpoint: missing entry 'cells.3.n1.e0.sep_conv_3x3.dw1.weight'");
  CHECK(error_of([&] { c.tensor("cells.0.bias", {5}); }) ==
        "checkpoint: entry 'cells.0.bias': shape mismatch: expected [5], got [4]");
  CHECK(error_of([&] { c.meta("epoch"); }) == "checkpoint: missing metadata 'epoch'");
  CHECK(has(error_of([&] { c.meta_int("kind"); }), "expected an integer, got 'test'"));
}
