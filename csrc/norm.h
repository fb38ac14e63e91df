// Normalisation and dropout: batch_norm, local_response_norm, dropout, forward and backward.
// Layout: input (N, C, S) with S the product of the spatial sizes (1 for 2-D input). Contract:
// outputs and input gradients are written; parameter gradients are accumulated (+=); a null
// pointer means "not given / not needed". Per-channel statistics of float32 are summed in
// double in a fixed order, so results depend neither on timing nor on the thread count.
#pragma once

#include <cmath>
#include <cstdint>

#include "common.h"

namespace fc {

// out[N, C, S] = (inp - mean) * invstd * weight + bias per channel; weight/bias may be null
// (1 and 0). training: mean and biased variance of inp over (N, S), invstd = 1/sqrt(var + eps),
// written to save_mean[C] and save_invstd[C]; running_mean[C]/running_var[C] (may be null) are
// updated in place with momentum, the variance unbiased. Eval: running stats are read and
// copied / converted into save_mean and save_invstd.
FC_KERNEL(batch_norm_forward, T* out, T* save_mean, T* save_invstd, T* running_mean, T* running_var,
          const T* inp, const T* weight, const T* bias, int64_t N, int64_t C, int64_t S,
          bool training, double momentum, double eps);
// dinp[N, C, S] written; dweight[C], dbias[C] accumulated. training: the mean and variance
// depend on inp; eval: the affine map only. save_mean/save_invstd[C] as batch_norm_forward_cpu.
FC_KERNEL(batch_norm_backward, T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
          const T* weight, const T* save_mean, const T* save_invstd, int64_t N, int64_t C,
          int64_t S, bool training);

// out[N, C, S] = inp / (k + alpha/size * sum of inp^2 over channels [c - size/2,
// c + (size-1)/2], zero outside [0, C))^beta.
FC_KERNEL(local_response_norm_forward, T* out, const T* inp, int64_t N, int64_t C, int64_t S,
          int64_t size, double alpha, double beta, double k);
// dinp[N, C, S] written, recomputing the denominators from inp.
FC_KERNEL(local_response_norm_backward, T* dinp, const T* dout, const T* inp, int64_t N, int64_t C,
          int64_t S, int64_t size, double alpha, double beta, double k);

// Dropout's draw, one definition for both twins so that a seed gives the same mask on either
// device: element i is kept when the top 53 bits of SplitMix64 (Steele, Lea, Flood 2014) output
// i of `seed`, read as u in [0, 1), satisfy u >= p (probability 1 - p to 2^-53; p = 0 keeps all,
// p = 1 none).
struct DropoutDraw {
  uint64_t seed, threshold;
  DropoutDraw(uint64_t seed_, double p)
      : seed(seed_), threshold(uint64_t(std::ceil(p * 9007199254740992.0))) {}
  FC_HOST_DEVICE bool keep(uint64_t i) const {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return ((z ^ (z >> 31)) >> 11) >= threshold;
  }
};

// 1/(1 - p) in the data type, as PyTorch scales kept elements; 0 for p = 1, where nothing is kept.
template <typename T>
T dropout_scale(double p) {
  return p < 1 ? T(1.0 / (1.0 - p)) : T(0);
}

// out[n] = inp * mask / (1 - p), mask[n] (may be null) = 1 with probability 1 - p. Element i's
// draw is a hash of (seed, i) alone, so the mask does not depend on the thread count. Dropped
// elements are inp * 0 (NaN stays NaN, as in PyTorch); p = 1 drops everything.
FC_KERNEL(dropout_forward, T* out, uint8_t* mask, const T* inp, int64_t n, double p, uint64_t seed);
// dinp[n] = dout * mask / (1 - p); dout * 0 when p = 1.
FC_KERNEL(dropout_backward, T* dinp, const T* dout, const uint8_t* mask, int64_t n, double p);

}  // namespace fc
