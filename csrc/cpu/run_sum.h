// Sum of a contiguous run in double, for the reductions whose float32 inputs must keep their
// precision (pooling windows, bias gradients).
#pragma once

#include <cstdint>

namespace fc {

// Eight independent partial sums let the compiler vectorise without -ffast-math (which it may
// not do for one running sum); the order is fixed, so results do not depend on threads or
// timing. Call it inside with_isa (isa.h) for the CPU's widest vectors.
template <typename T>
double run_sum(const T* r, int64_t n) {
  constexpr int64_t L = 8;
  double part[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    for (int64_t j = 0; j < L; ++j) part[j] += double(r[i + j]);
  }
  double s = 0;
  for (; i < n; ++i) s += double(r[i]);
  for (int64_t j = 0; j < L; ++j) s += part[j];
  return s;
}

}  // namespace fc
