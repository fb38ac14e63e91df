// Convolution family: unfold/fold (im2col/col2im over a batch), conv2d and conv_transpose2d,
// forward and backward. conv_transpose2d is conv2d's data gradient: its kernels run conv2d's
// on the equivalent conv2d (conv_transpose2d_geom), forward and data gradient swapped.
// Contract: outputs and input gradients are written; parameter gradients are accumulated (+=);
// a null gradient pointer means "not needed" and skips that work. Shapes per geometry.h.
#pragma once

#include <array>

#include "geometry.h"

namespace fc {

// The op list (see FC_DECLARE in common.h). Kinds, for the binding: Window (out, inp,
// geometry: unfold and fold, one array in and one out), Conv (out, inp, weight, bias or null,
// geometry) and ConvGrad (dinp, dweight, dbias, each null when not needed, then dout, inp,
// weight, geometry).
#define FC_CONV_OPS(X, T)                                                                     \
  /* col[N, C*R*S, P*Q] = im2col of every image (torch.nn.functional.unfold). */              \
  X(unfold, Window, T* col, const T* inp, const Conv2dGeom& g)                                \
  /* out[N, C, H, W] = col2im of every image, overlaps summed (torch.nn.functional.fold). */  \
  X(fold, Window, T* out, const T* col, const Conv2dGeom& g)                                  \
  /* out[N, K, P, Q] = conv(inp[N, C, H, W], weight[K, C/groups, R, S]) + bias[K] (bias may  \
     be null). */                                                                             \
  X(conv2d_forward, Conv, T* out, const T* inp, const T* weight, const T* bias,               \
    const Conv2dGeom& g)                                                                      \
  /* dinp[N, C, H, W] written; dweight[K, C/groups, R, S] and dbias[K] accumulated. */        \
  X(conv2d_backward, ConvGrad, T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,    \
    const T* weight, const Conv2dGeom& g)                                                     \
  /* out[N, C_out, H_out, W_out] = conv_transpose(inp[N, C_in, H_in, W_in],                   \
     weight[C_in, C_out/groups, R, S]) + bias[C_out] (bias may be null); g from               \
     conv_transpose2d_geom. */                                                                \
  X(conv_transpose2d_forward, Conv, T* out, const T* inp, const T* weight, const T* bias,     \
    const Conv2dGeom& g)                                                                      \
  /* dinp[N, C_in, H_in, W_in] written; dweight[C_in, C_out/groups, R, S] and dbias[C_out]    \
     accumulated; dout[N, C_out, H_out, W_out]. */                                            \
  X(conv_transpose2d_backward, ConvGrad, T* dinp, T* dweight, T* dbias, const T* dout,        \
    const T* inp, const T* weight, const Conv2dGeom& g)

FC_CONV_OPS(FC_DECLARE, T)

// The algorithms conv2d's CPU twin runs on g in dtype T for its forward, input gradient and
// weight gradient (fastconv.functional.conv2d_algorithm): "direct" (cpu/conv_direct.h),
// "batched_gemm" (small planes, the batch's images side by side), "gemm" (a 1x1 layer read in
// place) or "im2col_gemm". The kernels take these same decisions.
template <typename T>
std::array<const char*, 3> conv2d_algorithm_cpu(const Conv2dGeom& g);

// Per-thread im2col workspace budget; one output row is always allowed, even if larger.
constexpr int64_t kColBudgetBytes = int64_t(8) << 20;

}  // namespace fc
