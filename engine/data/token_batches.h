// Language-model batches over one split of a corpus, as DARTS' RNN code and the AWD-LSTM
// code before it cut them: the token sequence is dealt into N parallel streams (stream n is
// tokens [n L, (n+1) L), L = size / N; the tail that does not fill N streams is dropped),
// and batch k holds window k of every stream, T tokens each, in order. Sample n of batch
// k + 1 continues sample n of batch k in the text, which is what lets a session carry the
// hidden state of stream n from one batch to the next. There is no shuffling: every epoch
// walks the same windows, so a position is all a checkpoint needs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/batches.h"

namespace cellgraph {

struct TokenBatchOptions {
  int64_t streams = 64;  // N, the batch size (DARTS' train_search: 256; its eval: 10)
  int64_t steps = 35;    // T, tokens per window (the BPTT length)
};

class TokenBatches final : public BatchSource {
 public:
  // Over `tokens` (ids, copied in stream order); `name` names them in messages, e.g.
  // Corpus::split_label(). Throws cellgraph::Error when streams or steps < 1, or when the
  // tokens make no window: a window needs T + 1 tokens per stream (the targets are the
  // inputs shifted by one), so at least N (T + 1) tokens.
  TokenBatches(const std::vector<int32_t>& tokens, TokenBatchOptions options,
               const std::string& name);

  // The next window: images = inputs [N, T] and labels = targets [N, T] (the token after each
  // input), both float32 ids; indices = for each stream, the offset in `tokens` of its first
  // input token. After the last window of an epoch the next call starts the next epoch at
  // window 0, so one epoch is
  //   for (int64_t b = 0; b < it.batches_per_epoch(); ++b) use(it.next());
  Batch next() override;
  // True when the current epoch's windows are all used (the next call starts a new epoch,
  // where a session resets its hidden state).
  bool epoch_done() const { return batch_ == batches_per_epoch_; }

  // (L - 1) / T: window k reads inputs k T .. k T + T - 1 and targets one further, so the
  // last window must end by L - 1. The remainder, shorter than T, is dropped (DARTS evaluates
  // it as a shorter window; fixed windows keep the network's shape static).
  int64_t batches_per_epoch() const override { return batches_per_epoch_; }
  int64_t stream_length() const { return stream_length_; }  // L
  const TokenBatchOptions& options() const { return options_; }
  const std::string& name() const { return name_; }

  BatchPosition position() const override { return {epoch_, batch_}; }
  // Restores a saved position; throws cellgraph::Error when it cannot belong to this
  // iterator (negative, or batch > batches_per_epoch()).
  void set_position(BatchPosition position) override;

 private:
  Batch make_batch(int64_t batch) const;

  std::vector<int32_t> streams_;  // N rows of L tokens, row-major
  TokenBatchOptions options_;
  std::string name_;
  int64_t stream_length_ = 0;
  int64_t batches_per_epoch_ = 0;
  int64_t epoch_ = 0;
  int64_t batch_ = 0;
};

}  // namespace cellgraph
