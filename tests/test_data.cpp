#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include <doctest/doctest.h>

#include "engine/data/batches.h"
#include "engine/data/dataset.h"
#include "engine/data/idx.h"
#include "engine/error.h"
#include "tests/support/cli.h"
#include "tests/support/errors.h"

using namespace cellgraph;
namespace fs = std::filesystem;

namespace {
using testing::error_of;
using testing::has;
using testing::TempDir;

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Gzips arbitrary bytes with zlib's gzopen, to build malformed IDX payloads.
void gzip_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!bytes.empty())
    CHECK(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  CHECK(gzclose(f) == Z_OK);
}

void spit(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> ramp(size_t n, int mul = 7) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * static_cast<size_t>(mul)) % 256);
  return v;
}

// A small labelled dataset: n images of c x h x w, pixel values from a ramp, label i % k.
Dataset make_dataset(int64_t n, int64_t c, int64_t h, int64_t w, int k) {
  Dataset d;
  std::vector<float> px(static_cast<size_t>(n * c * h * w));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<float>((i * 37) % 101) / 100.0f;
  d.images = Tensor::from_vector({n, c, h, w}, px);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(i % k));
  d.num_classes = k;
  d.name = "toy";
  return d;
}

}  // namespace

TEST_CASE("idx: raw and gzipped files read back identically") {
  TempDir dir;
  const std::vector<uint8_t> data = ramp(5 * 3 * 4);
  write_idx((dir / "raw.idx"), {5, 3, 4}, data, false);
  write_idx((dir / "packed.idx.gz"), {5, 3, 4}, data, true);
  const std::vector<uint8_t> packed = slurp((dir / "packed.idx.gz"));
  REQUIRE(packed.size() > 2);
  CHECK((packed[0] == 0x1f && packed[1] == 0x8b));
  const std::vector<uint8_t> raw = slurp((dir / "raw.idx"));
  CHECK(raw.size() == 4 + 12 + data.size());
  CHECK(std::vector<uint8_t>(raw.begin(), raw.begin() + 8) ==
        std::vector<uint8_t>{0, 0, 0x08, 3, 0, 0, 0, 5});
  for (const char* name : {"raw.idx", "packed.idx.gz"}) {
    CAPTURE(name);
    const IdxArray a = read_idx((dir / name), 3, "image");
    CHECK(a.dims == std::vector<int64_t>{5, 3, 4});
    CHECK(a.data == data);
  }
  // A rank-1 label file.
  write_idx((dir / "labels.gz"), {3}, {9, 0, 255}, true);
  CHECK(read_idx((dir / "labels.gz"), 1).data == std::vector<uint8_t>{9, 0, 255});
}

TEST_CASE("idx: malformed files are errors that name the file") {
  TempDir dir;
  auto check = [&](const std::string& name, const std::string& part, int rank = 3) {
    CAPTURE(name);
    const std::string msg =
        error_of([&] { read_idx((dir / name), rank, rank == 1 ? "label" : "image"); });
    CAPTURE(msg);
    CHECK(has(msg, (dir / name)));
    CHECK(has(msg, part));
    CHECK(has(msg, "expected"));
  };
  check("missing.gz", "cannot open");
  fs::create_directories(dir.path / "adir");
  check("adir", "directory");
  spit((dir / "empty"), {});
  check("empty", "4-byte IDX header");
  spit((dir / "magic"), {0x12, 0x34, 0x08, 0x03, 0, 0, 0, 1});
  check("magic", "bad magic");
  spit((dir / "float"), {0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0});
  check("float", "0x0d (float32)");
  write_idx((dir / "rank2"), {4, 4}, ramp(16), false);
  check("rank2", "expected rank 3 for image data");
  spit((dir / "short_header"), {0, 0, 0x08, 3, 0, 0, 0, 10, 0, 0});
  check("short_header", "header ends after 10 bytes");

  // Truncated data, raw: the header promises 10 x 4 x 4 = 160 bytes, the file holds 50.
  std::vector<uint8_t> bytes = {0, 0, 0x08, 3, 0, 0, 0, 10, 0, 0, 0, 4, 0, 0, 0, 4};
  const std::vector<uint8_t> fifty = ramp(50);
  bytes.insert(bytes.end(), fifty.begin(), fifty.end());
  spit((dir / "truncated"), bytes);
  check("truncated", "expected 160 bytes of image data, found 50");
  // Extents are big-endian uint32: 01 02 03 04 is 16909060.
  spit((dir / "big_endian"), {0, 0, 0x08, 1, 1, 2, 3, 4, 9});
  check("big_endian", "expected 16909060 bytes of label data, found 1", 1);
  // The same short payload inside a complete, valid gzip stream.
  gzip_file((dir / "truncated.gz"), bytes);
  check("truncated.gz", "expected 160 bytes of image data, found 50");
  // Trailing bytes after the data, raw and gzipped.
  std::vector<uint8_t> trailing = slurp((dir / "rank2"));
  trailing.push_back(0xAB);
  trailing.push_back(0xCD);
  spit((dir / "trailing"), trailing);
  check("trailing", "2 bytes of trailing data", 2);
  gzip_file((dir / "trailing.gz"), trailing);
  check("trailing.gz", "2 bytes of trailing data", 2);

  // A gzip stream cut short and one with corrupted bytes.
  const std::vector<uint8_t> big = ramp(64 * 64 * 8, 13);
  write_idx((dir / "full.gz"), {8, 64, 64}, big, true);
  const std::vector<uint8_t> packed = slurp((dir / "full.gz"));
  spit((dir / "cut.gz"), std::vector<uint8_t>(packed.begin(), packed.begin() + packed.size() / 2));
  check("cut.gz", "the gzip stream is cut short");
  std::vector<uint8_t> corrupt = packed;
  for (size_t i = 20; i < 40 && i < corrupt.size(); ++i) corrupt[i] ^= 0x5A;
  spit((dir / "corrupt.gz"), corrupt);
  check("corrupt.gz", "gzip");
}

TEST_CASE("dataset: IDX images and labels load as [N,1,H,W] in [0,1] and errors name files") {
  TempDir dir;
  std::vector<uint8_t> px = {0, 255, 51, 102, 0, 0, 255, 255};
  write_idx((dir / "img.gz"), {2, 2, 2}, px, true);
  write_idx((dir / "lbl"), {2}, {1, 2}, false);
  const Dataset d = load_idx_dataset((dir / "img.gz"), (dir / "lbl"), 3, "tiny");
  CHECK(d.images.shape() == Shape{2, 1, 2, 2});
  CHECK(d.images.to_vector() == std::vector<float>{0.0f, 1.0f, 0.2f, 0.4f, 0.0f, 0.0f, 1.0f, 1.0f});
  CHECK(d.labels == std::vector<int32_t>{1, 2});
  CHECK(d.num_classes == 3);
  CHECK(d.name == "tiny");

  const std::string range = error_of([&] { load_idx_dataset((dir / "img.gz"), (dir / "lbl"), 2); });
  CHECK(has(range, (dir / "lbl")));
  CHECK(has(range, "label 2 at index 1"));
  write_idx((dir / "lbl3"), {3}, {0, 1, 0}, true);
  const std::string count =
      error_of([&] { load_idx_dataset((dir / "img.gz"), (dir / "lbl3"), 3); });
  CHECK(has(count, (dir / "lbl3")));
  CHECK(has(count, "3 labels"));
  CHECK(has(count, "2 images"));
  CHECK(has(error_of([&] { load_idx_dataset((dir / "lbl"), (dir / "lbl"), 3); }),
            "expected rank 3 for image data"));
  CHECK(has(error_of([&] { load_idx_dataset((dir / "img.gz"), (dir / "img.gz"), 3); }),
            "expected rank 1 for label data"));
  CHECK(has(error_of([&] { load_fashion_mnist(dir.path.string(), Split::train); }),
            "train-images-idx3-ubyte"));
}

TEST_CASE("dataset: the real Fashion-MNIST files load with their known shape and statistics") {
  if (!fs::exists(CELLGRAPH_FASHION_MNIST_DIR)) {
    MESSAGE("skipped: " CELLGRAPH_FASHION_MNIST_DIR " is absent (package dataset-fashion-mnist)");
    return;
  }
  const Dataset train = load_fashion_mnist(CELLGRAPH_FASHION_MNIST_DIR, Split::train);
  const Dataset test = load_fashion_mnist(CELLGRAPH_FASHION_MNIST_DIR, Split::test);
  CHECK(train.images.shape() == Shape{60000, 1, 28, 28});
  CHECK(test.images.shape() == Shape{10000, 1, 28, 28});
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.num_classes == 10);
  for (const Dataset* d : {&train, &test}) {
    std::vector<int64_t> per_class(10, 0);
    for (int32_t l : d->labels) ++per_class[static_cast<size_t>(l)];
    for (int64_t n : per_class) CHECK(n == d->size() / 10);  // both splits are balanced
  }
  const ChannelStats stats = channel_stats(train);
  CHECK(stats.mean[0] == doctest::Approx(0.2860).epsilon(0.002));  // the published values
  CHECK(stats.std[0] == doctest::Approx(0.3530).epsilon(0.002));
  Dataset normalized = test;
  normalize(normalized, stats);
  const ChannelStats after = channel_stats(normalized);
  CHECK(std::abs(after.mean[0]) < 0.05f);
  CHECK(after.std[0] == doctest::Approx(1.0).epsilon(0.05));
}

TEST_CASE("dataset: normalisation by channel gives mean 0 and std 1") {
  Dataset d = make_dataset(20, 3, 4, 5, 4);
  const ChannelStats stats = channel_stats(d);
  REQUIRE(stats.mean.size() == 3);
  const Tensor original = d.images;
  Dataset view = subset(d, 0, 10);
  normalize(d, stats);
  CHECK_FALSE(d.images.shares_storage_with(original));
  CHECK(view.images.to_vector() == original.narrow(0, 0, 10).contiguous().to_vector());
  const ChannelStats after = channel_stats(d);
  for (int c = 0; c < 3; ++c) {
    CHECK(std::abs(after.mean[static_cast<size_t>(c)]) < 1e-5f);
    CHECK(after.std[static_cast<size_t>(c)] == doctest::Approx(1.0).epsilon(1e-5));
  }
  // Hand check on one channel of one pixel.
  const float x = original.to_vector()[0];
  CHECK(d.images.to_vector()[0] == doctest::Approx((x - stats.mean[0]) / stats.std[0]));
  CHECK(has(error_of([&] { normalize(d, ChannelStats{{0.f}, {1.f}}); }), "toy"));
  CHECK(has(error_of([&] { normalize(d, ChannelStats{{0, 0, 0}, {1, 0, 1}}); }), "channel 1"));
}

TEST_CASE("dataset: subset is a view, select and random_subset copy the chosen items") {
  const Dataset d = make_dataset(10, 1, 2, 2, 3);
  const Dataset half = subset(d, 5, 5);
  CHECK(half.size() == 5);
  CHECK(half.images.shares_storage_with(d.images));
  CHECK(half.labels.front() == d.labels[5]);
  CHECK(half.name == "toy[5:10]");
  CHECK(half.images.to_vector() == d.images.narrow(0, 5, 5).contiguous().to_vector());
  const Dataset picked = select(d, {7, 2, 7});
  CHECK(picked.size() == 3);
  CHECK(picked.labels == std::vector<int32_t>{d.labels[7], d.labels[2], d.labels[7]});
  CHECK(picked.images.narrow(0, 1, 1).to_vector() == d.images.narrow(0, 2, 1).to_vector());
  const Dataset r1 = random_subset(d, 4, 11), r2 = random_subset(d, 4, 11);
  CHECK(r1.images.to_vector() == r2.images.to_vector());
  CHECK(has(error_of([&] { subset(d, 8, 5); }), "toy"));
  CHECK(has(error_of([&] { select(d, {3, 10}); }), "index 10"));
  CHECK_THROWS_AS(random_subset(d, 11, 0), Error);
}

TEST_CASE("dataset: shuffled_indices is a seeded Fisher-Yates permutation") {
  const std::vector<int64_t> a = shuffled_indices(50, 42);
  CHECK(a == shuffled_indices(50, 42));
  CHECK(a != shuffled_indices(50, 43));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 50; ++i) CHECK(sorted[static_cast<size_t>(i)] == i);
  // The algorithm written out, so a change of method (not only of output) is caught.
  std::vector<int64_t> expected(50);
  for (int64_t i = 0; i < 50; ++i) expected[static_cast<size_t>(i)] = i;
  Rng rng(42);
  for (uint64_t i = 50; i > 1; --i) std::swap(expected[i - 1], expected[rng.below(i)]);
  CHECK(a == expected);
}

TEST_CASE("batches: an epoch is a seeded permutation of the items in full batches") {
  const Dataset d = make_dataset(10, 1, 2, 2, 5);
  BatchIterator it(d, BatchOptions{.batch_size = 4, .seed = 7});
  CHECK(it.batches_per_epoch() == 3);
  std::vector<int64_t> seen;
  std::vector<int64_t> sizes;
  for (int64_t step = 0; step < it.batches_per_epoch(); ++step) {
    const Batch b = it.next();
    sizes.push_back(b.images.dim(0));
    CHECK(b.images.shape() == Shape{b.images.dim(0), 1, 2, 2});
    CHECK(b.labels.shape() == Shape{b.images.dim(0)});
    const std::vector<float> labels = b.labels.to_vector();
    for (size_t i = 0; i < b.indices.size(); ++i) {
      const int64_t at = b.indices[i];
      CHECK(labels[i] == static_cast<float>(d.labels[static_cast<size_t>(at)]));
      CHECK(b.images.narrow(0, static_cast<int64_t>(i), 1).to_vector() ==
            d.images.narrow(0, at, 1).to_vector());
    }
    seen.insert(seen.end(), b.indices.begin(), b.indices.end());
  }
  CHECK(sizes == std::vector<int64_t>{4, 4, 2});
  CHECK(it.epoch_done());
  CHECK(it.position() == BatchPosition{0, 3});
  CHECK(seen == it.epoch_order(0));
  std::vector<int64_t> sorted = seen;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(seen != std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  // Same seed: same orders; another epoch or another seed: another order.
  BatchIterator again(d, BatchOptions{.batch_size = 4, .seed = 7});
  CHECK(again.epoch_order(0) == seen);
  CHECK(it.epoch_order(1) != seen);
  CHECK(BatchIterator(d, BatchOptions{.batch_size = 4, .seed = 8}).epoch_order(0) != seen);
}

TEST_CASE("batches: drop_last, no shuffling and index lists") {
  const Dataset d = make_dataset(10, 1, 1, 1, 2);
  BatchIterator it(d, {3, 1, 4, 1, 5},
                   BatchOptions{.batch_size = 2, .shuffle = false, .drop_last = true});
  CHECK(it.batches_per_epoch() == 2);
  CHECK(it.next().indices == std::vector<int64_t>{3, 1});
  CHECK(it.next().indices == std::vector<int64_t>{4, 1});
  CHECK(it.epoch_done());
  CHECK(it.next().indices == std::vector<int64_t>{3, 1});  // unshuffled: every epoch the same
  CHECK(it.position() == BatchPosition{1, 1});
  // The positional shorthand: batch size, seed, drop_last, shuffle.
  BatchIterator whole(d, 10, /*seed=*/3);
  CHECK(whole.next().indices == whole.epoch_order(0));
  CHECK(whole.next().indices == whole.epoch_order(1));
  CHECK(whole.position() == BatchPosition{1, 1});
  BatchIterator plain(d, 4, 0, /*drop_last=*/false, /*shuffle=*/false);
  CHECK(plain.batches_per_epoch() == 3);
  CHECK(plain.next().indices == std::vector<int64_t>{0, 1, 2, 3});
}

TEST_CASE("batches: a restored position continues the exact stream") {
  const Dataset d = make_dataset(23, 1, 1, 2, 3);
  const BatchOptions options{.batch_size = 5, .seed = 99};
  BatchIterator a(d, options);
  for (int i = 0; i < 12; ++i) a.next();  // two full epochs of 5 batches, then 2
  const BatchPosition saved = a.position();
  CHECK(saved == BatchPosition{2, 2});
  // A position saved at the end of an epoch resumes with the next epoch.
  BatchIterator end(d, options);
  end.set_position({1, 5});
  CHECK(end.epoch_done());
  const std::vector<int64_t> epoch2 = a.epoch_order(2);
  CHECK(end.next().indices == std::vector<int64_t>(epoch2.begin(), epoch2.begin() + 5));
  BatchIterator b(d, options);
  b.set_position(saved);
  for (int i = 0; i < 8; ++i) {
    const Batch x = a.next(), y = b.next();
    CHECK(x.indices == y.indices);
    CHECK(x.images.to_vector() == y.images.to_vector());
  }
  CHECK_THROWS_AS(b.set_position({0, 6}), Error);
  CHECK_THROWS_AS(b.set_position({-1, 0}), Error);
}

TEST_CASE("batches: bad options are errors that name the dataset") {
  const Dataset d = make_dataset(3, 1, 1, 1, 2);
  CHECK(has(error_of([&] { BatchIterator(d, BatchOptions{.batch_size = 0}); }), "toy"));
  CHECK(has(error_of([&] { BatchIterator(d, BatchOptions{.batch_size = 4, .drop_last = true}); }),
            "drop_last"));
  CHECK(has(error_of([&] { BatchIterator(d, {0, 3}, BatchOptions{}); }), "index 3"));
  CHECK(BatchIterator(d, BatchOptions{.batch_size = 4}).batches_per_epoch() == 1);
}
