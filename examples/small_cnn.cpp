#include "examples/small_cnn.h"

#include <chrono>
#include <cstdio>
#include <ostream>

#include "algorithms/step_context.h"
#include "engine/autodiff/var.h"
#include "engine/data/batches.h"
#include "engine/data/dataset.h"
#include "engine/optim/clip.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"

namespace cellgraph::examples {

namespace {
// conv (no bias: BN follows) -> BN (affine) -> ReLU, with its BN running statistics.
struct ConvBnRelu {
  Var weight, gamma, beta, running_mean, running_var;

  ConvBnRelu(int64_t in, int64_t out, Rng& rng, const std::string& name)
      : weight(kaiming_uniform({out, in, 3, 3}, rng), true, name + ".conv"),
        gamma(Tensor::full({out}, 1.0f), true, name + ".bn.gamma"),
        beta(Tensor::zeros({out}), true, name + ".bn.beta"),
        running_mean(Tensor::zeros({out})),
        running_var(Tensor::full({out}, 1.0f)) {}

  Var operator()(const Var& x, bool training) const {
    const Var h = ops::conv2d(x, weight, {}, ConvAttrs{.padding = 1});
    return ops::relu(ops::batch_norm(h, gamma, beta, running_mean, running_var,
                                     BatchNormAttrs{.training = training}));
  }
};

struct SmallCnn {
  ConvBnRelu block1, block2;
  Var fc_weight, fc_bias;

  explicit SmallCnn(Rng& rng)
      : block1(1, 16, rng, "block1"),
        block2(16, 32, rng, "block2"),
        fc_weight(kaiming_uniform({10, 32 * 7 * 7}, rng), true, "fc.weight"),
        fc_bias(uniform_tensor({10}, -1.0f / 39.6f, 1.0f / 39.6f, rng), true, "fc.bias") {}

  std::vector<Var> parameters() const {
    return {block1.weight, block1.gamma, block1.beta, block2.weight,
            block2.gamma,  block2.beta,  fc_weight,   fc_bias};
  }

  Var operator()(const Var& images, bool training) const {
    const PoolAttrs pool{.kernel = 2, .stride = 2, .padding = 0};
    Var h = ops::max_pool(block1(images, training), pool);
    h = ops::max_pool(block2(h, training), pool);
    h = ops::reshape(h, {h.shape()[0], 32 * 7 * 7});
    return ops::linear(h, fc_weight, fc_bias);
  }
};
}  // namespace

SmallCnnResult train_small_cnn(const SmallCnnOptions& options, std::ostream* log) {
  const auto start = std::chrono::steady_clock::now();
  Dataset train =
      subset(load_fashion_mnist(options.data_dir, Split::train), 0, options.train_images);
  Dataset test = subset(load_fashion_mnist(options.data_dir, Split::test), 0, options.test_images);
  const ChannelStats stats = channel_stats(train);
  normalize(train, stats);
  normalize(test, stats);

  Rng rng(options.seed);
  SmallCnn model(rng);
  SmallCnnResult result;
  for (const Var& p : model.parameters()) result.parameters += p.value().numel();

  Sgd sgd(model.parameters(),
          SgdOptions{.lr = options.lr, .momentum = 0.9f, .weight_decay = 5e-4f, .nesterov = false});
  BatchIterator batches(train, options.batch, /*seed=*/options.seed, /*drop_last=*/false);
  const int64_t steps_per_epoch = batches.batches_per_epoch();
  const CosineSchedule schedule(options.lr, 0.0f, steps_per_epoch * options.epochs);
  int64_t step = 0;
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    for (int64_t b = 0; b < steps_per_epoch; ++b) {
      const Batch batch = batches.next();
      sgd.set_lr(schedule.lr_at(step++));
      sgd.zero_grad();
      const Var logits = model(Var(batch.images), /*training=*/true);
      const Var loss = ops::cross_entropy(logits, Var(batch.labels));
      loss.backward();
      clip_grad_norm(model.parameters(), 5.0f);
      sgd.step();
      loss_sum += double(loss.value().item()) * double(batch.labels.numel());
      correct += algorithms::count_correct(logits.value(), batch.labels);
      seen += batch.labels.numel();
    }
    result.final_train_loss = loss_sum / double(seen);
    if (log)
      *log << "epoch " << epoch + 1 << "/" << options.epochs << "  train loss "
           << result.final_train_loss << "  train accuracy " << double(correct) / double(seen)
           << std::endl;
  }

  NoGradGuard no_grad;
  BatchIterator test_batches(test, 500, /*seed=*/0, /*drop_last=*/false, /*shuffle=*/false);
  int64_t correct = 0;
  for (int64_t b = 0; b < test_batches.batches_per_epoch(); ++b) {
    const Batch batch = test_batches.next();
    correct += algorithms::count_correct(model(Var(batch.images), false).value(), batch.labels);
  }
  result.test_accuracy = double(correct) / double(test.labels.size());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace cellgraph::examples
