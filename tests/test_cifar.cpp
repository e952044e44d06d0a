#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>

#include <doctest/doctest.h>

#include "engine/data/cifar.h"
#include "engine/data/dataset.h"
#include "engine/data/idx.h"
#include "engine/data/split.h"
#include "engine/error.h"
#include "tests/support/cli.h"
#include "tests/support/errors.h"

using namespace cellgraph;
namespace fs = std::filesystem;

namespace {
using testing::error_of;
using testing::has;
using testing::TempDir;

void spit(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// Pixel byte k (0..3071, i.e. channel k / 1024, row k % 1024 / 32, column k % 32) of image
// `item`: distinct enough that a transposed or shifted layout shows.
uint8_t pixel(int64_t item, int64_t k) { return static_cast<uint8_t>((item * 31 + k * 7) % 256); }

// CIFAR records for items [first, first + labels.size()): the label bytes, then the pixels.
std::vector<uint8_t> records(int64_t first, const std::vector<std::vector<uint8_t>>& labels) {
  std::vector<uint8_t> out;
  for (size_t r = 0; r < labels.size(); ++r) {
    out.insert(out.end(), labels[r].begin(), labels[r].end());
    for (int64_t k = 0; k < 3072; ++k) out.push_back(pixel(first + static_cast<int64_t>(r), k));
  }
  return out;
}

// A CIFAR-10 folder: batches 1..5 hold 1, 2, 1, 1, 3 records (train items 0..7, label
// (3 * item) % 10) and the test batch 2 records (items 100, 101, labels 9 and 0).
void write_cifar10(const fs::path& dir) {
  fs::create_directories(dir);
  const int counts[5] = {1, 2, 1, 1, 3};
  int64_t item = 0;
  for (int b = 0; b < 5; ++b) {
    std::vector<std::vector<uint8_t>> labels;
    labels.reserve(static_cast<size_t>(counts[b]));
    for (int r = 0; r < counts[b]; ++r)
      labels.push_back({static_cast<uint8_t>((3 * (item + r)) % 10)});
    spit((dir / ("data_batch_" + std::to_string(b + 1) + ".bin")).string(), records(item, labels));
    item += counts[b];
  }
  spit((dir / "test_batch.bin").string(), records(100, {{9}, {0}}));
}

// A CIFAR-100 folder: train items 0..2 (coarse, fine) = (19, 99), (0, 0), (7, 42); test
// item 100 (3, 17).
void write_cifar100(const fs::path& dir) {
  fs::create_directories(dir);
  spit((dir / "train.bin").string(), records(0, {{19, 99}, {0, 0}, {7, 42}}));
  spit((dir / "test.bin").string(), records(100, {{3, 17}}));
}

// Checks that item i of `d` holds the pixels of fake item `item`.
void check_pixels(const Dataset& d, int64_t i, int64_t item) {
  CAPTURE(i);
  const std::vector<float> px = d.images.narrow(0, i, 1).to_vector();
  REQUIRE(px.size() == 3072);
  for (int64_t k = 0; k < 3072; ++k)
    if (px[static_cast<size_t>(k)] != static_cast<float>(pixel(item, k)) / 255.0f) {
      CHECK(px[static_cast<size_t>(k)] == static_cast<float>(pixel(item, k)) / 255.0f);
      return;
    }
}

// Fashion-MNIST-style IDX files for the MNIST loader: n images of 2x3, labels i % 10.
void write_mnist(const fs::path& dir, const std::string& prefix, int64_t n) {
  fs::create_directories(dir);
  std::vector<uint8_t> px(static_cast<size_t>(n * 6)), labels(static_cast<size_t>(n));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 11);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<uint8_t>(i % 10);
  write_idx((dir / (prefix + "-images-idx3-ubyte.gz")).string(), {n, 2, 3}, px, true);
  write_idx((dir / (prefix + "-labels-idx1-ubyte")).string(), {n}, labels, false);
}

}  // namespace

TEST_CASE("cifar: CIFAR-10 records load as [N,3,32,32] in file order with their labels") {
  TempDir dir;
  write_cifar10(dir.path);
  const Dataset train = load_cifar10(dir.path.string(), Split::train);
  CHECK(train.images.shape() == Shape{8, 3, 32, 32});
  CHECK(train.num_classes == 10);
  CHECK(train.name == "cifar10/train");
  CHECK(train.labels == std::vector<int32_t>{0, 3, 6, 9, 2, 5, 8, 1});
  for (int64_t i = 0; i < 8; ++i) check_pixels(train, i, i);
  // Channel planes and row-major order, spelled out for item 2: R, G, B planes of 1024.
  const std::vector<float> px = train.images.narrow(0, 2, 1).to_vector();
  auto at = [&](size_t c, size_t y, size_t x) { return px[(c * 32 + y) * 32 + x]; };
  CHECK(at(0, 0, 1) == static_cast<float>(pixel(2, 1)) / 255.0f);
  CHECK(at(0, 1, 0) == static_cast<float>(pixel(2, 32)) / 255.0f);
  CHECK(at(1, 0, 0) == static_cast<float>(pixel(2, 1024)) / 255.0f);
  CHECK(at(2, 31, 31) == static_cast<float>(pixel(2, 3071)) / 255.0f);
  for (float v : px) CHECK((v >= 0.0f && v <= 1.0f));

  const Dataset test = load_cifar10(dir.path.string(), Split::test);
  CHECK(test.images.shape() == Shape{2, 3, 32, 32});
  CHECK(test.labels == std::vector<int32_t>{9, 0});
  CHECK(test.name == "cifar10/test");
  check_pixels(test, 0, 100);
  check_pixels(test, 1, 101);
}

TEST_CASE("cifar: CIFAR-100 keeps the fine label of the coarse, fine pair") {
  TempDir dir;
  write_cifar100(dir.path);
  const Dataset train = load_cifar100(dir.path.string(), Split::train);
  CHECK(train.images.shape() == Shape{3, 3, 32, 32});
  CHECK(train.labels == std::vector<int32_t>{99, 0, 42});
  CHECK(train.num_classes == 100);
  CHECK(train.name == "cifar100/train");
  for (int64_t i = 0; i < 3; ++i) check_pixels(train, i, i);
  const Dataset test = load_cifar100(dir.path.string(), Split::test);
  CHECK(test.labels == std::vector<int32_t>{17});
  check_pixels(test, 0, 100);
}

TEST_CASE("cifar: malformed folders and files are errors that name the file") {
  TempDir dir;
  const fs::path c10 = dir.path / "c10";
  write_cifar10(c10);
  auto load10 = [&](Split split = Split::train) { load_cifar10(c10.string(), split); };

  const std::string missing_dir = error_of([&] { load_cifar10((dir / "nowhere"), Split::train); });
  CHECK(has(missing_dir, (dir / "nowhere") + ": no such folder"));
  CHECK(has(missing_dir, "expected the CIFAR-10 binary version"));

  fs::remove(c10 / "data_batch_3.bin");
  const std::string missing = error_of([&] { load10(); });
  CHECK(has(missing, (c10 / "data_batch_3.bin").string() +
                         ": cannot open: No such file or directory; expected the CIFAR-10 "
                         "binary version (data_batch_1.bin ... data_batch_5.bin, "
                         "test_batch.bin)"));
  // The Python version has the same names without ".bin".
  spit((c10 / "data_batch_3").string(), {1, 2, 3});
  CHECK(has(error_of([&] { load10(); }), "Python version"));
  fs::create_directories(c10 / "data_batch_3.bin");
  CHECK(has(error_of([&] { load10(); }), "data_batch_3.bin: is a directory"));
  fs::remove_all(c10 / "data_batch_3.bin");
  write_cifar10(c10);

  // The parent of the extracted folder: the message points at the folder inside.
  const std::string parent = error_of([&] { load_cifar10(dir.path.string(), Split::test); });
  CHECK(has(parent, (dir / "test_batch.bin")));
  write_cifar10(dir.path / "cifar-10-batches-bin");
  CHECK(has(error_of([&] { load_cifar10(dir.path.string(), Split::test); }),
            "try " + (dir.path / "cifar-10-batches-bin").string()));

  // A partial record: 2 records and one byte.
  std::vector<uint8_t> partial = records(0, {{1}, {2}});
  partial.push_back(7);
  spit((c10 / "data_batch_2.bin").string(), partial);
  const std::string size = error_of([&] { load10(); });
  CHECK(has(size, (c10 / "data_batch_2.bin").string() +
                      ": 6147 bytes is not a whole number of 3073-byte records; expected the "
                      "CIFAR-10 binary version"));
  spit((c10 / "data_batch_2.bin").string(), {});
  CHECK(has(error_of([&] { load10(); }), "data_batch_2.bin: the file is empty"));
  write_cifar10(c10);

  // Label out of range, in the second record of a file.
  spit((c10 / "test_batch.bin").string(), records(0, {{3}, {10}}));
  const std::string label = error_of([&] { load10(Split::test); });
  CHECK(has(label, (c10 / "test_batch.bin").string() + ": record 1 has label 10"));
  CHECK(has(label, "expected labels in [0, 10)"));

  const fs::path c100 = dir.path / "c100";
  write_cifar100(c100);
  spit((c100 / "train.bin").string(), records(0, {{1, 2}, {3, 4}, {5, 100}}));
  const std::string fine = error_of([&] { load_cifar100(c100.string(), Split::train); });
  CHECK(has(fine, (c100 / "train.bin").string() + ": record 2 has label 100"));
  CHECK(has(fine, "[0, 100)"));
  spit((c100 / "test.bin").string(), records(0, {{20, 2}}));
  const std::string coarse = error_of([&] { load_cifar100(c100.string(), Split::test); });
  CHECK(has(coarse, (c100 / "test.bin").string() + ": record 0 has coarse label 20"));
  // CIFAR-10 records in a CIFAR-100 file: 3 x 3073 bytes is no whole number of 3074.
  spit((c100 / "test.bin").string(), records(0, {{1}, {2}, {3}}));
  CHECK(has(error_of([&] { load_cifar100(c100.string(), Split::test); }),
            "test.bin: 9219 bytes is not a whole number of 3074-byte records; expected the "
            "CIFAR-100 binary version (train.bin, test.bin)"));
  fs::remove(c100 / "train.bin");
  CHECK(has(error_of([&] { load_cifar100(c100.string(), Split::train); }),
            (c100 / "train.bin").string() + ": cannot open"));
}

TEST_CASE("cifar: the real CIFAR-10 files load when $CELLGRAPH_CIFAR10_DIR names them") {
  const char* dir = std::getenv("CELLGRAPH_CIFAR10_DIR");
  if (dir == nullptr) {
    MESSAGE("skipped: set CELLGRAPH_CIFAR10_DIR to the extracted cifar-10-batches-bin");
    return;
  }
  const Dataset train = load_cifar10(dir, Split::train);
  const Dataset test = load_cifar10(dir, Split::test);
  CHECK(train.images.shape() == Shape{50000, 3, 32, 32});
  CHECK(test.images.shape() == Shape{10000, 3, 32, 32});
  for (const Dataset* d : {&train, &test}) {
    std::vector<int64_t> per_class(10, 0);
    for (int32_t l : d->labels) ++per_class[static_cast<size_t>(l)];
    for (int64_t n : per_class) CHECK(n == d->size() / 10);  // both splits are balanced
  }
  const ChannelStats stats = channel_stats(train);  // the values the DARTS code hard-codes
  CHECK(stats.mean[0] == doctest::Approx(0.49139968).epsilon(1e-3));
  CHECK(stats.mean[2] == doctest::Approx(0.44653091).epsilon(1e-3));
  CHECK(stats.std[1] == doctest::Approx(0.24348505).epsilon(1e-3));
}

TEST_CASE("cifar: load_dataset parses NAME[:DIR] and names the accepted forms") {
  TempDir dir;
  write_cifar10(dir.path / "c10");
  write_cifar100(dir.path / "c100");
  const Dataset c10 = load_dataset("cifar10:" + (dir / "c10"), Split::train);
  CHECK(c10.name == "cifar10/train");
  CHECK(c10.images.to_vector() == load_cifar10((dir / "c10"), Split::train).images.to_vector());
  const Dataset c100 = load_dataset("cifar100:" + (dir / "c100"), Split::test);
  CHECK(c100.num_classes == 100);
  CHECK(c100.labels == std::vector<int32_t>{17});
  // Only the first ':' separates: the folder may contain more.
  write_cifar10(dir.path / "a:b");
  CHECK(load_dataset("cifar10:" + (dir / "a:b"), Split::test).size() == 2);

  write_mnist(dir.path / "mnist", "train", 12);
  write_mnist(dir.path / "mnist", "t10k", 5);
  const Dataset mnist = load_dataset("mnist:" + (dir / "mnist"), Split::train);
  CHECK(mnist.name == "mnist/train");
  CHECK(mnist.images.shape() == Shape{12, 1, 2, 3});
  CHECK(mnist.num_classes == 10);
  CHECK(load_mnist((dir / "mnist"), Split::test).size() == 5);
  const Dataset fashion = load_dataset("fashion-mnist:" + (dir / "mnist"), Split::test);
  CHECK(fashion.name == "fashion-mnist/test");
  CHECK(fashion.size() == 5);
  CHECK(has(error_of([&] { load_dataset("mnist:" + (dir / "c10"), Split::train); }),
            "expected the MNIST files"));
  if (fs::exists(kFashionMnistDir))
    CHECK(load_dataset("fashion-mnist", Split::test).images.shape() == Shape{10000, 1, 28, 28});

  const std::string unknown = error_of([&] { load_dataset("imagenet:/data", Split::train); });
  CHECK(has(unknown, "unknown dataset 'imagenet'"));
  for (const char* form : {"fashion-mnist", "fashion-mnist:DIR", "mnist:DIR", "cifar10:DIR",
                           "cifar100:DIR", kFashionMnistDir})
    CHECK(has(unknown, form));
  CHECK(has(error_of([&] { load_dataset("", Split::train); }), "unknown dataset ''"));
  CHECK(has(error_of([&] { load_dataset("CIFAR10:x", Split::train); }), "cifar10:DIR"));
  CHECK(has(error_of([&] { load_dataset("cifar10", Split::train); }), "write cifar10:DIR"));
  CHECK(has(error_of([&] { load_dataset("mnist", Split::train); }), "write mnist:DIR"));
  CHECK(has(error_of([&] { load_dataset("cifar100:", Split::train); }),
            "the folder after ':' is empty"));
  CHECK(has(error_of([&] { load_dataset("cifar10:" + (dir / "none"), Split::train); }),
            (dir / "none") + ": no such folder"));
}

TEST_CASE("split: DARTS' unshuffled halves and floor of the fraction") {
  const TrainValSplit halves = split_train_val(10, 0.5, 0, false);
  CHECK(halves.train == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(halves.val == std::vector<int64_t>{5, 6, 7, 8, 9});
  const TrainValSplit odd = split_train_val(11, 0.5, 0, false);
  CHECK(odd.train.size() == 5);  // floor(5.5), as int(np.floor(...)) in the DARTS code
  CHECK(odd.val.size() == 6);
  CHECK(odd.val.front() == 5);
  const TrainValSplit big = split_train_val(50000, 0.5, 0, false);
  CHECK(big.train.size() == 25000);
  CHECK(big.val.back() == 49999);
  CHECK(split_train_val(10, 0.75).train.size() == 7);
  CHECK(split_train_val(2, 0.5).val == std::vector<int64_t>{1});
  CHECK(split_train_val(10, 0.99).val == std::vector<int64_t>{9});
}

TEST_CASE("split: a shuffled split is a seeded partition of all items") {
  const int64_t n = 101;
  const TrainValSplit a = split_train_val(n, 0.3, 17, true);
  CHECK(a.train.size() == 30);
  CHECK(a.val.size() == 71);
  std::set<int64_t> all(a.train.begin(), a.train.end());
  for (int64_t v : a.val) CHECK(all.insert(v).second);  // disjoint
  CHECK(static_cast<int64_t>(all.size()) == n);         // covering
  CHECK(*all.begin() == 0);
  CHECK(*all.rbegin() == n - 1);
  // Deterministic, and exactly the seeded permutation cut in two.
  const TrainValSplit again = split_train_val(n, 0.3, 17, true);
  CHECK(again.train == a.train);
  CHECK(again.val == a.val);
  const std::vector<int64_t> order = shuffled_indices(n, 17);
  CHECK(a.train == std::vector<int64_t>(order.begin(), order.begin() + 30));
  CHECK(a.val == std::vector<int64_t>(order.begin() + 30, order.end()));
  CHECK(split_train_val(n, 0.3, 18, true).train != a.train);
  CHECK(a.train != split_train_val(n, 0.3, 17, false).train);
  // The seed does not matter without shuffling.
  CHECK(split_train_val(n, 0.3, 5, false).train == split_train_val(n, 0.3, 6, false).train);
}

TEST_CASE("split: fractions outside (0, 1) and empty sides are errors") {
  for (double f : {0.0, 1.0, -0.5, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    CAPTURE(f);
    const std::string msg = error_of([&] { split_train_val(10, f, 0, false); });
    CHECK(has(msg, "train fraction"));
    CHECK(has(msg, "expected a value in (0, 1)"));
  }
  const std::string small = error_of([&] { split_train_val(3, 0.1, 0, true); });
  CHECK(has(small, "give 0 training and 3 validation items"));
  CHECK(has(small, "at least one on each side"));
  CHECK(has(error_of([&] { split_train_val(1, 0.5); }), "at least one on each side"));
  CHECK(has(error_of([&] { split_train_val(0, 0.5); }), "at least one on each side"));
  CHECK(has(error_of([&] { split_train_val(-4, 0.5); }), "-4 items"));
}
