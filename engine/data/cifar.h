// CIFAR-10 and CIFAR-100, "binary version" (the folders cifar-10-batches-bin and
// cifar-100-binary of the official archives, extracted). Every file is a sequence of
// fixed-size records with no header: the label byte(s), then 3072 pixel bytes, the 1024
// red, 1024 green and 1024 blue values of a 32x32 image, each plane row-major. That is
// exactly the [3, 32, 32] layout of a Dataset item, so records load without reordering.
#pragma once

#include <string>

#include "engine/data/dataset.h"

namespace cellgraph {

// Loads CIFAR-10 from `dir`: data_batch_1.bin ... data_batch_5.bin (train, 50000 images in
// file order) or test_batch.bin (test, 10000), records of 1 label byte + 3072 pixel bytes,
// 10 classes. Images are [N, 3, 32, 32] float32 in [0, 1]. Throws cellgraph::Error naming
// the file when it cannot be opened ("...: cannot open: No such file or directory; expected
// the CIFAR-10 binary version (...)"), holds no records or a partial one ("...: 30730001
// bytes is not a whole number of 3073-byte records"), or has a label >= 10 (with the record
// index and the value). A missing folder is named as such.
Dataset load_cifar10(const std::string& dir, Split split);

// Loads CIFAR-100 from `dir`: train.bin (50000 images) or test.bin (10000), records of a
// coarse label byte (20 superclasses), a fine label byte (100 classes) and 3072 pixel bytes.
// The dataset's labels are the fine ones (num_classes 100); a coarse label >= 20 or a fine
// label >= 100 is an error naming the file, record and value. Otherwise as load_cifar10.
Dataset load_cifar100(const std::string& dir, Split split);

}  // namespace cellgraph
