// Activation family: elementwise activations and softmax/log_softmax, forward and backward.
// Contract: outputs and input gradients are written, never accumulated (no parameters here).
// Elementwise kernels see any array as n contiguous elements, and out may alias inp (inplace).
// Softmax views the array as [outer, D, inner] and normalises over D. Formulas, NaN/Inf
// behaviour and kink conventions are PyTorch's (aten/src/ATen/native/cpu/Activation.cpp).
#pragma once

#include <cstdint>

#include "common.h"

namespace fc {

// The op list (see FC_DECLARE in common.h). Kinds, for the binding: Elementwise (out, inp, n,
// then the op's scalars; out may alias inp), ElementwiseGrad (dinp, dout, inp, n, scalars),
// ElementwiseGradOut (dinp, dout, and the forward's output or, when that is null, its input),
// Softmax (out, inp as [outer, D, inner]) and SoftmaxGrad (dinp, dout, the forward's output).
#define FC_ACT_OPS(X, T)                                                                   \
  /* out[n] = max(inp, 0), NaN kept. */                                                    \
  X(relu_forward, Elementwise, T* out, const T* inp, int64_t n)                            \
  /* dinp[n] = dout where inp > 0 (and where inp is NaN), else 0. */                       \
  X(relu_backward, ElementwiseGrad, T* dinp, const T* dout, const T* inp, int64_t n)       \
  /* out[n] = inp > 0 ? inp : inp * negative_slope. */                                     \
  X(leaky_relu_forward, Elementwise, T* out, const T* inp, int64_t n, double negative_slope) \
  /* dinp[n] = inp > 0 ? dout : dout * negative_slope. */                                  \
  X(leaky_relu_backward, ElementwiseGrad, T* dinp, const T* dout, const T* inp, int64_t n,  \
    double negative_slope)                                                                 \
  /* out[n] = inp > 0 ? inp : expm1(inp) * alpha. */                                       \
  X(elu_forward, Elementwise, T* out, const T* inp, int64_t n, double alpha)               \
  /* dinp[n] = inp > 0 ? dout : dout * alpha * exp(inp). */                                \
  X(elu_backward, ElementwiseGrad, T* dinp, const T* dout, const T* inp, int64_t n,         \
    double alpha)                                                                          \
  /* out[n] = 1 / (1 + exp(-inp)). */                                                      \
  X(sigmoid_forward, Elementwise, T* out, const T* inp, int64_t n)                         \
  /* dinp[n] = dout * (1 - y) * y with y = out, or y = sigmoid(inp) when out is null. */   \
  X(sigmoid_backward, ElementwiseGradOut, T* dinp, const T* dout, const T* out,             \
    const T* inp, int64_t n)                                                               \
  /* out[n] = tanh(inp). */                                                                \
  X(tanh_forward, Elementwise, T* out, const T* inp, int64_t n)                            \
  /* dinp[n] = dout * (1 - y * y) with y = out, or y = tanh(inp) when out is null. */      \
  X(tanh_backward, ElementwiseGradOut, T* dinp, const T* dout, const T* out, const T* inp,  \
    int64_t n)                                                                             \
  /* out[n] = inp * beta > threshold ? inp : log1p(exp(inp * beta)) / beta. */             \
  X(softplus_forward, Elementwise, T* out, const T* inp, int64_t n, double beta,            \
    double threshold)                                                                      \
  /* dinp[n] = inp * beta > threshold ? dout : dout * z / (z + 1), z = exp(inp * beta). */ \
  X(softplus_backward, ElementwiseGrad, T* dinp, const T* dout, const T* inp, int64_t n,    \
    double beta, double threshold)                                                         \
  /* out[outer, D, inner] = exp(inp - max) / sum(exp(inp - max)) over D. */                \
  X(softmax_forward, Softmax, T* out, const T* inp, int64_t outer, int64_t D, int64_t inner) \
  /* dinp[outer, D, inner] = out * (dout - sum(dout * out)) over D; out is softmax's. */   \
  X(softmax_backward, SoftmaxGrad, T* dinp, const T* dout, const T* out, int64_t outer,     \
    int64_t D, int64_t inner)                                                              \
  /* out[outer, D, inner] = inp - max - log(sum(exp(inp - max))) over D. */                \
  X(log_softmax_forward, Softmax, T* out, const T* inp, int64_t outer, int64_t D,           \
    int64_t inner)                                                                         \
  /* dinp[outer, D, inner] = dout - exp(out) * sum(dout) over D; out is log_softmax's. */  \
  X(log_softmax_backward, SoftmaxGrad, T* dinp, const T* dout, const T* out, int64_t outer, \
    int64_t D, int64_t inner)

FC_ACT_OPS(FC_DECLARE, T)

}  // namespace fc
