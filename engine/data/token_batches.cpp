#include "engine/data/token_batches.h"

#include "engine/error.h"

namespace cellgraph {

TokenBatches::TokenBatches(const std::vector<int32_t>& tokens, TokenBatchOptions options,
                           const std::string& name)
    : options_(options), name_(name) {
  const int64_t n = options_.streams, t = options_.steps;
  if (n < 1) throw error(name_, ": ", n, " streams (batch size); expected at least 1");
  if (t < 1) throw error(name_, ": ", t, " tokens per window; expected at least 1");
  // A float32 holds every integer below 2^24 exactly; ids are vocabulary indices, far below.
  constexpr int32_t kExactIds = 1 << 24;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= kExactIds)
      throw error(name_, ": token ", i, " has id ", tokens[i], "; expected an id in [0, 2^24)");
  }
  const auto size = static_cast<int64_t>(tokens.size());
  stream_length_ = size / n;
  batches_per_epoch_ = stream_length_ > 0 ? (stream_length_ - 1) / t : 0;
  if (batches_per_epoch_ == 0)
    throw error(name_, ": ", size, " tokens in ", n, " streams of ", stream_length_,
                " make no window of ", t, " tokens; expected at least ", n * (t + 1), " tokens (",
                n, " streams of ", t, " + 1: the targets are the next tokens)");
  // Stream n is tokens [n L, (n + 1) L), so the N x L rows are the first N L tokens.
  streams_.assign(tokens.begin(), tokens.begin() + n * stream_length_);
}

Batch TokenBatches::next() {
  if (epoch_done()) {
    ++epoch_;
    batch_ = 0;
  }
  return make_batch(batch_++);
}

void TokenBatches::set_position(BatchPosition position) {
  if (position.epoch < 0 || position.batch < 0 || position.batch > batches_per_epoch_)
    throw error(name_, ": batch position (epoch ", position.epoch, ", batch ", position.batch,
                ") is invalid; expected epoch >= 0 and batch in [0, ", batches_per_epoch_, "]");
  epoch_ = position.epoch;
  batch_ = position.batch;
}

Batch TokenBatches::make_batch(int64_t batch) const {
  const int64_t n = options_.streams, t = options_.steps;
  Batch out;
  out.images = Tensor::empty({n, t});
  out.labels = Tensor::empty({n, t});
  float* inputs = out.images.data();
  float* targets = out.labels.data();
  out.indices.resize(static_cast<size_t>(n));
  for (int64_t s = 0; s < n; ++s) {
    const int64_t first = s * stream_length_ + batch * t;
    out.indices[static_cast<size_t>(s)] = first;
    for (int64_t i = 0; i < t; ++i) {
      inputs[s * t + i] = static_cast<float>(streams_[static_cast<size_t>(first + i)]);
      targets[s * t + i] = static_cast<float>(streams_[static_cast<size_t>(first + i + 1)]);
    }
  }
  return out;
}

}  // namespace cellgraph
