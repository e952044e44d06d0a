// NumPy .npy files of float32 arrays: how `cellgraph infer` reads inputs and writes logits,
// and how tests hand arrays to other runtimes (onnxruntime).
//
// Only C-order little-endian float32 ('<f4') is read or written, in format versions 1.0
// (u16 header length) and 2.0 (u32 header length). The header is the Python dict literal
// NumPy writes: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }, padded with
// spaces to a multiple of 64 bytes and ending in '\n'.
//
// Every problem is a cellgraph::Error "PATH: what is wrong; expected ...": not a .npy file,
// an unsupported version, a malformed header, another dtype, Fortran order, a file
// shorter or longer than its shape says, or a shape other than the one expected.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor/tensor.h"

namespace cellgraph::io {

// Reads the array at `path` into a contiguous CPU tensor. A 0-d array becomes shape [1].
Tensor read_npy(const std::string& path);

// The same, and the shape must match `expected`, where an extent of -1 accepts any size
// (e.g. {-1, 3, 32, 32} for a batch of images; messages show it as N). `what` names the
// array: "PATH: input images: got shape [2, 3], expected [N, 3, 32, 32]".
Tensor read_npy(const std::string& path, const std::vector<int64_t>& expected,
                const std::string& what = "array");

// Writes `tensor` (any device, any strides) as a '<f4' C-order v1.0 file, atomically
// (io::write_file_atomic).
void write_npy(const std::string& path, const Tensor& tensor);

// The bytes of a .npy file holding `values` with `shape`; write_npy writes exactly these.
std::string encode_npy(const Shape& shape, const std::vector<float>& values);

}  // namespace cellgraph::io
