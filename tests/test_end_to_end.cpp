// End to end: the small example CNN learns Fashion-MNIST through the whole engine
// (data reader, ops, oneDNN kernels, autodiff, SGD, cosine schedule, clipping).
#include <doctest/doctest.h>

#include "examples/small_cnn.h"

using namespace cellgraph;

TEST_CASE("end to end: the small CNN reaches 80% on 1,000 held-out Fashion-MNIST images") {
  examples::SmallCnnOptions options;
  options.data_dir = CELLGRAPH_FASHION_MNIST_DIR;
  options.train_images = 2000;  // the first 2,000 training images
  options.test_images = 1000;   // the first 1,000 test images
  options.epochs = 10;
  options.seed = 1;
  const examples::SmallCnnResult result = examples::train_small_cnn(options, nullptr);
  INFO("test accuracy " << result.test_accuracy << ", final train loss "
                        << result.final_train_loss);
  CHECK(result.parameters == 20538);
  CHECK(result.test_accuracy >= 0.80);
  CHECK(result.final_train_loss < 0.5);
}
