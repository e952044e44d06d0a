// The op functions: each runs one op on the inputs' device and, when a gradient is
// wanted, records it for backward. Optional inputs are passed as an undefined Var{}.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/autodiff/var.h"
#include "ops/attrs.h"

namespace cellgraph::ops {

// Runs `kind` on the inputs; the generic entry point the op functions and the IR
// scheduler use. Throws Error on shape mismatches and mixed devices.
std::vector<Var> apply(OpKind kind, const Attrs& attrs, const std::vector<Var>& inputs);

Var conv2d(const Var& x, const Var& weight, const Var& bias = {}, ConvAttrs attrs = {});
Var batch_norm(const Var& x, const Var& gamma, const Var& beta, const Var& running_mean,
               const Var& running_var, BatchNormAttrs attrs = {});
Var relu(const Var& x);
Var tanh(const Var& x);
Var sigmoid(const Var& x);
Var max_pool(const Var& x, PoolAttrs attrs = {});
Var avg_pool(const Var& x, PoolAttrs attrs = {});
Var global_avg_pool(const Var& x);  // [N,C,H,W] -> [N,C,1,1]
Var linear(const Var& x, const Var& weight, const Var& bias = {});
Var matmul(const Var& a, const Var& b);
Var add(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var scale(const Var& x, const Var& s);  // s has one element
Var negate(const Var& x);
Var concat(const std::vector<Var>& xs, ConcatAttrs attrs = {});           // along channels (dim 1)
std::vector<Var> split(const Var& x, const std::vector<int64_t>& sizes);  // along channels
Var slice(const Var& x, SliceAttrs attrs);
Var zero(const Var& x, int stride = 1);
Var softmax(const Var& x);      // over dim 1 of [N,C]
Var log_softmax(const Var& x);  // over dim 1 of [N,C]
Var cross_entropy(const Var& logits, const Var& labels, float label_smoothing = 0.0f);
Var dropout(const Var& x, float p, bool training, uint64_t seed);
// Per sample n of x[N, ...]: x[n] / (1 - p) if hash_uniform(seed, n) >= p, else 0 (training);
// x itself in eval mode or at p = 0.
Var drop_path(const Var& x, float p, bool training, uint64_t seed);
Var embedding(const Var& weight, const Var& indices);
Var reshape(const Var& x, const Shape& shape);
Var flatten(const Var& x);  // [N, ...] -> [N, rest]
Var sum(const Var& x);
Var add_n(const std::vector<Var>& xs);
// sum_i coefficients[row, columns[i]] * xs[i]; coefficients is a [rows, K] matrix.
Var weighted_sum(const std::vector<Var>& xs, const Var& coefficients, int32_t row,
                 std::vector<int32_t> columns);
// sum_i coefficients[rows[i], columns[i]] * xs[i]: several edges' candidates at once.
Var weighted_sum(const std::vector<Var>& xs, const Var& coefficients, std::vector<int32_t> rows,
                 std::vector<int32_t> columns);
// The DARTS RNN gated update: s + sigmoid(c) * (fh - s), all three of one shape.
Var highway(const Var& s, const Var& c, const Var& fh);

}  // namespace cellgraph::ops
