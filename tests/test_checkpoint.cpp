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
// Independent of the code under test: plain iostreams (tests/support/cli.h).
const auto& read_bytes = testing::read_text;
using testing::TempDir;

namespace fs = std::filesystem;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// CRC-32 as zlib computes it (reflected polynomial 0xEDB88320), bit by bit: tests that
// change a checkpoint's fields on purpose put a valid checksum back, so the reader gets past
// it to the check under test.
uint32_t crc32_of(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (const char c : bytes) {
    crc ^= uint8_t(c);
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// `bytes` (a whole checkpoint file) with its trailing checksum recomputed.
std::string with_checksum(std::string bytes) {
  const uint32_t crc = crc32_of(bytes.substr(0, bytes.size() - 4));
  std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  return bytes;
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
  const std::string prefix = path + ": ";
  for (const std::pair<size_t, std::string>& cut : cuts) {
    const size_t size = cut.first;
    CAPTURE(size);
    write_bytes(path, full.substr(0, size));
    CHECK(has(error_of([&] { io::load_checkpoint(path); }), prefix + cut.second));
  }
  write_bytes(path, full.substr(0, full.size() - 4 - 20));
  const std::string message = error_of([&] { io::load_checkpoint(path); });
  CHECK(has(message, "tensor entry 4 of 4 ('empty')"));
  write_bytes(path, "");
  CHECK(has(error_of([&] { io::load_checkpoint(path); }), "bad magic"));
}

TEST_CASE("checkpoint: a flipped byte is a checksum mismatch, wrong magic and version are named") {
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

TEST_CASE("checkpoint: the checksum the tests recompute is the one the writer stores") {
  TempDir dir;
  io::save_checkpoint(sample(), (dir / "k.bin"));
  const std::string bytes = read_bytes((dir / "k.bin"));
  std::string zeroed = bytes;
  std::memset(zeroed.data() + zeroed.size() - 4, 0, 4);
  CHECK(with_checksum(zeroed) == bytes);
}

TEST_CASE("checkpoint: extents whose strides overflow are refused, even with no elements") {
  // Written as [0, 1, 1], then the two 1s replaced. The element count of [0, 2^62, 2^62] is
  // 0, but its first stride is 2^124: the reader once checked only the count, and building
  // the tensor overflowed (undefined behaviour; UBSan stops there).
  TempDir dir;
  const std::string path = (dir / "s.bin");
  io::Checkpoint c;
  c.add("huge", Tensor::zeros({0, 1, 1}));
  io::save_checkpoint(c, path);
  const std::string good = read_bytes(path);
  // The only entry ends with its three i64 extents, right before the 4-byte checksum.
  const auto with_extents = [&](int64_t d1, int64_t d2) {
    std::string bytes = good;
    std::memcpy(bytes.data() + bytes.size() - 4 - 16, &d1, 8);
    std::memcpy(bytes.data() + bytes.size() - 4 - 8, &d2, 8);
    write_bytes(path, with_checksum(bytes));
  };
  const std::string at = path + ": malformed checkpoint at tensor entry 1 of 1 ('huge'): ";
  const int64_t big = int64_t(1) << 62;
  with_extents(big, big);
  CHECK(error_of([&] { io::load_checkpoint(path); }) ==
        at + "shape [0, 4611686018427387904, 4611686018427387904] is too large: its nonzero " +
            "extents multiply past 2^61 float32 elements");
  // Fits int64_t as an element count, not as a byte count.
  with_extents(int64_t(1) << 60, 4);
  CHECK(has(error_of([&] { io::load_checkpoint(path); }), "is too large"));
  with_extents(-1, 1);
  CHECK(error_of([&] { io::load_checkpoint(path); }) == at + "negative extent -1 in dimension 1");
  // Large extents after a 0 that fit are a valid empty tensor.
  with_extents(int64_t(1) << 30, int64_t(1) << 30);
  const io::Checkpoint back = io::load_checkpoint(path);
  CHECK(back.find("huge")->shape() == Shape{0, int64_t(1) << 30, int64_t(1) << 30});
  CHECK(back.find("huge")->numel() == 0);
}
