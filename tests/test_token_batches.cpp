// Language-model batches (engine/data/token_batches.h): streams and windows checked against a
// hand-worked case, epochs, position save/restore, and the errors.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/data/token_batches.h"
#include "engine/error.h"
#include "tests/support/cli.h"
#include "tests/support/errors.h"

using namespace cellgraph;

namespace {
using testing::error_of;
using testing::has;

// Tokens 100, 101, ..., 100 + n - 1: a value shows where it came from.
std::vector<int32_t> ramp(int n) {
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out.push_back(100 + i);
  return out;
}

std::vector<float> values(const Tensor& t) { return t.to_vector(); }

}  // namespace

TEST_CASE("token batches: streams and windows of a hand-worked case") {
  // 25 tokens in N = 2 streams: L = 12, stream 0 = 100..111, stream 1 = 112..123, token 124
  // dropped. T = 3: (12 - 1) / 3 = 3 windows. A fourth would read inputs 109..111 and need
  // target 112, past stream 0's end: the partial window is dropped, so 109 and 121 are only
  // targets and 110, 111, 122, 123 are never read.
  TokenBatches batches(ramp(25), {.streams = 2, .steps = 3}, "tiny/train");
  CHECK(batches.stream_length() == 12);
  CHECK(batches.batches_per_epoch() == 3);
  CHECK(batches.position() == BatchPosition{0, 0});

  const Batch b0 = batches.next();
  CHECK(b0.images.shape() == Shape{2, 3});
  CHECK(b0.labels.shape() == Shape{2, 3});
  CHECK(values(b0.images) == std::vector<float>{100, 101, 102, 112, 113, 114});
  CHECK(values(b0.labels) == std::vector<float>{101, 102, 103, 113, 114, 115});
  CHECK(b0.indices == std::vector<int64_t>{0, 12});

  const Batch b1 = batches.next();
  CHECK(values(b1.images) == std::vector<float>{103, 104, 105, 115, 116, 117});
  CHECK(values(b1.labels) == std::vector<float>{104, 105, 106, 116, 117, 118});
  CHECK(b1.indices == std::vector<int64_t>{3, 15});

  CHECK_FALSE(batches.epoch_done());
  const Batch b2 = batches.next();
  CHECK(values(b2.images) == std::vector<float>{106, 107, 108, 118, 119, 120});
  CHECK(values(b2.labels) == std::vector<float>{107, 108, 109, 119, 120, 121});
  CHECK(batches.epoch_done());
  CHECK(batches.position() == BatchPosition{0, 3});

  // The next epoch walks the same windows from the start.
  const Batch again = batches.next();
  CHECK(batches.position() == BatchPosition{1, 1});
  CHECK(values(again.images) == values(b0.images));
  CHECK(values(again.labels) == values(b0.labels));
}

TEST_CASE("token batches: the smallest corpus that makes one window, and one token less") {
  // N (T + 1) = 8 tokens: L = 4, one window; 7 tokens: L = 3, none.
  TokenBatches one(ramp(8), {.streams = 2, .steps = 3}, "tiny/valid");
  CHECK(one.batches_per_epoch() == 1);
  CHECK(values(one.next().labels) == std::vector<float>{101, 102, 103, 105, 106, 107});

  const std::string message =
      error_of([] { TokenBatches(ramp(7), {.streams = 2, .steps = 3}, "tiny/valid"); });
  CHECK(has(message, "tiny/valid: 7 tokens in 2 streams of 3 make no window of 3 tokens"));
  CHECK(has(message, "at least 8 tokens"));
}

TEST_CASE("token batches: position save and restore") {
  const std::vector<int32_t> tokens = ramp(61);
  const TokenBatchOptions options{.streams = 3, .steps = 4};  // L = 20, 4 windows
  TokenBatches first(tokens, options, "tiny/train");
  for (int i = 0; i < 6; ++i) first.next();
  const BatchPosition saved = first.position();
  CHECK(saved == BatchPosition{1, 2});
  const Batch expected = first.next();

  TokenBatches resumed(tokens, options, "tiny/train");
  resumed.set_position(saved);
  CHECK(resumed.position() == saved);
  const Batch got = resumed.next();
  CHECK(values(got.images) == values(expected.images));
  CHECK(values(got.labels) == values(expected.labels));
  CHECK(got.indices == expected.indices);
  CHECK(got.indices == std::vector<int64_t>{8, 28, 48});

  // The end of an epoch is a valid position: next() starts the following epoch.
  resumed.set_position({2, 4});
  CHECK(resumed.epoch_done());
  CHECK(resumed.next().indices == std::vector<int64_t>{0, 20, 40});
  CHECK(resumed.position() == BatchPosition{3, 1});

  for (const BatchPosition bad :
       {BatchPosition{0, 5}, BatchPosition{-1, 0}, BatchPosition{0, -1}}) {
    const std::string message = error_of([&] { resumed.set_position(bad); });
    CHECK(has(message, "tiny/train: batch position"));
    CHECK(has(message, "batch in [0, 4]"));
  }
  CHECK(resumed.position() == BatchPosition{3, 1});
}

TEST_CASE("token batches: option and id errors") {
  CHECK(has(error_of([] { TokenBatches(ramp(50), {.streams = 0, .steps = 3}, "c/train"); }),
            "c/train: 0 streams (batch size); expected at least 1"));
  CHECK(has(error_of([] { TokenBatches(ramp(50), {.streams = 2, .steps = 0}, "c/train"); }),
            "c/train: 0 tokens per window; expected at least 1"));
  std::vector<int32_t> tokens = ramp(50);
  tokens[7] = -1;
  CHECK(has(error_of([&] { TokenBatches(tokens, {.streams = 2, .steps = 3}, "c/train"); }),
            "c/train: token 7 has id -1"));
}
