#include "engine/data/dataset.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "engine/data/cifar.h"
#include "engine/data/idx.h"
#include "engine/error.h"

namespace cellgraph {

namespace {

constexpr int64_t kParallelThreshold = 1 << 16;

int64_t item_numel(const Dataset& d) { return d.size() ? d.images.numel() / d.size() : 0; }

}  // namespace

std::string display_name(const Dataset& d) {
  return d.name.empty() ? std::string("dataset") : "dataset '" + d.name + "'";
}

Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         int num_classes, const std::string& name) {
  if (num_classes < 1)
    throw error(labels_path, ": ", num_classes, " classes requested; expected at least 1");
  const IdxArray images = read_idx(images_path, 3, "image");
  const IdxArray labels = read_idx(labels_path, 1, "label");
  if (images.dims[1] == 0 || images.dims[2] == 0)
    throw error(images_path, ": images of ", images.dims[1], "x", images.dims[2],
                " pixels; expected a positive height and width");
  if (labels.dims[0] != images.dims[0])
    throw error(labels_path, ": ", labels.dims[0], " labels but ", images_path, " holds ",
                images.dims[0], " images; expected one label per image");
  Dataset out;
  out.num_classes = num_classes;
  out.name = name.empty() ? images_path : name;
  out.labels.resize(labels.data.size());
  for (size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= num_classes)
      throw error(labels_path, ": label ", int{labels.data[i]}, " at index ", i,
                  " is >= ", num_classes, " classes; expected labels in [0, ", num_classes, ")");
    out.labels[i] = labels.data[i];
  }
  out.images = Tensor::empty({images.dims[0], 1, images.dims[1], images.dims[2]});
  float* dst = out.images.data();
  const uint8_t* src = images.data.data();
  const int64_t n = out.images.numel();
#pragma omp parallel for if (n > kParallelThreshold)
  for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<float>(src[k]) / 255.0f;
  return out;
}

namespace {

// The MNIST file layout, shared by Fashion-MNIST. `title` and `advice` go into messages.
Dataset load_mnist_layout(const std::string& dir, Split split, const std::string& name,
                          const std::string& title, const std::string& advice) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  // The Debian package ships gzipped files; the original site's files may be unpacked.
  auto find = [&](const std::string& stem) {
    const std::filesystem::path base = std::filesystem::path(dir) / (prefix + stem);
    std::error_code ec;
    if (std::filesystem::exists(base.string() + ".gz", ec)) return base.string() + ".gz";
    if (std::filesystem::exists(base, ec)) return base.string();
    throw error(dir, ": no ", prefix + stem, ".gz (or unpacked ", prefix + stem, "); expected the ",
                title, " files", advice);
  };
  const std::string images = find("-images-idx3-ubyte");
  const std::string labels = find("-labels-idx1-ubyte");
  return load_idx_dataset(images, labels, 10, name + (split == Split::train ? "/train" : "/test"));
}

std::string dataset_forms() {
  return std::string("expected one of: fashion-mnist (from ") + kFashionMnistDir +
         "), fashion-mnist:DIR, mnist:DIR, cifar10:DIR, cifar100:DIR";
}

}  // namespace

Dataset load_fashion_mnist(const std::string& dir, Split split) {
  return load_mnist_layout(
      dir, split, "fashion-mnist", "Fashion-MNIST",
      std::string(", which the Debian package dataset-fashion-mnist installs in ") +
          kFashionMnistDir);
}

Dataset load_mnist(const std::string& dir, Split split) {
  return load_mnist_layout(dir, split, "mnist", "MNIST", "");
}

Dataset load_dataset(const std::string& spec, Split split) {
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const bool has_dir = colon != std::string::npos;
  const std::string dir = has_dir ? spec.substr(colon + 1) : std::string();
  if (has_dir && dir.empty())
    throw error("dataset '", spec, "': the folder after ':' is empty; ", dataset_forms());
  if (name == "fashion-mnist") return load_fashion_mnist(has_dir ? dir : kFashionMnistDir, split);
  const bool known = name == "mnist" || name == "cifar10" || name == "cifar100";
  if (!known) throw error("dataset '", spec, "': unknown dataset '", name, "'; ", dataset_forms());
  if (!has_dir)
    throw error("dataset '", spec, "': no folder; write ", name, ":DIR (", dataset_forms(), ")");
  if (name == "mnist") return load_mnist(dir, split);
  if (name == "cifar10") return load_cifar10(dir, split);
  return load_cifar100(dir, split);
}

ChannelStats channel_stats(const Dataset& dataset) {
  CG_ASSERT(dataset.images.rank() == 4, "dataset images of shape ", dataset.images.shape().str());
  const Tensor images = dataset.images.contiguous();
  const int64_t n = images.dim(0), channels = images.dim(1);
  const int64_t plane = images.dim(2) * images.dim(3);
  if (n * plane == 0)
    throw error(display_name(dataset), " has no pixels; expected a non-empty dataset");
  const float* x = images.data();
  const double count = static_cast<double>(n * plane);
  ChannelStats stats;
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) if (n * plane > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      const float* p = x + (i * channels + c) * plane;
      for (int64_t k = 0; k < plane; ++k) sum += p[k];
    }
    const double mean = sum / count;
    // Two passes: the centred sum of squares does not cancel catastrophically.
    double sq = 0.0;
#pragma omp parallel for reduction(+ : sq) if (n * plane > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      const float* p = x + (i * channels + c) * plane;
      for (int64_t k = 0; k < plane; ++k) sq += (p[k] - mean) * (p[k] - mean);
    }
    stats.mean.push_back(static_cast<float>(mean));
    stats.std.push_back(static_cast<float>(std::sqrt(sq / count)));
  }
  return stats;
}

void normalize(Dataset& dataset, const ChannelStats& stats) {
  const Tensor images = dataset.images.contiguous();
  const int64_t channels = images.dim(1);
  if (static_cast<int64_t>(stats.mean.size()) != channels ||
      static_cast<int64_t>(stats.std.size()) != channels)
    throw error(display_name(dataset), ": normalisation statistics for ", stats.mean.size(),
                " channels; expected ", channels);
  for (size_t c = 0; c < stats.std.size(); ++c) {
    if (!(stats.std[c] > 0.0f) || !std::isfinite(stats.std[c]) || !std::isfinite(stats.mean[c]))
      throw error(display_name(dataset), ": channel ", c, " has mean ", stats.mean[c], " and std ",
                  stats.std[c], "; expected a finite mean and a std > 0");
  }
  Tensor out = Tensor::empty(images.shape());
  const int64_t rows = images.dim(0) * channels;
  const int64_t plane = images.dim(2) * images.dim(3);
  const float* src = images.data();
  float* dst = out.data();
#pragma omp parallel for if (rows * plane > kParallelThreshold)
  for (int64_t r = 0; r < rows; ++r) {
    const size_t c = static_cast<size_t>(r % channels);
    const float mean = stats.mean[c], inv = 1.0f / stats.std[c];
    for (int64_t k = 0; k < plane; ++k) dst[r * plane + k] = (src[r * plane + k] - mean) * inv;
  }
  dataset.images = out;
}

Dataset subset(const Dataset& dataset, int64_t begin, int64_t count) {
  if (begin < 0 || count < 0 || begin + count > dataset.size())
    throw error(display_name(dataset), ": subset [", begin, ", ", begin + count,
                ") is out of range; expected a range within its ", dataset.size(), " items");
  Dataset out;
  out.images = dataset.images.narrow(0, begin, count);
  out.labels.assign(dataset.labels.begin() + begin, dataset.labels.begin() + begin + count);
  out.num_classes = dataset.num_classes;
  out.name = dataset.name + "[" + std::to_string(begin) + ":" + std::to_string(begin + count) + "]";
  return out;
}

Dataset select(const Dataset& dataset, const std::vector<int64_t>& indices) {
  const int64_t n = static_cast<int64_t>(indices.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t at = indices[static_cast<size_t>(i)];
    if (at < 0 || at >= dataset.size())
      throw error(display_name(dataset), ": index ", at, " (position ", i,
                  " of the selection) is out of range; expected [0, ", dataset.size(), ")");
  }
  const Tensor images = dataset.images.contiguous();
  Shape shape = images.shape();
  shape[0] = n;
  Dataset out;
  out.images = Tensor::empty(shape);
  out.labels.resize(indices.size());
  out.num_classes = dataset.num_classes;
  out.name = dataset.name + "[selection of " + std::to_string(n) + "]";
  const int64_t item = item_numel(dataset);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t at = indices[static_cast<size_t>(i)];
    std::memcpy(out.images.data() + i * item, images.data() + at * item,
                static_cast<size_t>(item) * sizeof(float));
    out.labels[static_cast<size_t>(i)] = dataset.labels[static_cast<size_t>(at)];
  }
  return out;
}

void shuffle_indices(std::vector<int64_t>& indices, Rng& rng) {
  for (size_t i = indices.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng.below(i));
    std::swap(indices[i - 1], indices[j]);
  }
}

std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed) {
  CG_ASSERT(n >= 0, "shuffled_indices of ", n);
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = i;
  Rng rng(seed);
  shuffle_indices(out, rng);
  return out;
}

Dataset random_subset(const Dataset& dataset, int64_t count, uint64_t seed) {
  if (count < 0 || count > dataset.size())
    throw error(display_name(dataset), ": random subset of ", count,
                " items; expected at most its ", dataset.size(), " items");
  std::vector<int64_t> order = shuffled_indices(dataset.size(), seed);
  order.resize(static_cast<size_t>(count));
  return select(dataset, order);
}

}  // namespace cellgraph
