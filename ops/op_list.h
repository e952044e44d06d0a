// Every op cellgraph executes, listed once. The OpKind enum, the op names and the op
// count derive from this list; each entry has a schema (ops/<family>.cpp: arity, shape
// inference, what its backward reads) and one kernel pair per backend.
// Inputs in [] are optional (an undefined Var).
#pragma once

#define CELLGRAPH_OP_LIST(X)                                                            \
  X(conv2d)          /* x[N,C,H,W], w[O,C/g,kh,kw], [b[O]] -> y                     */  \
  X(batch_norm)      /* x, [gamma[C]], [beta[C]], running_mean[C], running_var[C]   */  \
  X(relu)            /* x -> max(x, 0)                                              */  \
  X(tanh)            /* x -> tanh(x)                                                */  \
  X(sigmoid)         /* x -> 1 / (1 + exp(-x))                                      */  \
  X(max_pool)        /* x[N,C,H,W] -> y (k x k window, stride, padding)             */  \
  X(avg_pool)        /* x[N,C,H,W] -> y (padding excluded from the average)         */  \
  X(global_avg_pool) /* x[N,C,H,W] -> y[N,C,1,1]                                    */  \
  X(linear)          /* x[N,K], w[M,K], [b[M]] -> x w^T + b : [N,M]                  */ \
  X(matmul)          /* a[M,K], b[K,N] -> [M,N]                                      */ \
  X(add)             /* a, b (same shape) -> a + b                                  */  \
  X(mul)             /* a, b (same shape) -> a * b                                  */  \
  X(scale)           /* x, s[1] -> s * x  (s: e.g. an architecture weight)          */  \
  X(negate)          /* x -> -x                                                     */  \
  X(concat)          /* x_0..x_k [N,C_i,H,W] -> [N, sum C_i, H, W]; relu: max(., 0) */  \
  X(split)           /* x[N,C,H,W] -> pieces along channels                         */  \
  X(slice)           /* x -> x[start:end:step] per dimension (pixel shift)          */  \
  X(zero)            /* x -> zeros shaped like x (H, W divided by the stride)       */  \
  X(softmax)         /* x[N,C] -> softmax over C                                    */  \
  X(log_softmax)     /* x[N,C] -> log softmax over C                                */  \
  X(cross_entropy)   /* logits[N,C], labels[N] -> mean NLL of log_softmax : [1]     */  \
  X(dropout)         /* x -> x * mask / (1 - p) in training, x in eval              */  \
  X(drop_path)       /* x[N,...] -> x * mask[n] / (1 - p) per sample in training    */  \
  X(embedding)       /* weight[V,D], indices[N] -> [N,D]                            */  \
  X(reshape)         /* x -> the same data with another shape                       */  \
  X(flatten)         /* x[N, ...] -> [N, prod(...)] (batch-independent reshape)     */  \
  X(sum)             /* x -> sum of all elements : [1]                              */  \
  X(add_n)           /* x_0..x_k (same shape) -> their sum                          */  \
  X(weighted_sum)    /* x_0..x_k, coef[R,K] -> sum_i coef[row, column_i] * x_i      */  \
  X(highway)         /* s, c, fh (same shape) -> s + sigmoid(c) * (fh - s)          */

namespace cellgraph {

enum class OpKind {
#define CELLGRAPH_OP_ENUM(name) name,
  CELLGRAPH_OP_LIST(CELLGRAPH_OP_ENUM)
#undef CELLGRAPH_OP_ENUM
};

inline constexpr int kOpCount = 0
#define CELLGRAPH_OP_COUNT(name) +1
    CELLGRAPH_OP_LIST(CELLGRAPH_OP_COUNT)
#undef CELLGRAPH_OP_COUNT
    ;

const char* op_name(OpKind kind);

}  // namespace cellgraph
