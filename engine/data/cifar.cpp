#include "engine/data/cifar.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "engine/error.h"

namespace cellgraph {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kChannels = 3, kSide = 32;
constexpr int64_t kPixels = kChannels * kSide * kSide;  // bytes of image per record
// Records are converted in slices so a 30 MB file never needs a second full-size buffer.
constexpr int64_t kSliceRecords = 2048;
constexpr int64_t kParallelThreshold = 1 << 16;

struct CifarFormat {
  const char* title;        // "CIFAR-10", for messages
  const char* name;         // "cifar10", the Dataset name prefix
  const char* layout;       // the file list, for messages
  const char* archive_dir;  // the folder the official archive extracts to
  int64_t label_bytes;      // bytes before the pixels of each record
  int coarse_classes;       // CIFAR-100's leading coarse label; 0 when there is none
  int num_classes;          // range of the last label byte, the one we keep
};

constexpr CifarFormat kCifar10{"CIFAR-10",
                               "cifar10",
                               "data_batch_1.bin ... data_batch_5.bin, test_batch.bin",
                               "cifar-10-batches-bin",
                               1,
                               0,
                               10};
constexpr CifarFormat kCifar100{
    "CIFAR-100", "cifar100", "train.bin, test.bin", "cifar-100-binary", 2, 20, 100};

std::string expected(const CifarFormat& f) {
  return std::string("expected the ") + f.title + " binary version (" + f.layout + ")";
}

// The two usual mistakes: the parent of the extracted folder, or the Python (pickle) version,
// whose files have the same names without ".bin".
std::string hint(const std::string& dir, const std::string& file, const CifarFormat& f) {
  std::error_code ec;
  const fs::path nested = fs::path(dir) / f.archive_dir;
  if (fs::is_directory(nested, ec)) return "; try " + nested.string();
  const fs::path pickle = fs::path(dir) / fs::path(file).stem();
  if (fs::is_regular_file(pickle, ec))
    return "; " + pickle.string() + " looks like the Python version, which is not supported";
  return "";
}

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

struct Source {
  std::string path;
  File file{nullptr, &std::fclose};
  int64_t records = 0;
};

// Opens a file and checks that its size is a positive whole number of records.
Source open_source(const std::string& dir, const std::string& name, const CifarFormat& f) {
  Source s;
  s.path = (fs::path(dir) / name).string();
  std::error_code ec;
  if (fs::is_directory(s.path, ec)) throw error(s.path, ": is a directory; ", expected(f));
  s.file = File(std::fopen(s.path.c_str(), "rb"), &std::fclose);
  if (!s.file)
    throw error(s.path, ": cannot open: ", std::strerror(errno), "; ", expected(f),
                hint(dir, name, f));
  const int64_t record = f.label_bytes + kPixels;
  if (std::fseek(s.file.get(), 0, SEEK_END) != 0)
    throw error(s.path, ": cannot seek: ", std::strerror(errno), "; ", expected(f));
  const int64_t bytes = static_cast<int64_t>(std::ftell(s.file.get()));
  if (bytes < 0) throw error(s.path, ": cannot tell its size: ", std::strerror(errno));
  std::rewind(s.file.get());
  if (bytes == 0) throw error(s.path, ": the file is empty; ", expected(f));
  if (bytes % record != 0)
    throw error(s.path, ": ", bytes, " bytes is not a whole number of ", record, "-byte records; ",
                expected(f));
  s.records = bytes / record;
  return s;
}

// Reads every record of `s` into items [first, first + s.records) of `images` / `labels`.
void read_records(Source& s, const CifarFormat& f, int64_t first, float* images,
                  std::vector<int32_t>& labels) {
  const int64_t record = f.label_bytes + kPixels;
  std::vector<uint8_t> buffer(static_cast<size_t>(std::min(s.records, kSliceRecords) * record));
  for (int64_t begin = 0; begin < s.records; begin += kSliceRecords) {
    const int64_t count = std::min(kSliceRecords, s.records - begin);
    const size_t want = static_cast<size_t>(count * record);
    const size_t got = std::fread(buffer.data(), 1, want, s.file.get());
    if (got != want)
      throw error(s.path, ": read failed after ", begin * record + static_cast<int64_t>(got),
                  " bytes (", std::ferror(s.file.get()) ? std::strerror(errno) : "file shrank",
                  "); ", expected(f));
    for (int64_t r = 0; r < count; ++r) {
      const uint8_t* label = buffer.data() + r * record;
      if (f.coarse_classes > 0 && label[0] >= f.coarse_classes)
        throw error(s.path, ": record ", begin + r, " has coarse label ", int{label[0]},
                    "; expected coarse labels in [0, ", f.coarse_classes, ")");
      const int fine = label[f.label_bytes - 1];
      if (fine >= f.num_classes)
        throw error(s.path, ": record ", begin + r, " has label ", fine,
                    "; expected labels in [0, ", f.num_classes, ")");
      labels[static_cast<size_t>(first + begin + r)] = fine;
    }
    float* dst = images + (first + begin) * kPixels;
    const uint8_t* src = buffer.data();
#pragma omp parallel for if (count * kPixels > kParallelThreshold)
    for (int64_t r = 0; r < count; ++r) {
      const uint8_t* px = src + r * record + f.label_bytes;
      float* out = dst + r * kPixels;
      for (int64_t k = 0; k < kPixels; ++k) out[k] = static_cast<float>(px[k]) / 255.0f;
    }
  }
}

Dataset load_cifar(const std::string& dir, const std::vector<std::string>& files,
                   const CifarFormat& f, Split split) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw error(dir, ": no such folder; ", expected(f));
  if (!fs::is_directory(dir, ec)) throw error(dir, ": is not a folder; ", expected(f));
  // Every file is opened and sized before anything is read, so a missing or truncated last
  // batch fails at once instead of after reading the others.
  std::vector<Source> sources;
  int64_t total = 0;
  for (const std::string& name : files) {
    sources.push_back(open_source(dir, name, f));
    total += sources.back().records;
  }
  Dataset out;
  out.num_classes = f.num_classes;
  out.name = std::string(f.name) + (split == Split::train ? "/train" : "/test");
  out.images = Tensor::empty({total, kChannels, kSide, kSide});
  out.labels.resize(static_cast<size_t>(total));
  int64_t first = 0;
  for (Source& s : sources) {
    read_records(s, f, first, out.images.data(), out.labels);
    first += s.records;
  }
  return out;
}

}  // namespace

Dataset load_cifar10(const std::string& dir, Split split) {
  if (split == Split::test) return load_cifar(dir, {"test_batch.bin"}, kCifar10, split);
  return load_cifar(dir,
                    {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                     "data_batch_5.bin"},
                    kCifar10, split);
}

Dataset load_cifar100(const std::string& dir, Split split) {
  return load_cifar(dir, {split == Split::train ? "train.bin" : "test.bin"}, kCifar100, split);
}

}  // namespace cellgraph
