// Mini-batches over a dataset (or a list of its item indices), reshuffled each epoch.
// The order of epoch e is a pure function of (seed, e): Fisher-Yates over the index list
// driven by an Rng seeded from both, so a checkpoint needs only position() to resume
// exactly, on any machine.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/data/augment.h"
#include "engine/data/batch_source.h"
#include "engine/data/dataset.h"
#include "engine/tensor/tensor.h"

namespace cellgraph {

struct BatchOptions {
  int64_t batch_size = 64;
  bool shuffle = true;     // false: every epoch walks the index list in order
  bool drop_last = false;  // true: a final batch smaller than batch_size is skipped
  uint64_t seed = 0;
  // Applied to every batch (default: off) with Rng(batch_augment_seed(seed, epoch, batch)),
  // so a batch's augmentation depends only on its position, not on the batches before it.
  AugmentOptions augment = {};
};

// The seed of the Rng that augments batch `batch` of epoch `epoch`; independent of the
// shuffling stream of the same seed.
uint64_t batch_augment_seed(uint64_t seed, int64_t epoch, int64_t batch);

// One mini-batch. Images (BatchIterator): images [B, C, H, W] and labels [B] class ids.
// A language model (TokenBatches, token_batches.h) uses the same struct: images = the input
// token ids [N, T] and labels = the target ids [N, T] (the next token of each input), both
// float32 ids, and indices = the offset of each stream's first input token in its split.
struct Batch {
  Tensor images;                 // [B, C, H, W] or token ids [N, T]; float32, a copy (CPU)
  Tensor labels;                 // [B] class ids or [N, T] next-token ids, float32
  std::vector<int64_t> indices;  // the dataset items, or each stream's token offset
};

// The batch with its images and labels on `device` (the same tensors when they are there
// already, so the CPU pays nothing). Throws Error when the device is not available.
Batch to_device(const Batch& batch, Device device);

class BatchIterator final : public BatchSource {
 public:
  // Over every item of the dataset, or over `indices` (items of it; repeats allowed). The
  // iterator keeps its own copy of the Dataset handle (the images are shared, not copied).
  // Throws cellgraph::Error when batch_size < 1, an index is out of range, an epoch would
  // have no batch (no items, or fewer than batch_size with drop_last), or the augmentation
  // options are invalid (check_augment_options).
  BatchIterator(const Dataset& dataset, BatchOptions options);
  BatchIterator(const Dataset& dataset, std::vector<int64_t> indices, BatchOptions options);
  // Shorthand for the first form.
  BatchIterator(const Dataset& dataset, int64_t batch_size, uint64_t seed = 0,
                bool drop_last = false, bool shuffle = true);

  // The next batch, augmented when options().augment is enabled. After the last batch of
  // an epoch the next call starts the following epoch (reshuffled), so one epoch is
  //   for (int64_t b = 0; b < it.batches_per_epoch(); ++b) use(it.next());
  Batch next() override;
  // True when the current epoch's batches are all used (the next call starts a new epoch).
  bool epoch_done() const { return batch_ == batches_per_epoch_; }

  int64_t batches_per_epoch() const override { return batches_per_epoch_; }
  int64_t items_per_epoch() const { return static_cast<int64_t>(indices_.size()); }
  const BatchOptions& options() const { return options_; }

  BatchPosition position() const override { return {epoch_, batch_}; }
  // Restores a saved position; throws cellgraph::Error when it cannot belong to this
  // iterator (negative, or batch > batches_per_epoch()).
  void set_position(BatchPosition position) override;

  // The item order of an epoch (what next() walks through), for tests and diagnostics.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  void enter_epoch(int64_t epoch);
  Batch make_batch(int64_t batch) const;

  Dataset dataset_;
  std::vector<int64_t> indices_;  // the base list, in the caller's order
  std::vector<int64_t> order_;    // indices_ as shuffled for epoch_
  BatchOptions options_;
  int64_t batches_per_epoch_ = 0;
  int64_t epoch_ = 0;
  int64_t batch_ = 0;
};

}  // namespace cellgraph
