// Dense family: linear, a GEMM split across threads. Contract: outputs and input gradients are
// written; parameter gradients are accumulated (+=); a null gradient pointer means "not
// needed" and skips that work. M is the product of the input's leading dimensions; IN and OUT
// are in_features and out_features.
#pragma once

#include <cstdint>

#include "common.h"

#include "geometry.h"

namespace fc {

// linear's sizes on `dev`: M, IN and OUT are GEMM dimensions, at most max_gemm_dim(dev) (the
// CPU's BLAS takes 32-bit integers; the CUDA GEMM indexes rows, columns and the reduction in 32
// bits with a tile of headroom). The binding checks them before the output is allocated; the
// CUDA twins again.
inline void check_linear_limits(const char* op, const Shape& input, const Shape& weight,
                                int64_t M, int64_t IN, int64_t OUT, Device dev) {
  const int64_t max = max_gemm_dim(dev);
  FC_CHECK(M <= max, op, ": input ", shape_str(input), " has ", M,
           " rows (the product of its leading dimensions), more than ", limit_str(max), ", ",
           gemm_limit_why(dev));
  FC_CHECK(IN <= max && OUT <= max, op, ": weight ", shape_str(weight),
           " has in_features = ", IN, " and out_features = ", OUT, "; each must be at most ",
           limit_str(max), ", ", gemm_limit_why(dev));
}

// The op list (see FC_DECLARE in common.h). Kinds, for the binding: Linear (out, inp, weight,
// bias or null, M, IN, OUT) and LinearGrad (dinp, dweight, dbias, each null when not needed,
// then dout, inp, weight, M, IN, OUT).
#define FC_DENSE_OPS(X, T)                                                                    \
  /* out[M, OUT] = inp[M, IN] · weight[OUT, IN]^T + bias[OUT] (bias may be null). */          \
  X(linear_forward, Linear, T* out, const T* inp, const T* weight, const T* bias, int64_t M,  \
    int64_t IN, int64_t OUT)                                                                  \
  /* dinp[M, IN] written; dweight[OUT, IN] and dbias[OUT] accumulated over all M rows. */     \
  X(linear_backward, LinearGrad, T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,  \
    const T* weight, int64_t M, int64_t IN, int64_t OUT)

FC_DENSE_OPS(FC_DECLARE, T)

}  // namespace fc
