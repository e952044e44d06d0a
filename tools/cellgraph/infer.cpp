// cellgraph infer RUN_DIR_OR_SPEC --input X.npy --output Y.npy: the eval-mode logits of a
// fixed network on a float32 NCHW .npy array, written as .npy; how other runtimes (an
// exported ONNX model in onnxruntime) are compared with cellgraph.
#include <algorithm>
#include <iostream>

#include "engine/autodiff/var.h"
#include "engine/error.h"
#include "engine/io/npy.h"
#include "engine/sched/executor.h"
#include "engine/sched/plan.h"
#include "tools/cellgraph/commands.h"
#include "tools/cellgraph/run_dir.h"

namespace cellgraph::tools {

namespace {

int run_infer(const Args& args) {
  const std::string& target = args.positional(0);
  apply_threads(args);
  const Device device = selected_device(args);
  if (!args.has("input")) throw error("--input X.npy is required: the images to run");
  if (!args.has("output")) throw error("--output Y.npy is required: where to write the logits");
  const std::string input = args.get("input"), output = args.get("output");
  const int64_t batch = args.get_int("batch", 256, 1, 1 << 20);
  FixedNetwork net = load_fixed_network(args, true);
  if (net.space.network.is_language_model())
    throw error(args.positional(0),
                ": a language model; infer runs image classifiers. Score a language model "
                "with `cellgraph eval` (perplexity), or run it as `cellgraph export` writes it "
                "(inputs tokens and h0)");
  net.params.move_to(device);
  const spec::Network& shape = net.space.network;
  const Tensor images =
      io::read_npy(input, {-1, shape.in_channels, shape.in_height, shape.in_width}, "input images");
  const int64_t n = images.dim(0);
  if (n < 1) throw error(input, ": input images: the array holds no images (N = 0)");

  NoGradGuard no_grad;
  const sched::Plan plan = sched::make_plan(net.graph, sched::all_active(net.graph));
  Tensor logits;
  // In batches: eval-mode BN uses its running statistics, so the split changes nothing.
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t count = std::min(batch, n - begin);
    const Tensor out =
        sched::run(net.graph, net.params, plan,
                   Var(images.narrow(0, begin, count).contiguous().to(device)), {.training = false})
            .value();
    if (!logits.defined()) logits = Tensor::empty({n, out.dim(1)});
    logits.narrow(0, begin, count).copy_from(out);
  }
  io::write_npy(output, logits);
  std::cout << "wrote " << output << ": logits [" << n << ", " << logits.dim(1) << "] of " << target
            << " on " << input << "; " << net.weights_from << "\n";
  return 0;
}

}  // namespace

const Command& infer_command() {
  static const Command kCommand{
      .name = "infer",
      .summary = "eval-mode logits of a fixed network on a .npy array of images",
      .positionals = {"RUN_DIR_OR_SPEC"},
      .flags = {{"input", "X.npy", "float32 images [N, C, H, W] (required)", ""},
                {"output", "Y.npy", "where to write the float32 logits [N, classes] (required)",
                 ""},
                {"batch", "B", "images per forward pass", "256"},
                {"seed", "S", "seed of the initial weights (spec only)", "0"},
                {"data", "DATA", "fit a spec's input and classes to DATA (spec only)",
                 "the spec's"},
                threads_flag(),
                device_flag()},
      .details =
          "The network and weights are those `cellgraph export` writes for the same\n"
          "RUN_DIR_OR_SPEC, --seed and --data. The images are used as given: a run's\n"
          "network expects them normalised as in training (config.json \"normalization\").",
      .run = run_infer};
  return kCommand;
}

}  // namespace cellgraph::tools
