// Normalisation family: batch_norm and local_response_norm, forward and backward.
// Layout: input (N, C, S) with S the product of the spatial sizes (1 for 2-D input). Contract:
// outputs and input gradients are written; parameter gradients are accumulated (+=); a null
// pointer means "not given / not needed". Per-channel statistics of float32 are summed in
// double in a fixed order, so results depend neither on timing nor on the thread count.
#pragma once

#include <cmath>
#include <cstdint>

#include "common.h"

namespace fc {

// The op list (see FC_DECLARE in common.h). Kinds, for the binding: BatchNorm (out, the saved
// and running per-channel statistics, inp, then weight and bias, sizes and flags),
// BatchNormGrad (dinp and the accumulated dweight, dbias, then dout, inp, weight and the saved
// statistics), ChannelWindow (out, inp, sizes and the window's scalars) and ChannelWindowGrad
// (dinp, dout, inp, sizes and scalars).
#define FC_NORM_OPS(X, T)                                                                       \
  /* out[N, C, S] = (inp - mean) * invstd * weight + bias per channel; weight/bias may be null \
     (1 and 0). training: mean and biased variance of inp over (N, S), invstd =                \
     1/sqrt(var + eps), written to save_mean[C] and save_invstd[C]; running_mean[C] and        \
     running_var[C] (may be null) are updated in place with momentum, the variance unbiased.   \
     Eval: running stats are read and copied / converted into save_mean and save_invstd. */    \
  X(batch_norm_forward, BatchNorm, T* out, T* save_mean, T* save_invstd, T* running_mean,       \
    T* running_var, const T* inp, const T* weight, const T* bias, int64_t N, int64_t C,         \
    int64_t S, bool training, double momentum, double eps)                                      \
  /* dinp[N, C, S] written; dweight[C], dbias[C] accumulated. training: the mean and variance   \
     depend on inp; eval: the affine map only. save_mean/save_invstd[C] as the forward's. */   \
  X(batch_norm_backward, BatchNormGrad, T* dinp, T* dweight, T* dbias, const T* dout,           \
    const T* inp, const T* weight, const T* save_mean, const T* save_invstd, int64_t N,         \
    int64_t C, int64_t S, bool training)                                                        \
  /* out[N, C, S] = inp / (k + alpha/size * sum of inp^2 over channels [c - size/2,             \
     c + (size-1)/2], zero outside [0, C))^beta. */                                             \
  X(local_response_norm_forward, ChannelWindow, T* out, const T* inp, int64_t N, int64_t C,     \
    int64_t S, int64_t size, double alpha, double beta, double k)                               \
  /* dinp[N, C, S] written, recomputing the denominators from inp. */                          \
  X(local_response_norm_backward, ChannelWindowGrad, T* dinp, const T* dout, const T* inp,      \
    int64_t N, int64_t C, int64_t S, int64_t size, double alpha, double beta, double k)

FC_NORM_OPS(FC_DECLARE, T)

// Batch norm's per-channel finishing math, in double, shared by both twins (whose reductions
// differ in shape but deliver the same sums).
namespace norm_math {

// Training: invstd of the biased batch variance var over NS elements, and channel c's running
// statistics (either may be null) updated with momentum by PyTorch's formula, term order
// included; the running variance is the unbiased one.
template <typename T>
FC_HOST_DEVICE inline double bn_train_stats(T* running_mean, T* running_var, int64_t c,
                                            double mean, double var, double NS,
                                            double momentum, double eps) {
  if (running_mean) {
    running_mean[c] = T(momentum * mean + (1 - momentum) * double(running_mean[c]));
  }
  if (running_var) {
    const double unbiased = var * NS / (NS - 1);
    running_var[c] = T(momentum * unbiased + (1 - momentum) * double(running_var[c]));
  }
  return 1.0 / sqrt(var + eps);
}

// Eval: invstd of the running variance.
FC_HOST_DEVICE inline double bn_eval_invstd(double running_var, double eps) {
  return 1.0 / sqrt(running_var + eps);
}

// Training backward of one channel from its sums over (N, S) of dy, dy * (x - save_mean) and
// x - save_mean: the batch mean is recovered as save_mean + mean(x - save_mean) in double, so
// float32 gradients do not inherit the rounding of the saved mean (large when the mean is
// large). Then dx = w invstd (dy - mean(dy) - (x - mean) invstd^2 mean(dy (x - mean)))
// = g dy + (x - mean) a + b, with g = w * invstd.
struct BnGrad {
  double mean, dweight, a, b;  // dweight: the increment of dweight[c]
};
FC_HOST_DEVICE inline BnGrad bn_train_grad(double sdy, double sdyd, double sd, double save_mean,
                                           double invstd, double w, double NS) {
  const double shift = sd / NS, mean = save_mean + shift;
  const double dyxmu = sdyd - shift * sdy;  // sum dy * (x - mean)
  return {mean, dyxmu * invstd, -w * invstd * invstd * invstd * dyxmu / NS,
          -w * invstd * sdy / NS};
}

}  // namespace norm_math
}  // namespace fc
