#include "engine/data/augment.h"

#include <algorithm>
#include <cstring>

#include "engine/error.h"

namespace cellgraph {

namespace {

constexpr int64_t kParallelThreshold = 1 << 16;

}  // namespace

std::vector<float> normalized_zero(const ChannelStats& stats) {
  CG_ASSERT(stats.mean.size() == stats.std.size(), "channel stats of ", stats.mean.size(),
            " means and ", stats.std.size(), " stds");
  std::vector<float> out(stats.mean.size());
  for (size_t c = 0; c < out.size(); ++c) out[c] = -stats.mean[c] / stats.std[c];
  return out;
}

void check_augment_options(const AugmentOptions& options, int64_t channels) {
  if (options.crop_padding < 0)
    throw error("augmentation: crop padding ", options.crop_padding, "; expected >= 0 pixels");
  if (options.cutout < 0)
    throw error("augmentation: cutout side ", options.cutout, "; expected >= 0 pixels");
  if (!options.pad_value.empty() && static_cast<int64_t>(options.pad_value.size()) != channels)
    throw error("augmentation: ", options.pad_value.size(), " padding values for images of ",
                channels, " channels; expected one per channel (or none for 0)");
}

std::vector<AugmentDraw> draw_augment(int64_t batch, int64_t height, int64_t width,
                                      const AugmentOptions& options, Rng& rng) {
  CG_ASSERT(batch >= 0 && height > 0 && width > 0, "augmenting ", batch, " images of ", height, "x",
            width);
  std::vector<AugmentDraw> draws(static_cast<size_t>(batch));
  if (!options.enabled()) return draws;
  const uint64_t shifts = 2 * static_cast<uint64_t>(options.crop_padding) + 1;
  for (AugmentDraw& d : draws) {
    if (options.crop_padding > 0) {
      d.dy = static_cast<int64_t>(rng.below(shifts));
      d.dx = static_cast<int64_t>(rng.below(shifts));
    }
    if (options.flip) d.flip = rng.below(2) == 1;
    if (options.cutout > 0) {
      d.cy = static_cast<int64_t>(rng.below(static_cast<uint64_t>(height)));
      d.cx = static_cast<int64_t>(rng.below(static_cast<uint64_t>(width)));
    }
  }
  return draws;
}

void apply_augment(Tensor& images, const AugmentOptions& options,
                   const std::vector<AugmentDraw>& draws) {
  CG_ASSERT(images.rank() == 4 && images.device() == Device::cpu && images.is_contiguous(),
            "augmenting images of shape ", images.shape().str(), "; expected contiguous CPU NCHW");
  const int64_t batch = images.dim(0), channels = images.dim(1);
  const int64_t height = images.dim(2), width = images.dim(3);
  CG_ASSERT(static_cast<int64_t>(draws.size()) == batch, draws.size(), " draws for ", batch,
            " images");
  check_augment_options(options, channels);
  if (!options.enabled() || batch == 0) return;
  const int64_t pad = options.crop_padding, side = options.cutout;
  const int64_t plane = height * width, item = channels * plane;
  const bool moves = pad > 0 || options.flip;
  float* data = images.data();
#pragma omp parallel if (images.numel() > kParallelThreshold)
  {
    std::vector<float> source(moves ? static_cast<size_t>(item) : 0);
#pragma omp for
    for (int64_t i = 0; i < batch; ++i) {
      const AugmentDraw& d = draws[static_cast<size_t>(i)];
      float* image = data + i * item;
      if (moves) {
        std::memcpy(source.data(), image, static_cast<size_t>(item) * sizeof(float));
        for (int64_t c = 0; c < channels; ++c) {
          const float fill =
              options.pad_value.empty() ? 0.0f : options.pad_value[static_cast<size_t>(c)];
          const float* in = source.data() + c * plane;
          float* out = image + c * plane;
          for (int64_t y = 0; y < height; ++y) {
            const int64_t sy = y + d.dy - pad;
            const bool row_in = sy >= 0 && sy < height;
            for (int64_t x = 0; x < width; ++x) {
              const int64_t sx = (d.flip ? width - 1 - x : x) + d.dx - pad;
              out[y * width + x] = row_in && sx >= 0 && sx < width ? in[sy * width + sx] : fill;
            }
          }
        }
      }
      if (side > 0) {
        const int64_t y0 = std::max<int64_t>(0, d.cy - side / 2);
        const int64_t y1 = std::min(height, d.cy - side / 2 + side);
        const int64_t x0 = std::max<int64_t>(0, d.cx - side / 2);
        const int64_t x1 = std::min(width, d.cx - side / 2 + side);
        for (int64_t c = 0; c < channels; ++c)
          for (int64_t y = y0; y < y1; ++y)
            std::fill(image + c * plane + y * width + x0, image + c * plane + y * width + x1, 0.0f);
      }
    }
  }
}

void augment(Tensor& images, const AugmentOptions& options, Rng& rng) {
  CG_ASSERT(images.rank() == 4, "augmenting images of shape ", images.shape().str());
  check_augment_options(options, images.dim(1));
  if (!options.enabled()) return;
  apply_augment(images, options,
                draw_augment(images.dim(0), images.dim(2), images.dim(3), options, rng));
}

}  // namespace cellgraph
