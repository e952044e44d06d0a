// Where a batch source stands: `batch` batches of epoch `epoch` are used. batch ==
// batches_per_epoch() means the epoch is finished and the next batch starts epoch + 1.
#pragma once

#include <cstdint>

namespace cellgraph {

struct BatchPosition {
  int64_t epoch = 0;
  int64_t batch = 0;
  bool operator==(const BatchPosition&) const = default;
};

}  // namespace cellgraph
