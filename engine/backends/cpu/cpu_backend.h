// The CPU backend: 64-byte aligned host memory, the oneDNN / hand-written kernels
// (cpu_backend.cpp) and the vector operations (vector_ops.cpp).
#pragma once

#include "engine/backends/backend.h"

namespace cellgraph::cpu {

class CpuBackend final : public Backend {
 public:
  CpuBackend();

  Device device() const override { return Device::cpu; }
  void fill(float* dst, int64_t count, float value) override;
  void copy_between(float* dst, Device dst_device, const float* src, Device src_device,
                    size_t count) override;

  void sgd_step(const Tensor& w, const Tensor& grad, const Tensor& buffer,
                const SgdStep& step) override;
  void adam_step(const Tensor& weights, const Tensor& grad, const Tensor& first_moment,
                 const Tensor& second_moment, const AdamStep& step) override;
  void sgd_lookahead(const Tensor& w, const Tensor& grad, const Tensor& buffer, float lr,
                     float momentum, float weight_decay) override;
  double sum_squares(const Tensor& x) override;
  double sum_squares_sequential(const Tensor& x, double start) override;
  bool all_finite(const Tensor& x) override;
  void scale(const Tensor& x, float s) override;
  void axpy(float a, const Tensor& x, const Tensor& y) override;
  void subtract_difference_quotient(const Tensor& y, float a, const Tensor& u, const Tensor& v,
                                    float c) override;
  void clamp(const Tensor& x, float lo, float hi) override;
  double dot(const Tensor& x, const Tensor& y) override;
  double batch_norm_dot(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                        const Tensor& running_mean, const Tensor& running_var, float momentum,
                        float eps, const Tensor& g) override;
};

}  // namespace cellgraph::cpu
