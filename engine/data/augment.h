// Per-batch data augmentation for image classification, as in the DARTS CIFAR-10 pipeline:
// random crop with padding, horizontal flip, then cutout (DeVries & Taylor, 2017). Every
// random choice comes from a caller-supplied Rng, drawn serially in a fixed order before the
// images are touched, so the result depends only on the Rng state, never on the thread count
// or schedule. BatchIterator (batches.h) applies it with an Rng derived from (seed, epoch,
// batch), so a resumed run sees the same augmented batches as an uninterrupted one.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/tensor/random.h"
#include "engine/tensor/tensor.h"

namespace cellgraph {

struct AugmentOptions {
  // Random crop: the image is padded by this many pixels on every side and an HxW window
  // is cut out at a uniformly random offset, i.e. the image shifts by up to this many pixels
  // in each direction and padding enters from the border. 0: off. DARTS: 4.
  int crop_padding = 0;
  // Mirror the width axis with probability 1/2.
  bool flip = false;
  // Side in pixels of a square set to 0 in every channel, centred at a uniformly random pixel
  // and clipped at the borders (so it may cover less). 0: off. DARTS: 16. Applied last, to
  // normalised images, where 0 is the channel mean (as in the DARTS code).
  int cutout = 0;
  // Per-channel value of the padding the crop brings in; empty means 0. DARTS pads the raw
  // image, before normalisation, with black: on a normalised dataset pass
  // normalized_zero(stats) to reproduce that (0, the default, is the channel mean there).
  std::vector<float> pad_value;

  bool enabled() const { return crop_padding > 0 || flip || cutout > 0; }
};

// The random choices for one image.
struct AugmentDraw {
  int64_t dy = 0, dx = 0;  // crop window offset in the padded image, in [0, 2 * crop_padding]
  bool flip = false;
  int64_t cy = 0, cx = 0;  // cutout centre, in [0, H) x [0, W)
};

// Where raw pixel value 0 lands after normalize(stats): -mean[c] / std[c], per channel.
std::vector<float> normalized_zero(const ChannelStats& stats);

// Throws cellgraph::Error when crop_padding or cutout is negative, or pad_value is neither
// empty nor one value per channel.
void check_augment_options(const AugmentOptions& options, int64_t channels);

// Draws the choices for `batch` images of height x width. Per image, in batch order, and
// only for the enabled transforms: dy = below(2p + 1), dx = below(2p + 1), flip = below(2)
// == 1, cy = below(height), cx = below(width). Disabled transforms draw nothing and keep the
// defaults above.
std::vector<AugmentDraw> draw_augment(int64_t batch, int64_t height, int64_t width,
                                      const AugmentOptions& options, Rng& rng);

// Applies given choices in place to `images`, a contiguous CPU [B, C, H, W] float tensor
// with draws.size() == B: out[c][y][x] = padded[c][y + dy][x' + dx] with x' = W - 1 - x when
// flipped (x otherwise) and padded the image with crop_padding pixels of pad_value around it;
// then the cutout rows [cy - L/2, cy - L/2 + L) x the same columns, clipped, are set to 0.
// Images are processed in parallel (OpenMP) for large batches; the result is the same.
void apply_augment(Tensor& images, const AugmentOptions& options,
                   const std::vector<AugmentDraw>& draws);

// draw_augment then apply_augment: augments a batch in place. Throws as
// check_augment_options. Does nothing (and draws nothing) when !options.enabled().
void augment(Tensor& images, const AugmentOptions& options, Rng& rng);

}  // namespace cellgraph
