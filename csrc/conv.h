// Convolution family: im2col/col2im, unfold/fold and conv2d forward/backward.
// Contract: outputs and input gradients are written; parameter gradients are accumulated (+=);
// a null gradient pointer means "not needed" and skips that work. Shapes per geometry.h.
#pragma once

#include "geometry.h"

namespace fc {

// col[(c1-c0)*R*S, (p1-p0)*Q] = the windows of channels [c0, c1) of one image inp[C, H, W]
// for output rows [p0, p1); zero where a window reads padding.
template <typename T>
void im2col_cpu(T* col, const T* inp, const Conv2dGeom& g, int64_t c0, int64_t c1, int64_t p0,
                int64_t p1);
// inp[c0:c1, H, W] += the adjoint of im2col_cpu over the same channels and rows.
template <typename T>
void col2im_cpu(T* inp, const T* col, const Conv2dGeom& g, int64_t c0, int64_t c1, int64_t p0,
                int64_t p1);

// col[N, C*R*S, P*Q] = im2col of every image (torch.nn.functional.unfold).
FC_KERNEL(unfold, T* col, const T* inp, const Conv2dGeom& g);
// out[N, C, H, W] = col2im of every image, overlaps summed (torch.nn.functional.fold).
FC_KERNEL(fold, T* out, const T* col, const Conv2dGeom& g);

// out[N, K, P, Q] = conv(inp[N, C, H, W], weight[K, C/groups, R, S]) + bias[K] (bias may be null).
FC_KERNEL(conv2d_forward, T* out, const T* inp, const T* weight, const T* bias, const Conv2dGeom& g);
// dinp[N, C, H, W] written; dweight[K, C/groups, R, S] and dbias[K] accumulated.
FC_KERNEL(conv2d_backward, T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
          const T* weight, const Conv2dGeom& g);

// Per-thread im2col workspace budget; one output row is always allowed, even if larger.
constexpr int64_t kColBudgetBytes = int64_t(8) << 20;

}  // namespace fc
