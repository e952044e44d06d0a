#include <algorithm>
#include <functional>
#include <set>
#include <utility>

#include <doctest/doctest.h>

#include "engine/data/augment.h"
#include "engine/data/batches.h"
#include "engine/data/dataset.h"
#include "engine/error.h"
#include "engine/threads.h"
#include "tests/support/cli.h"
#include "tests/support/errors.h"

using namespace cellgraph;

namespace {
using testing::error_of;
using testing::has;

// n images of c x h x w whose pixels are all distinct and non-zero (1, 2, 3, ...), so a
// zero can only come from padding or cutout and a value identifies its source pixel.
Tensor distinct_images(int64_t n, int64_t c, int64_t h, int64_t w) {
  std::vector<float> px(static_cast<size_t>(n * c * h * w));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<float>(i + 1);
  return Tensor::from_vector({n, c, h, w}, px);
}

// Pixel (c, y, x) of image i of a contiguous [N, C, H, W] host copy.
struct Images {
  std::vector<float> v;
  int64_t c, h, w;
  explicit Images(const Tensor& t) : v(t.to_vector()), c(t.dim(1)), h(t.dim(2)), w(t.dim(3)) {}
  float at(int64_t i, int64_t ch, int64_t y, int64_t x) const {
    return v[static_cast<size_t>(((i * c + ch) * h + y) * w + x)];
  }
};

// True when image i of `out` is image i of `in` shifted so out(y, x) = in(y + sy, x + sx),
// with `fill` where that falls outside.
bool is_shift(const Images& in, const Images& out, int64_t i, int64_t sy, int64_t sx,
              float fill = 0.0f) {
  for (int64_t c = 0; c < in.c; ++c)
    for (int64_t y = 0; y < in.h; ++y)
      for (int64_t x = 0; x < in.w; ++x) {
        const int64_t ty = y + sy, tx = x + sx;
        const bool inside = ty >= 0 && ty < in.h && tx >= 0 && tx < in.w;
        if (out.at(i, c, y, x) != (inside ? in.at(i, c, ty, tx) : fill)) return false;
      }
  return true;
}

Dataset make_dataset(int64_t n, int64_t c, int64_t h, int64_t w) {
  Dataset d;
  d.images = distinct_images(n, c, h, w);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(i % 3));
  d.num_classes = 3;
  d.name = "toy";
  return d;
}

}  // namespace

TEST_CASE("augment: a random crop is a shift by up to the padding with zeros entering") {
  const int64_t n = 300, pad = 2;
  const Tensor original = distinct_images(n, 2, 5, 6);
  Tensor images = original.clone();
  const AugmentOptions options{.crop_padding = static_cast<int>(pad)};
  Rng rng(3);
  augment(images, options, rng);
  const Images in(original), out(images);
  // The draw order is part of the contract: two below(2p + 1) per image, in batch order.
  Rng replay(3);
  std::set<std::pair<int64_t, int64_t>> shifts;
  for (int64_t i = 0; i < n; ++i) {
    CAPTURE(i);
    const auto dy = static_cast<int64_t>(replay.below(2 * pad + 1));
    const auto dx = static_cast<int64_t>(replay.below(2 * pad + 1));
    CHECK(is_shift(in, out, i, dy - pad, dx - pad));
    shifts.insert({dy - pad, dx - pad});
  }
  CHECK(shifts.size() == 25);  // every offset in [-2, 2]^2 occurs
  // One shift by hand: window offset (0, 4) in the 2-padded image moves content up-left by
  // (-2, +2): out(y, x) = in(y - 2, x + 2).
  Tensor one = Tensor::from_vector({1, 1, 3, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  apply_augment(one, options, {AugmentDraw{.dy = 0, .dx = 4}});
  CHECK(one.to_vector() == std::vector<float>{0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 0, 0});
  Tensor other = Tensor::from_vector({1, 1, 3, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  apply_augment(other, AugmentOptions{.crop_padding = 1}, {AugmentDraw{.dy = 2, .dx = 1}});
  CHECK(other.to_vector() == std::vector<float>{5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0, 0});
}

TEST_CASE("augment: the padding value is per channel, normalized_zero is black") {
  Tensor images = Tensor::full({1, 2, 2, 2}, 5.0f);
  const AugmentOptions options{.crop_padding = 1, .pad_value = {-1.0f, -2.0f}};
  apply_augment(images, options, {AugmentDraw{.dy = 0, .dx = 0}});  // shift down-right by 1
  CHECK(images.to_vector() == std::vector<float>{-1, -1, -1, 5, -2, -2, -2, 5});
  const std::vector<float> black = normalized_zero(ChannelStats{{0.5f, 0.25f}, {0.25f, 0.5f}});
  CHECK(black == std::vector<float>{-2.0f, -0.5f});
}

TEST_CASE("augment: flip mirrors the width axis of about half the images") {
  const int64_t n = 200;
  const Tensor original = distinct_images(n, 3, 4, 5);
  Tensor images = original.clone();
  Rng rng(11);
  augment(images, AugmentOptions{.flip = true}, rng);
  const Images in(original), out(images);
  Rng replay(11);
  int64_t flipped = 0;
  for (int64_t i = 0; i < n; ++i) {
    CAPTURE(i);
    const bool flip = replay.below(2) == 1;
    flipped += flip ? 1 : 0;
    bool ok = true;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 4; ++y)
        for (int64_t x = 0; x < 5; ++x)
          ok = ok && out.at(i, c, y, x) == in.at(i, c, y, flip ? 4 - x : x);
    CHECK(ok);
  }
  CHECK(flipped > 70);
  CHECK(flipped < 130);
}

TEST_CASE("augment: cutout zeroes one clipped square of side L in every channel, nothing else") {
  for (const int side : {4, 3}) {
    CAPTURE(side);
    const int64_t n = 300, h = 8, w = 7;
    const Tensor original = distinct_images(n, 2, h, w);
    Tensor images = original.clone();
    const AugmentOptions options{.cutout = side};
    Rng rng(5);
    const std::vector<AugmentDraw> draws = draw_augment(n, h, w, options, rng);
    apply_augment(images, options, draws);
    const Images in(original), out(images);
    int64_t full = 0, clipped = 0;
    for (int64_t i = 0; i < n; ++i) {
      CAPTURE(i);
      const AugmentDraw& d = draws[static_cast<size_t>(i)];
      CHECK((d.cy >= 0 && d.cy < h && d.cx >= 0 && d.cx < w));
      // The zeroed rows and columns, found from the output alone.
      int64_t y0 = h, y1 = -1, x0 = w, x1 = -1, zeros = 0;
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x)
          if (out.at(i, 0, y, x) == 0.0f) {
            ++zeros;
            y0 = std::min(y0, y);
            y1 = std::max(y1, y);
            x0 = std::min(x0, x);
            x1 = std::max(x1, x);
          }
      REQUIRE(zeros > 0);
      CHECK(zeros == (y1 - y0 + 1) * (x1 - x0 + 1));  // a filled rectangle
      CHECK(y0 == std::max<int64_t>(0, d.cy - side / 2));
      CHECK(y1 + 1 == std::min<int64_t>(h, d.cy - side / 2 + side));
      CHECK(x0 == std::max<int64_t>(0, d.cx - side / 2));
      CHECK(x1 + 1 == std::min<int64_t>(w, d.cx - side / 2 + side));
      const bool whole = y1 - y0 + 1 == side && x1 - x0 + 1 == side;
      (whole ? full : clipped) += 1;
      int64_t wrong = 0;  // pixels other than the square's changed, or channels differing
      for (int64_t c = 0; c < 2; ++c)
        for (int64_t y = 0; y < h; ++y)
          for (int64_t x = 0; x < w; ++x) {
            const bool cut = y >= y0 && y <= y1 && x >= x0 && x <= x1;
            wrong += out.at(i, c, y, x) != (cut ? 0.0f : in.at(i, c, y, x)) ? 1 : 0;
          }
      CHECK(wrong == 0);
    }
    CHECK(full > 0);
    CHECK(clipped > 0);
  }
}

TEST_CASE("augment: the result depends only on the Rng state, not on threads") {
  // Large enough (64 x 3x32x32) for the parallel path.
  const AugmentOptions options{.crop_padding = 4, .flip = true, .cutout = 16};
  const Tensor original = distinct_images(64, 3, 32, 32);
  auto run = [&](uint64_t seed) {
    Tensor images = original.clone();
    Rng rng(seed);
    augment(images, options, rng);
    return images.to_vector();
  };
  const std::vector<float> a = run(9);
  CHECK(a == run(9));
  CHECK(a != run(10));
  CHECK(a != original.to_vector());
  set_num_threads(1);
  CHECK(a == run(9));
  set_num_threads(0);
  // Disabled options leave the images and the Rng untouched.
  Tensor images = original.clone();
  Rng rng(4);
  augment(images, AugmentOptions{}, rng);
  CHECK(images.to_vector() == original.to_vector());
  CHECK(rng.next_u64() == Rng(4).next_u64());
}

TEST_CASE("augment: invalid options are errors") {
  Tensor images = Tensor::zeros({2, 3, 4, 4});
  Rng rng(0);
  CHECK(has(error_of([&] { augment(images, AugmentOptions{.crop_padding = -1}, rng); }),
            "crop padding -1"));
  CHECK(
      has(error_of([&] { augment(images, AugmentOptions{.cutout = -2}, rng); }), "cutout side -2"));
  CHECK(has(error_of([&] {
              augment(images, AugmentOptions{.crop_padding = 1, .pad_value = {0, 0}}, rng);
            }),
            "2 padding values for images of 3 channels"));
  const Dataset d = make_dataset(4, 1, 2, 2);
  const std::string msg =
      error_of([&] { BatchIterator(d, BatchOptions{.batch_size = 2, .augment = {.cutout = -1}}); });
  CHECK(has(msg, "dataset 'toy'"));
  CHECK(has(msg, "cutout side -1"));
}

TEST_CASE("augment: BatchIterator augments each batch from (seed, epoch, batch) and resumes") {
  const Dataset d = make_dataset(20, 3, 8, 8);
  const std::vector<float> pristine = d.images.to_vector();
  const BatchOptions options{
      .batch_size = 4, .seed = 5, .augment = {.crop_padding = 2, .flip = true, .cutout = 3}};
  BatchIterator it(d, options);
  BatchIterator plain(d, BatchOptions{.batch_size = 4, .seed = 5});
  std::vector<std::vector<float>> seen;
  for (int step = 0; step < 12; ++step) {  // 5 batches per epoch: into epoch 2
    const BatchPosition at = it.position();
    const int64_t epoch = it.epoch_done() ? at.epoch + 1 : at.epoch;
    const int64_t batch = it.epoch_done() ? 0 : at.batch;
    const Batch b = it.next();
    CHECK(b.indices == plain.next().indices);  // augmenting does not change the order
    // Exactly the copied items augmented with the batch's own Rng.
    Tensor expected = select(d, b.indices).images;
    Rng rng(batch_augment_seed(5, epoch, batch));
    augment(expected, options.augment, rng);
    CHECK(b.images.to_vector() == expected.to_vector());
    seen.push_back(b.images.to_vector());
  }
  CHECK(d.images.to_vector() == pristine);  // the dataset itself is never augmented
  // A restored position reproduces the same augmented batches, here mid-epoch 1.
  BatchIterator resumed(d, options);
  resumed.set_position({1, 2});
  for (size_t step = 7; step < seen.size(); ++step)
    CHECK(resumed.next().images.to_vector() == seen[step]);

  // The same item in another batch or epoch is augmented differently.
  BatchIterator same(d, std::vector<int64_t>(4, 0),
                     BatchOptions{.batch_size = 1, .shuffle = false, .augment = options.augment});
  const std::vector<float> b0 = same.next().images.to_vector();
  const std::vector<float> b1 = same.next().images.to_vector();
  CHECK(b0 != b1);
  same.set_position({1, 0});
  CHECK(same.next().images.to_vector() != b0);
  same.set_position({0, 0});
  CHECK(same.next().images.to_vector() == b0);
  std::set<uint64_t> seeds;
  for (uint64_t s = 0; s < 3; ++s)
    for (int64_t e = 0; e < 10; ++e)
      for (int64_t b = 0; b < 10; ++b) seeds.insert(batch_augment_seed(s, e, b));
  CHECK(seeds.size() == 300);
}
