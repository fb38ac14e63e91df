// Pooling family: max/min (with argmax), average, power-average, adaptive and mixed pooling.
// Contract: outputs and input gradients are written (every element); a pooled value is
// accumulated in double. Argmax indices are flat h*W + w within each input plane, as PyTorch.
// Max and min follow PyTorch's CPU rule: a NaN wins (the last NaN in scan order, as each NaN
// replaces the current one), otherwise the first extreme in scan order.
// Shapes per geometry.h (Pool2dGeom); 3-D inputs are pooled as N = 1.
#pragma once

#include "geometry.h"

namespace fc {

// The op list (see FC_DECLARE in common.h). Kinds, for the binding (bind/pool.cpp: Python
// passes its `empty`, the arrays, the window arguments and the scalars; the binding makes g):
// ArgPool (out, idx, inp, g), ArgPoolGrad (dinp, dout, idx or null, inp, g, flag), Pool (out,
// inp, g, scalars), PoolGrad (dinp, dout, inp, g, scalars) and LinearPoolGrad (dinp, dout, g,
// scalars: the adjoint of a linear pooling needs no input); Adaptive* take output_size for g.
// Window bounds are pool_window / avg_pool_span in geometry.h, shared by both twins.
#define FC_POOL_OPS(X, T)                                                                     \
  /* out[N, C, P, Q] = window max of inp[N, C, H, W]; idx[N, C, P, Q] = its position in the  \
     plane, or null where the indices are not wanted (inference). */                         \
  X(max_pool2d_forward, ArgPool, T* out, int64_t* idx, const T* inp, const Pool2dGeom& g)     \
  /* out, idx as max_pool2d_forward with the window min. */                                  \
  X(min_pool2d_forward, ArgPool, T* out, int64_t* idx, const T* inp, const Pool2dGeom& g)     \
  /* dinp[N, C, H, W] = dout[N, C, P, Q] added at idx (overlapping windows add); when idx is \
     null the argmax (argmin if is_min) is recomputed from inp. Throws on an index outside    \
     the plane, except for windows that hold no pixel (their gradient is dropped, see         \
     pool.cpp). The CUDA twin cannot throw without a device-to-host synchronisation: it drops \
     the gradient of every index outside the plane instead. */                               \
  X(max_pool2d_backward, ArgPoolGrad, T* dinp, const T* dout, const int64_t* idx, const T* inp, \
    const Pool2dGeom& g, bool is_min)                                                         \
  /* out[N, C, P, Q] = window sum of inp / divisor (divisor_override if nonzero, else the     \
     window size, counting padding when count_include_pad), as                                \
     torch.nn.functional.avg_pool2d. */                                                       \
  X(avg_pool2d_forward, Pool, T* out, const T* inp, const Pool2dGeom& g, bool count_include_pad, \
    int64_t divisor_override)                                                                 \
  /* dinp[N, C, H, W] = adjoint of avg_pool2d_forward applied to dout[N, C, P, Q]. */         \
  X(avg_pool2d_backward, LinearPoolGrad, T* dinp, const T* dout, const Pool2dGeom& g,         \
    bool count_include_pad, int64_t divisor_override)                                         \
  /* out[N, C, P, Q] = (avg_pool2d(inp^p) * R*S)^(1/p), PyTorch's lp_pool2d (no padding). */  \
  X(lp_pool2d_forward, Pool, T* out, const T* inp, const Pool2dGeom& g, double p)             \
  /* dinp[N, C, H, W] = gradient of lp_pool2d_forward for dout[N, C, P, Q]; zero through     \
     windows whose power sum is zero. */                                                      \
  X(lp_pool2d_backward, PoolGrad, T* dinp, const T* dout, const T* inp, const Pool2dGeom& g,  \
    double p)                                                                                 \
  /* out[N, C, P, Q] = mean of each adaptive window of inp[N, C, H, W] (g.adaptive). */       \
  X(adaptive_avg_pool2d_forward, AdaptivePool, T* out, const T* inp, const Pool2dGeom& g)     \
  /* dinp[N, C, H, W] = adjoint of adaptive_avg_pool2d_forward applied to dout[N, C, P, Q].  \
     Adaptive max pooling is max_pool2d_forward / max_pool2d_backward on an adaptive g. */    \
  X(adaptive_avg_pool2d_backward, AdaptiveLinearPoolGrad, T* dinp, const T* dout,            \
    const Pool2dGeom& g)                                                                      \
  /* out[N, C, P, Q] = alpha * window max + (1 - alpha) * window mean (padding counted). */   \
  X(mixed_pool2d_forward, Pool, T* out, const T* inp, const Pool2dGeom& g, double alpha)      \
  /* dinp[N, C, H, W] = alpha * max-pool gradient + (1 - alpha) * avg-pool gradient of dout. */ \
  X(mixed_pool2d_backward, PoolGrad, T* dinp, const T* dout, const T* inp, const Pool2dGeom& g, \
    double alpha)

FC_POOL_OPS(FC_DECLARE, T)

}  // namespace fc
