// Activation family: elementwise activations and softmax/log_softmax, forward and backward.
// Contract: outputs and input gradients are written, never accumulated (no parameters here).
// Elementwise kernels see any array as n contiguous elements, and out may alias inp (inplace).
// Softmax views the array as [outer, D, inner] and normalises over D. Formulas, NaN/Inf
// behaviour and kink conventions are PyTorch's (aten/src/ATen/native/cpu/Activation.cpp).
#pragma once

#include <cstdint>

#include "common.h"

namespace fc {

// out[n] = max(inp, 0), NaN kept.
FC_KERNEL(relu_forward, T* out, const T* inp, int64_t n);
// dinp[n] = dout where inp > 0 (and where inp is NaN), else 0.
FC_KERNEL(relu_backward, T* dinp, const T* dout, const T* inp, int64_t n);

// out[n] = inp > 0 ? inp : inp * negative_slope.
FC_KERNEL(leaky_relu_forward, T* out, const T* inp, int64_t n, double negative_slope);
// dinp[n] = inp > 0 ? dout : dout * negative_slope.
FC_KERNEL(leaky_relu_backward, T* dinp, const T* dout, const T* inp, int64_t n,
          double negative_slope);

// out[n] = inp > 0 ? inp : expm1(inp) * alpha.
FC_KERNEL(elu_forward, T* out, const T* inp, int64_t n, double alpha);
// dinp[n] = inp > 0 ? dout : dout * alpha * exp(inp).
FC_KERNEL(elu_backward, T* dinp, const T* dout, const T* inp, int64_t n, double alpha);

// out[n] = 1 / (1 + exp(-inp)).
FC_KERNEL(sigmoid_forward, T* out, const T* inp, int64_t n);
// dinp[n] = dout * (1 - y) * y with y = out, or y = sigmoid(inp) recomputed when out is null.
FC_KERNEL(sigmoid_backward, T* dinp, const T* dout, const T* out, const T* inp, int64_t n);

// out[n] = tanh(inp).
FC_KERNEL(tanh_forward, T* out, const T* inp, int64_t n);
// dinp[n] = dout * (1 - y * y) with y = out, or y = tanh(inp) recomputed when out is null.
FC_KERNEL(tanh_backward, T* dinp, const T* dout, const T* out, const T* inp, int64_t n);

// out[n] = inp * beta > threshold ? inp : log1p(exp(inp * beta)) / beta.
FC_KERNEL(softplus_forward, T* out, const T* inp, int64_t n, double beta, double threshold);
// dinp[n] = inp * beta > threshold ? dout : dout * z / (z + 1), z = exp(inp * beta).
FC_KERNEL(softplus_backward, T* dinp, const T* dout, const T* inp, int64_t n, double beta,
          double threshold);

// out[outer, D, inner] = exp(inp - max) / sum(exp(inp - max)) over D.
FC_KERNEL(softmax_forward, T* out, const T* inp, int64_t outer, int64_t D, int64_t inner);
// dinp[outer, D, inner] = out * (dout - sum(dout * out)) over D; out is softmax's output.
FC_KERNEL(softmax_backward, T* dinp, const T* dout, const T* out, int64_t outer, int64_t D,
          int64_t inner);

// out[outer, D, inner] = inp - max - log(sum(exp(inp - max))) over D.
FC_KERNEL(log_softmax_forward, T* out, const T* inp, int64_t outer, int64_t D, int64_t inner);
// dinp[outer, D, inner] = dout - exp(out) * sum(dout) over D; out is log_softmax's output.
FC_KERNEL(log_softmax_backward, T* dinp, const T* dout, const T* out, int64_t outer, int64_t D,
          int64_t inner);

}  // namespace fc
