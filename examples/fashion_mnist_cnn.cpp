// Trains the small example CNN on Fashion-MNIST and prints its test accuracy: the
// README's main job until the search runner lands.
//   fashion_mnist_cnn [--train N] [--test N] [--epochs E] [--batch B] [--lr LR]
//                     [--seed S] [--threads T] [--data DIR]
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "engine/error.h"
#include "engine/threads.h"
#include "examples/small_cnn.h"

using namespace cellgraph;

namespace {
int64_t parse_int(const std::string& flag, const char* text) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v < 0)
    throw error(flag, ": expected a non-negative integer, got '", text, "'");
  return v;
}

void usage() {
  std::cout << "usage: fashion_mnist_cnn [--train N] [--test N] [--epochs E] [--batch B]\n"
               "                         [--lr LR] [--seed S] [--threads T] [--data DIR]\n";
}
}  // namespace

int main(int argc, char** argv) {
  try {
    examples::SmallCnnOptions options;
    options.train_images = 10000;
    options.test_images = 10000;
    options.epochs = 3;
    int threads = 0;
    for (int i = 1; i < argc; ++i) {
      const std::string flag = argv[i];
      if (flag == "--help" || flag == "-h") {
        usage();
        return 0;
      }
      if (i + 1 >= argc) throw error(flag, ": missing value (see --help)");
      const char* value = argv[++i];
      if (flag == "--train")
        options.train_images = parse_int(flag, value);
      else if (flag == "--test")
        options.test_images = parse_int(flag, value);
      else if (flag == "--epochs")
        options.epochs = int(parse_int(flag, value));
      else if (flag == "--batch")
        options.batch = int(parse_int(flag, value));
      else if (flag == "--seed")
        options.seed = uint64_t(parse_int(flag, value));
      else if (flag == "--threads")
        threads = int(parse_int(flag, value));
      else if (flag == "--data")
        options.data_dir = value;
      else if (flag == "--lr")
        options.lr = std::strtof(value, nullptr);
      else
        throw error("unknown option '", flag, "' (see --help)");
    }
    if (options.batch < 1 || options.epochs < 1 || options.train_images < 1 ||
        options.test_images < 1 || !(options.lr > 0))
      throw error("--batch, --epochs, --train, --test and --lr must be positive");
    set_num_threads(threads);
    std::cout << "cellgraph: small CNN on Fashion-MNIST (" << options.train_images
              << " training images, " << options.test_images << " test images, " << options.epochs
              << " epochs, " << num_threads() << " threads)\n";
    const auto result = examples::train_small_cnn(options, &std::cout);
    std::printf("parameters: %lld\ntest accuracy: %.2f%% (%.1f s)\n",
                static_cast<long long>(result.parameters), 100.0 * result.test_accuracy,
                result.seconds);
    return 0;
  } catch (const Error& e) {
    std::cerr << "fashion_mnist_cnn: error: " << e.what() << "\n";
    return 1;
  }
}
