// The small example CNN of the README's main job and of the end-to-end test:
// conv3x3(1->16)-BN-ReLU, maxpool 2, conv3x3(16->32)-BN-ReLU, maxpool 2, linear(32*7*7 -> 10),
// trained with SGD (momentum 0.9, weight decay 5e-4, cosine schedule) on a Fashion-MNIST
// subset. Written directly against the op functions: it exercises the engine without the
// spec compiler.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

namespace cellgraph::examples {

struct SmallCnnOptions {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  int64_t train_images = 2000;  // the first N of the training split
  int64_t test_images = 1000;   // the first N of the test split
  int epochs = 10;
  int batch = 64;
  float lr = 0.05f;
  uint64_t seed = 1;
};

struct SmallCnnResult {
  double test_accuracy = 0;     // fraction in [0, 1]
  double final_train_loss = 0;  // mean over the last epoch
  int64_t parameters = 0;
  double seconds = 0;  // wall time of training and evaluation
};

// Trains and evaluates; progress lines go to `log` when non-null. Throws Error on bad data.
SmallCnnResult train_small_cnn(const SmallCnnOptions& options, std::ostream* log);

}  // namespace cellgraph::examples
