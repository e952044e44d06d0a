// What a run draws its batches from: labelled images (BatchIterator, batches.h) or the
// windows of a text corpus (token_batches.h). A session holds its train and validation
// streams through this interface, so search and training step the same way over either.
//
// Why an interface and not one iterator with two modes: the two differ in everything but
// their position — images are shuffled each epoch and independent, text windows come in
// order and carry a hidden state from one to the next — and each keeps its own tests.
#pragma once

#include <cstdint>

#include "engine/data/batch_position.h"

namespace cellgraph {

struct Batch;

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The next batch; after the last batch of an epoch the next call starts the next epoch.
  virtual Batch next() = 0;
  virtual int64_t batches_per_epoch() const = 0;
  // Where the source stands (checkpoints); set_position throws Error for a position that
  // cannot belong to it.
  virtual BatchPosition position() const = 0;
  virtual void set_position(BatchPosition position) = 0;

  // True when the next batch is the first of an epoch (a text stream starts again from its
  // beginning, so a carried hidden state no longer applies).
  bool starts_epoch() const {
    const BatchPosition p = position();
    return p.batch == 0 || p.batch == batches_per_epoch();
  }
};

}  // namespace cellgraph
