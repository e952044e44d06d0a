// In-memory labelled image datasets: loading (IDX / Fashion-MNIST), per-channel
// normalisation, subsets and seeded permutations. Everything lives on the CPU; batches
// (batches.h) are copied out and moved to a device by the caller.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor/random.h"
#include "engine/tensor/tensor.h"

namespace cellgraph {

struct Dataset {
  Tensor images;                // [N, C, H, W] float32, CPU; pixels in [0, 1] when loaded
  std::vector<int32_t> labels;  // N class ids in [0, num_classes)
  int num_classes = 0;
  std::string name;  // used in messages, e.g. "fashion-mnist/train[0:30000]"

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

// "dataset 'NAME'" (or "dataset" when unnamed), the prefix of messages about it.
std::string display_name(const Dataset& dataset);

// Loads an image file (IDX rank 3: N, H, W unsigned bytes) and a label file (IDX rank 1)
// into a dataset with C = 1 and pixels scaled to [0, 1]. Throws cellgraph::Error naming the
// file for every read error of read_idx(), a label count different from the image count,
// or a label >= num_classes (num_classes must be >= 1). `name` defaults to images_path.
Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         int num_classes, const std::string& name = {});

enum class Split { train, test };

// Where the Debian package dataset-fashion-mnist installs the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Loads Fashion-MNIST from `dir` (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
// t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, or the same names without .gz):
// 60000 (train) or 10000 (test) images of 1x28x28, 10 classes. Throws cellgraph::Error when
// a file is missing or malformed.
Dataset load_fashion_mnist(const std::string& dir, Split split);

// Loads MNIST (or any dataset in its layout) from `dir`: the same four file names as
// Fashion-MNIST, gzipped or not; 10 classes, named "mnist/train" or "mnist/test".
Dataset load_mnist(const std::string& dir, Split split);

// The datasets a command line can name, "NAME" or "NAME:DIR" (DIR may itself contain ':'):
//   fashion-mnist        Fashion-MNIST from kFashionMnistDir
//   fashion-mnist:DIR    Fashion-MNIST from DIR
//   mnist:DIR            MNIST from DIR (IDX files, Fashion-MNIST's names)
//   cifar10:DIR          CIFAR-10 binary version from DIR (cifar.h)
//   cifar100:DIR         CIFAR-100 binary version from DIR, fine labels
// Throws cellgraph::Error for an unknown name or a missing / empty DIR (listing these forms),
// and every error of the loader.
Dataset load_dataset(const std::string& spec, Split split);

// Per-channel mean and (population) standard deviation of the images, accumulated in
// double. Compute on the training set and apply to every split.
struct ChannelStats {
  std::vector<float> mean;
  std::vector<float> std;
};
ChannelStats channel_stats(const Dataset& dataset);

// images = (images - mean[c]) / std[c]. Writes a new images tensor, so views shared with
// another Dataset (subset()) are not changed. Throws cellgraph::Error when the channel
// counts differ or a std is not > 0.
void normalize(Dataset& dataset, const ChannelStats& stats);

// Items [begin, begin + count): the images are a view of the same storage, no copy.
// Throws cellgraph::Error when the range is outside the dataset.
Dataset subset(const Dataset& dataset, int64_t begin, int64_t count);

// The items at `indices`, in that order (repeats allowed), copied. Throws cellgraph::Error
// for an index outside [0, size()).
Dataset select(const Dataset& dataset, const std::vector<int64_t>& indices);

// A uniformly random permutation of 0..n-1: Fisher-Yates driven by Rng::below, so the
// same seed gives the same order on every platform.
std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed);
void shuffle_indices(std::vector<int64_t>& indices, Rng& rng);

// `count` items drawn without replacement by seed (select(shuffled_indices(...)[:count])).
Dataset random_subset(const Dataset& dataset, int64_t count, uint64_t seed);

}  // namespace cellgraph
