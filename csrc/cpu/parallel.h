// The one threading layer: OpenMP when the compiler has it, a single thread otherwise.
// The thread count is process-wide (set_num_threads, runtime.h), not OpenMP's per-thread
// nthreads ICV: omp_set_num_threads changes only the calling thread's ICV, so a kernel called
// from another Python thread would get OpenMP's default team. Every parallel region therefore
// names its team, `#pragma omp parallel ... num_threads(n)`, with n = max_threads() read once
// per kernel call, and every partition that a result depends on is cut from that same n
// (never from the team OpenMP actually gives, which can be smaller), so results depend on
// the set count alone.
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "runtime.h"

namespace fc {

// The process-wide thread count: read it once per kernel call and use that value for both
// the partition and num_threads(...), since another thread may change it meanwhile.
inline int max_threads() { return get_num_threads(); }

// This thread's number in the current team (0 outside a parallel region): the index of its
// slice of a workspace allocated for max_threads() threads before the region.
inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The first of `parts` contiguous, nearly equal ranges of [0, n) (the larger ones first, as
// OpenMP's static schedule cuts them): part p is [part_begin(n, parts, p), part_begin(.., p + 1)).
inline int64_t part_begin(int64_t n, int64_t parts, int64_t p) {
  const int64_t q = n / parts, r = n % parts;
  return p * q + (p < r ? p : r);
}

}  // namespace fc
