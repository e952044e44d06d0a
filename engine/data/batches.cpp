#include "engine/data/batches.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "engine/error.h"
#include "engine/tensor/random.h"

namespace cellgraph {

namespace {

std::vector<int64_t> all_items(const Dataset& dataset) {
  std::vector<int64_t> out(static_cast<size_t>(dataset.size()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int64_t>(i);
  return out;
}

// Decorrelates (seed, epoch) pairs so that seed s, epoch e+1 and seed s+1, epoch e differ.
uint64_t epoch_seed(uint64_t seed, int64_t epoch) {
  return mix64(seed ^
               (static_cast<uint64_t>(epoch) * 0xD1B54A32D192ED03ull + 0x9E3779B97F4A7C15ull));
}

}  // namespace

uint64_t batch_augment_seed(uint64_t seed, int64_t epoch, int64_t batch) {
  // The constant separates this stream from epoch_seed's; mixing after each input keeps
  // (epoch, batch) and (epoch + 1, batch - k) apart.
  uint64_t z = mix64(seed ^ 0x6A09E667F3BCC909ull);
  z = mix64(z + static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ull);
  return mix64(z + static_cast<uint64_t>(batch) * 0xD1B54A32D192ED03ull);
}

BatchIterator::BatchIterator(const Dataset& dataset, BatchOptions options)
    : BatchIterator(dataset, all_items(dataset), std::move(options)) {}

BatchIterator::BatchIterator(const Dataset& dataset, int64_t batch_size, uint64_t seed,
                             bool drop_last, bool shuffle)
    : BatchIterator(dataset, BatchOptions{.batch_size = batch_size,
                                          .shuffle = shuffle,
                                          .drop_last = drop_last,
                                          .seed = seed}) {}

BatchIterator::BatchIterator(const Dataset& dataset, std::vector<int64_t> indices,
                             BatchOptions options)
    : dataset_(dataset), indices_(std::move(indices)), options_(std::move(options)) {
  if (options_.batch_size < 1)
    throw error(display_name(dataset_), ": batch size ", options_.batch_size,
                "; expected at least 1");
  CG_ASSERT(dataset_.images.rank() == 4 && dataset_.images.dim(0) == dataset_.size(),
            "dataset images ", dataset_.images.shape().str(), " for ", dataset_.size(), " labels");
  for (size_t i = 0; i < indices_.size(); ++i) {
    if (indices_[i] < 0 || indices_[i] >= dataset_.size())
      throw error(display_name(dataset_), ": batch index ", indices_[i], " (position ", i,
                  ") is out of range; expected [0, ", dataset_.size(), ")");
  }
  const int64_t n = items_per_epoch();
  batches_per_epoch_ = options_.drop_last ? n / options_.batch_size
                                          : (n + options_.batch_size - 1) / options_.batch_size;
  if (batches_per_epoch_ == 0)
    throw error(display_name(dataset_), ": ", n, " items make no batch of ", options_.batch_size,
                options_.drop_last ? " with drop_last" : "",
                "; expected at least one batch per epoch");
  try {
    check_augment_options(options_.augment, dataset_.images.dim(1));
  } catch (const Error& e) {
    throw error(display_name(dataset_), ": ", e.what());
  }
  // Images are copied out per item with memcpy; a contiguous handle makes that valid.
  dataset_.images = dataset_.images.contiguous();
  enter_epoch(0);
}

std::vector<int64_t> BatchIterator::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order = indices_;
  if (options_.shuffle) {
    Rng rng(epoch_seed(options_.seed, epoch));
    shuffle_indices(order, rng);
  }
  return order;
}

void BatchIterator::enter_epoch(int64_t epoch) {
  epoch_ = epoch;
  batch_ = 0;
  order_ = epoch_order(epoch);
}

Batch to_device(const Batch& batch, Device device) {
  return Batch{batch.images.to(device), batch.labels.to(device), batch.indices};
}

Batch BatchIterator::next() {
  // Rolling over here rather than after the last batch keeps position() at (e, last) for
  // a checkpoint taken at the end of epoch e, which reads naturally.
  if (epoch_done()) enter_epoch(epoch_ + 1);
  return make_batch(batch_++);
}

void BatchIterator::set_position(BatchPosition position) {
  if (position.epoch < 0 || position.batch < 0 || position.batch > batches_per_epoch_)
    throw error(display_name(dataset_), ": batch position (epoch ", position.epoch, ", batch ",
                position.batch, ") is invalid; expected epoch >= 0 and batch in [0, ",
                batches_per_epoch_, "]");
  if (position.epoch != epoch_) order_ = epoch_order(position.epoch);
  epoch_ = position.epoch;
  batch_ = position.batch;
}

Batch BatchIterator::make_batch(int64_t batch) const {
  const int64_t begin = batch * options_.batch_size;
  const int64_t count = std::min(options_.batch_size, items_per_epoch() - begin);
  Shape shape = dataset_.images.shape();
  shape[0] = count;
  Batch out;
  out.images = Tensor::empty(shape);
  out.labels = Tensor::empty({count});
  out.indices.assign(order_.begin() + begin, order_.begin() + begin + count);
  const int64_t item = count ? out.images.numel() / count : 0;
  const float* src = dataset_.images.data();
  float* dst = out.images.data();
  float* labels = out.labels.data();
  for (int64_t i = 0; i < count; ++i) {
    const int64_t at = out.indices[static_cast<size_t>(i)];
    std::memcpy(dst + i * item, src + at * item, static_cast<size_t>(item) * sizeof(float));
    labels[i] = static_cast<float>(dataset_.labels[static_cast<size_t>(at)]);
  }
  if (options_.augment.enabled()) {
    Rng rng(batch_augment_seed(options_.seed, epoch_, batch));
    augment(out.images, options_.augment, rng);
  }
  return out;
}

}  // namespace cellgraph
