// An L x L transposition of float vectors in registers, for any GCC vector type of L floats
// (lanes.h's V16 and V8, or __m256): the direct tiles' packing and result stores
// (conv_direct.cpp) and Winograd's weight transform (conv_winograd.cpp). Lowered for the
// instruction set of the function it is inlined into.
#pragma once

#include <cstddef>
#include <utility>

namespace fc {

// Round b of an L x L transposition in registers: register pair (i, i + b), for i without
// bit b, becomes its interleaved blocks of b lanes (GCC vector shuffles). The masks are
// constants (built while the rounds were a loop, they were not, and the shuffles ran as a
// loop through memory).
template <typename M, int L, int b, typename E = std::make_index_sequence<L>>
struct Interleave;

template <typename M, int L, int b, size_t... E>
struct Interleave<M, L, b, std::index_sequence<E...>> {
  static constexpr M lo = {((int(E) & b) ? L + int(E) - b : int(E))...};
  static constexpr M hi = {((int(E) & b) ? L + int(E) : int(E) + b)...};
};

template <typename V, int b = 1>
inline void transpose_rounds(V* r) {
  constexpr int L = int(sizeof(V) / sizeof(float));
  if constexpr (b < L) {
    using M = decltype(V{} < V{});  // int32 lanes
    using Masks = Interleave<M, L, b>;
#pragma GCC unroll 16
    for (int i = 0; i < L; ++i) {
      if (i & b) continue;
      const V a = r[i], c = r[i + b];
      r[i] = __builtin_shuffle(a, c, Masks::lo);
      r[i + b] = __builtin_shuffle(a, c, Masks::hi);
    }
    transpose_rounds<V, 2 * b>(r);
  }
}

}  // namespace fc
