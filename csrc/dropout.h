// Dropout family: dropout forward (with its mask) and backward. Contract: outputs and input
// gradients are written. Element i's draw is a hash of (seed, i) alone, one definition for both
// twins, so a seed gives the same mask on either device and for any thread count.
#pragma once

#include <cmath>
#include <cstdint>

#include "common.h"

namespace fc {

// The op list (see FC_DECLARE in common.h). Kinds, for the binding: Dropout (out, the mask or
// null, inp, n, p and the seed; out may alias inp) and DropoutGrad (dinp, dout, the forward's
// mask, n and p).
#define FC_DROPOUT_OPS(X, T)                                                                \
  /* out[n] = inp * mask / (1 - p), mask[n] (may be null) = 1 with probability 1 - p.      \
     Dropped elements are inp * 0 (NaN stays NaN, as in PyTorch); p = 1 drops everything. */ \
  X(dropout_forward, Dropout, T* out, uint8_t* mask, const T* inp, int64_t n, double p,     \
    uint64_t seed)                                                                          \
  /* dinp[n] = dout * mask / (1 - p); dout * 0 when p = 1. */                               \
  X(dropout_backward, DropoutGrad, T* dinp, const T* dout, const uint8_t* mask, int64_t n,  \
    double p)

FC_DROPOUT_OPS(FC_DECLARE, T)

// Dropout's draw: element i is kept when the top 53 bits of SplitMix64 (Steele, Lea, Flood
// 2014) output i of `seed`, read as u in [0, 1), satisfy u >= p (probability 1 - p to 2^-53;
// p = 0 keeps all, p = 1 none).
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

// One element of the forward: out[i] and mask[i] (mask may be null). keep * scale, not a
// branch: the draws are random, so a branch mispredicts half the time. inp * 0 rather than 0
// for dropped elements: NaN and Inf give NaN, as in PyTorch.
template <typename T>
FC_HOST_DEVICE inline void dropout_apply(T* out, uint8_t* mask, const T* inp, int64_t i,
                                         const DropoutDraw& draw, T scale) {
  const uint8_t keep = draw.keep(uint64_t(i));
  out[i] = inp[i] * (T(keep) * scale);
  if (mask) mask[i] = keep;
}

// One element of the backward.
template <typename T>
FC_HOST_DEVICE inline T dropout_grad(T dout, uint8_t mask, T scale) {
  return dout * (mask ? scale : T(0));
}

}  // namespace fc
