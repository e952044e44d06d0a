// What `--tensorboard DIR` logs: every metrics.jsonl line also as TensorBoard scalars
// (viz/event_file.h), so `tensorboard --logdir DIR` shows the same numbers.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "spec/json_value.h"

namespace cellgraph::tools {

// The scalars of one metrics line, tagged KIND/KEY: every finite number but `epoch` and
// `step` ("log/train_loss", "epoch/val_acc", "test/test_acc"), those inside objects by their
// path ("epoch/nats_bench/cifar10", "epoch/skip_ratio/ratio"), and on epoch lines each
// architecture weight as "arch/GROUP/ROW/COLUMN" ("arch/normal/n0/e1<-c_k-1/sep_conv_3x3").
// Nulls (a diverged loss) are left out: TensorBoard shows a gap.
std::vector<std::pair<std::string, float>> tensorboard_scalars(const spec::JsonValue& line);

}  // namespace cellgraph::tools
