// Pooling on the CPU: one OpenMP work item per (image, channel) plane, so backward scatters
// (overlapping windows add) never race; small arrays stay on one thread. Window bounds come
// from Pool2dGeom (max/min/adaptive) or AvgSpans (average: PyTorch's divisor rules). Sums
// run in double for both dtypes; max/min compare in the array's type, as PyTorch does.
#include "pool.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/run_sum.h"

namespace fc {
namespace {

// Below this many elements touched, a parallel region costs more than it saves.
constexpr int64_t kParallelMin = int64_t(1) << 15;

// What the window tables below are, in an out-of-memory message.
constexpr const char* kWhat = "pool2d_cpu: window bounds of every output row and column";

bool threaded(const Pool2dGeom& g) {
  return g.planes() > 1 && g.planes() * std::max(g.HW(), g.PQ()) >= kParallelMin;
}

// Window bounds of every output row and column (Pool2dGeom's rows/cols), computed once per
// call rather than once per plane: adaptive bounds cost integer divisions.
// Columns [q_lo, q_hi) are the interior: sliding windows that need no column clipping.
struct Spans {
  std::vector<int64_t> h0, h1, w0, w1;
  int64_t q_lo = 0, q_hi = 0;
  explicit Spans(const Pool2dGeom& g)
      : h0(alloc_vector<int64_t>(g.P, kWhat)), h1(alloc_vector<int64_t>(g.P, kWhat)),
        w0(alloc_vector<int64_t>(g.Q, kWhat)), w1(alloc_vector<int64_t>(g.Q, kWhat)) {
    for (int64_t p = 0; p < g.P; ++p) g.rows(p, h0[p], h1[p]);
    for (int64_t q = 0; q < g.Q; ++q) g.cols(q, w0[q], w1[q]);
    if (g.adaptive) return;
    const auto whole = [&](int64_t q) {
      const int64_t start = q * g.stride_w - g.pad_w;
      return start >= 0 && start + (g.S - 1) * g.dil_w < g.W;
    };
    while (q_lo < g.Q && !whole(q_lo)) ++q_lo;
    q_hi = q_lo;
    while (q_hi < g.Q && whole(q_hi)) ++q_hi;
  }
};

// take ? a : b without a branch: on random data the compiler's branch mispredicts about once
// per window and costs more than the whole window's compares.
template <typename T>
inline T pick(bool take, T a, T b) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  U ua, ub;
  std::memcpy(&ua, &a, sizeof a);
  std::memcpy(&ub, &b, sizeof b);
  const U mask = U(0) - U(take);
  const U r = (ua & mask) | (ub & ~mask);
  T out;
  std::memcpy(&out, &r, sizeof out);
  return out;
}

// PyTorch's CPU rule: start from the first valid pixel with -inf (+inf for min), so padding
// never wins, and take a value when it is strictly better or NaN: the first extreme in scan
// order wins and a NaN wins (each later NaN replaces it). An empty window (dilation can skip
// every pixel) keeps the start, which may lie past its row or outside the plane; backward
// sends that window's gradient where PyTorch does when the index is inside the plane and
// drops it otherwise (PyTorch would write out of bounds there).
template <bool kMin, typename T>
inline int64_t arg_extreme(const T* x, const Pool2dGeom& g, int64_t h0, int64_t h1, int64_t w0,
                           int64_t w1, T& best) {
  T m = kMin ? std::numeric_limits<T>::infinity() : -std::numeric_limits<T>::infinity();
  int64_t at = h0 * g.W + w0;
  for (int64_t h = h0; h < h1; h += g.dil_h) {
    for (int64_t w = w0; w < w1; w += g.dil_w) {
      const T v = x[h * g.W + w];
      const bool take = (kMin ? v < m : v > m) | std::isnan(v);
      m = pick(take, v, m);
      at = pick(take, h * g.W + w, at);
    }
  }
  best = m;
  return at;
}

// Column pairs (of whole input rows) per block of extreme_2x2_plane: its buffers on the stack.
constexpr int64_t kPairBlock = 4096;

// Whether every window is 2x2 at stride 2 inside a plane of even width (most CNNs' pooling)
// and two input rows fit a block: extreme_2x2_plane takes those.
inline bool plain_2x2(const Pool2dGeom& g) {
  return !g.adaptive && g.R == 2 && g.S == 2 && g.stride_h == 2 && g.stride_w == 2 &&
         g.pad_h == 0 && g.pad_w == 0 && g.dil_h == 1 && g.dil_w == 1 && g.W == 2 * g.Q &&
         g.H >= 2 * g.P && 2 * g.Q <= kPairBlock;
}

// hv[i], hi[i] = the better of x[2i] and x[2i + 1] and its index (base + 2i or base + 2i + 1),
// for i < n, by arg_extreme's rule. Plain loops of ternaries: inside with_isa the compiler
// vectorises them with the variant's permutes for the even and odd elements (written with
// 64-byte GCC vectors, the shuffles were lowered lane by lane for the baseline first).
template <bool kMin, bool kIdx, typename T>
inline void better_of_pairs(T* hv, int64_t* hi, const T* x, int64_t base, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T e = x[2 * i], o = x[2 * i + 1];
    const bool take = (kMin ? o < e : o > e) || o != o;
    hv[i] = take ? o : e;
    if constexpr (kIdx) hi[i] = base + 2 * i + (take ? 1 : 0);
  }
}

// Plane x of 2x2 windows at stride 2 (plain_2x2). Taking each window's pixels in scan order
// (x00, x01, x10, x11: strictly better, or NaN) gives the same value and index as taking the
// better of each row's pair first and then the better of the two rows' results, the second
// row's on a tie lost and on NaN won: both give the first extreme in scan order, or the last
// NaN. With W = 2Q, a row's pairs are consecutive pairs of the flattened plane, so the first
// step runs over blocks of whole rows in vectors whatever the width; the second is
// elementwise over rows of Q.
template <bool kMin, bool kIdx, typename T>
void extreme_2x2_plane(T* m, int64_t* at, const T* x, const Pool2dGeom& g) {
  T hv[kPairBlock];
  int64_t hi[kIdx ? kPairBlock : 1];
  const int64_t Q = g.Q, W = g.W, rows = kPairBlock / (2 * Q);
  for (int64_t p0 = 0; p0 < g.P; p0 += rows) {
    const int64_t p1 = std::min(g.P, p0 + rows);
    better_of_pairs<kMin, kIdx>(hv, hi, x + 2 * p0 * W, 2 * p0 * W, 2 * (p1 - p0) * Q);
    for (int64_t p = p0; p < p1; ++p) {
      const T* top = hv + 2 * (p - p0) * Q;
      const T* bottom = top + Q;
      T* mp = m + p * Q;
      const int64_t* ti = kIdx ? hi + 2 * (p - p0) * Q : nullptr;
      int64_t* ap = kIdx ? at + p * Q : nullptr;
      for (int64_t q = 0; q < Q; ++q) {
        const T a = top[q], b = bottom[q];
        const bool take = (kMin ? b < a : b > a) || b != b;
        mp[q] = take ? b : a;
        if constexpr (kIdx) ap[q] = take ? ti[Q + q] : ti[q];
      }
    }
  }
}

#ifdef FC_ISA_X86
// extreme_2x2_plane for float under AVX-512, 16 windows at a time: each row's even and odd
// pixels split by two-source permutes, the four taps taken in scan order by masked moves
// (strictly better, or NaN), the tap's offset kept beside the value in two vectors of int64.
// In the portable version the second step, along rows of Q, ran scalar on rows shorter than
// its vector loop (Q = 14 and 7 in fashion_cnn: a tenth of its training step).
template <bool kMin, bool kIdx>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) void extreme_2x2_avx512(
    float* m, int64_t* at, const float* x, const Pool2dGeom& g) {
  const int64_t Q = g.Q, W = g.W;
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i even = _mm512_add_epi32(lane, lane);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  // Each window's first pixel, in int64 lanes: windows 0-7 and 8-15 of a step.
  const __m512i even_lo = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i even_hi = _mm512_setr_epi64(16, 18, 20, 22, 24, 26, 28, 30);
  constexpr int kBetter = kMin ? _CMP_LT_OQ : _CMP_GT_OQ;
  for (int64_t p = 0; p < g.P; ++p) {
    const float* r0 = x + 2 * p * W;
    const float* r1 = r0 + W;
    for (int64_t q0 = 0; q0 < Q; q0 += 16) {
      const int64_t n = std::min<int64_t>(16, Q - q0);
      const __mmask16 out = n == 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
      const __mmask16 lo = n >= 8 ? __mmask16(0xFFFF) : __mmask16((1u << (2 * n)) - 1);
      const __mmask16 hi = n > 8 ? __mmask16((uint32_t(1) << (2 * n - 16)) - 1) : __mmask16(0);
      const __m512 t0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * q0);
      const __m512 t1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * q0 + 16);
      const __m512 b0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * q0);
      const __m512 b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * q0 + 16);
      __m512 v = _mm512_permutex2var_ps(t0, even, t1);
      __m512i k_lo = _mm512_setzero_si512(), k_hi = _mm512_setzero_si512();
      const __m512 taps[3] = {_mm512_permutex2var_ps(t0, odd, t1),
                              _mm512_permutex2var_ps(b0, even, b1),
                              _mm512_permutex2var_ps(b0, odd, b1)};
      const int64_t offsets[3] = {1, W, W + 1};
      for (int j = 0; j < 3; ++j) {
        const __mmask16 take = _mm512_cmp_ps_mask(taps[j], v, kBetter) |
                               _mm512_cmp_ps_mask(taps[j], taps[j], _CMP_UNORD_Q);
        v = _mm512_mask_mov_ps(v, take, taps[j]);
        if constexpr (kIdx) {
          const __m512i o = _mm512_set1_epi64(offsets[j]);
          k_lo = _mm512_mask_mov_epi64(k_lo, __mmask8(take), o);
          k_hi = _mm512_mask_mov_epi64(k_hi, __mmask8(take >> 8), o);
        }
      }
      _mm512_mask_storeu_ps(m + p * Q + q0, out, v);
      if constexpr (kIdx) {
        const __m512i base = _mm512_set1_epi64(2 * p * W + 2 * q0);
        _mm512_mask_storeu_epi64(at + p * Q + q0, __mmask8(out),
                                 _mm512_add_epi64(_mm512_add_epi64(k_lo, even_lo), base));
        _mm512_mask_storeu_epi64(at + p * Q + q0 + 8, __mmask8(out >> 8),
                                 _mm512_add_epi64(_mm512_add_epi64(k_hi, even_hi), base));
      }
    }
  }
}
#endif

// The interior windows [q0, q1) of one output row (rows h0 to h1 of plane x), tap by tap in
// each window's scan order. The geometry is read into locals and the outputs are restrict, so
// that the loop over q holds no reload and vectorises inside with_isa (strided loads as the
// variant's permutes or gathers); SW is the column stride when known (0: g.stride_w).
template <bool kMin, bool kIdx, int SW, typename T>
inline void interior_taps(T* __restrict m, int64_t* __restrict at, const T* __restrict x,
                          const Pool2dGeom& g, int64_t h0, int64_t h1, int64_t q0, int64_t q1) {
  const int64_t W = g.W, S = g.S, dh = g.dil_h, dw = g.dil_w, pw = g.pad_w;
  const int64_t sw = SW ? SW : g.stride_w;
  for (int64_t q = q0; q < q1; ++q) {
    m[q] = kMin ? std::numeric_limits<T>::infinity() : -std::numeric_limits<T>::infinity();
    if constexpr (kIdx) at[q] = h0 * W + q * sw - pw;
  }
  for (int64_t h = h0; h < h1; h += dh) {
    const T* row = x + h * W;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t off = s * dw - pw, base = h * W + off;
      for (int64_t q = q0; q < q1; ++q) {
        const T v = row[q * sw + off], cur = m[q];
        const bool take = (kMin ? v < cur : v > cur) || v != v;
        m[q] = take ? v : cur;
        if constexpr (kIdx) at[q] = take ? base + q * sw : at[q];
      }
    }
  }
}

// Plane c of extreme_forward; kIdx: whether the argmax is wanted (idx not null).
template <bool kMin, bool kIdx, typename T>
void extreme_plane(T* out, int64_t* idx, const T* inp, const Pool2dGeom& g, const Spans& sp,
                   int64_t c) {
  const T* x = inp + c * g.HW();
  if (plain_2x2(g)) {
#ifdef FC_ISA_X86
    if constexpr (std::is_same_v<T, float>) {
      if (cpu_isa() == CpuIsa::avx512) {
        return extreme_2x2_avx512<kMin, kIdx>(out + c * g.PQ(), kIdx ? idx + c * g.PQ() : nullptr,
                                              x, g);
      }
    }
#endif
    return extreme_2x2_plane<kMin, kIdx>(out + c * g.PQ(), kIdx ? idx + c * g.PQ() : nullptr, x,
                                         g);
  }
  for (int64_t p = 0; p < g.P; ++p) {
    T* m = out + c * g.PQ() + p * g.Q;
    int64_t* at = kIdx ? idx + c * g.PQ() + p * g.Q : nullptr;
    // Interior windows advance tap by tap across the row, in each window's scan order, so
    // the compare-select chains of neighbouring outputs overlap instead of running in turn.
    if (g.stride_w == 1) {
      interior_taps<kMin, kIdx, 1>(m, at, x, g, sp.h0[p], sp.h1[p], sp.q_lo, sp.q_hi);
    } else if (g.stride_w == 2) {
      interior_taps<kMin, kIdx, 2>(m, at, x, g, sp.h0[p], sp.h1[p], sp.q_lo, sp.q_hi);
    } else {
      interior_taps<kMin, kIdx, 0>(m, at, x, g, sp.h0[p], sp.h1[p], sp.q_lo, sp.q_hi);
    }
    const auto clipped = [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t a = arg_extreme<kMin>(x, g, sp.h0[p], sp.h1[p], sp.w0[q], sp.w1[q], m[q]);
        if constexpr (kIdx) at[q] = a;
      }
    };
    clipped(0, sp.q_lo);
    clipped(sp.q_hi, g.Q);
  }
}

// f(c) for every plane c, in contiguous blocks of planes (one per thread when the work is large
// enough, as a static schedule would split them), each block through with_isa: the pooling
// loops then run in the CPU's widest variant, chosen once per block.
template <typename F>
void for_planes(const Pool2dGeom& g, F f) {
  const int64_t n = g.planes();
  const int teams = threaded(g) ? int(std::min<int64_t>(max_threads(), n)) : 1;
  const int64_t block = ceil_div(n, int64_t(teams));
#pragma omp parallel for schedule(static) num_threads(teams) if (teams > 1)
  for (int b = 0; b < teams; ++b) {
    const int64_t c1 = std::min(n, (b + 1) * block);
    with_isa([&] {
      for (int64_t c = b * block; c < c1; ++c) f(c);
    });
  }
}

// idx may be null: the pooled values alone (inference), no index computed or written.
template <bool kMin, typename T>
void extreme_forward(T* out, int64_t* idx, const T* inp, const Pool2dGeom& g) {
  const Spans sp(g);
  if (idx) {
    for_planes(g, [&](int64_t c) { extreme_plane<kMin, true>(out, idx, inp, g, sp, c); });
  } else {
    for_planes(g, [&](int64_t c) { extreme_plane<kMin, false>(out, idx, inp, g, sp, c); });
  }
}

// Recomputes the argmax/argmin of every window of plane x and adds scale * dy at it.
template <bool kMin, typename T>
void scatter_extreme(T* dx, const T* dy, const T* x, const Pool2dGeom& g, const Spans& sp,
                     double scale) {
  for (int64_t p = 0; p < g.P; ++p) {
    for (int64_t q = 0; q < g.Q; ++q) {
      T best;
      const int64_t at = arg_extreme<kMin>(x, g, sp.h0[p], sp.h1[p], sp.w0[q], sp.w1[q], best);
      if (at >= 0 && at < g.HW()) dx[at] += T(scale * dy[p * g.Q + q]);
    }
  }
}

// An average-pooling window clipped to the input, and 1 / its divisor.
struct AvgWindow {
  int64_t h0, h1, w0, w1;
  double scale;
  bool empty() const { return h0 >= h1 || w0 >= w1; }
};

// The average-pooling windows of every output row and column (avg_pool_span, geometry.h) and
// their divisors (avg_pool_scale).
struct AvgSpans {
  std::vector<int64_t> h0, h1, hpad, w0, w1, wpad;  // clipped bounds; extent in the padded input
  bool count_include_pad;
  int64_t divisor_override;

  AvgSpans(const Pool2dGeom& g, bool count_include_pad, int64_t divisor_override)
      : h0(alloc_vector<int64_t>(g.P, kWhat)), h1(alloc_vector<int64_t>(g.P, kWhat)),
        hpad(alloc_vector<int64_t>(g.P, kWhat)), w0(alloc_vector<int64_t>(g.Q, kWhat)),
        w1(alloc_vector<int64_t>(g.Q, kWhat)), wpad(alloc_vector<int64_t>(g.Q, kWhat)),
        count_include_pad(count_include_pad), divisor_override(divisor_override) {
    axis(g.P, g.H, g.R, g.stride_h, g.pad_h, h0, h1, hpad);
    axis(g.Q, g.W, g.S, g.stride_w, g.pad_w, w0, w1, wpad);
  }

  AvgWindow at(int64_t p, int64_t q) const {
    return {h0[p], h1[p], w0[q], w1[q],
            avg_pool_scale(divisor_override, count_include_pad, hpad[p] * wpad[q],
                           (h1[p] - h0[p]) * (w1[q] - w0[q]))};
  }

 private:
  static void axis(int64_t out, int64_t in, int64_t k, int64_t stride, int64_t pad,
                   std::vector<int64_t>& lo, std::vector<int64_t>& hi, std::vector<int64_t>& ext) {
    for (int64_t o = 0; o < out; ++o) avg_pool_span(o, in, k, stride, pad, lo[o], hi[o], ext[o]);
  }
};

// A window spanning whole rows is one contiguous run (global pooling, adaptive columns of 1):
// long ones go to run_sum; small windows stay a plain loop, where lanes cost more than they save.
template <typename T>
inline double window_sum(const T* x, int64_t W, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
  if (w0 == 0 && w1 == W && (h1 - h0) * W >= 32) return run_sum(x + h0 * W, (h1 - h0) * W);
  double s = 0;
  for (int64_t h = h0; h < h1; ++h) {
    for (int64_t w = w0; w < w1; ++w) s += x[h * W + w];
  }
  return s;
}

template <typename T>
inline void window_add(T* dx, int64_t W, int64_t h0, int64_t h1, int64_t w0, int64_t w1, T v) {
  if (w0 == 0 && w1 == W) {
    w1 = (h1 - h0) * W;
    h1 = h0 + 1;
  }
  for (int64_t h = h0; h < h1; ++h) {
    T* r = dx + h * W;
    for (int64_t w = w0; w < w1; ++w) r[w] += v;
  }
}

// out[c, p, q] = value(x, p, q) for every plane c (x its plane of inp) and output (p, q).
template <typename T, typename F>
void pool_planes(T* out, const T* inp, const Pool2dGeom& g, F value) {
  const int64_t HW = g.HW(), PQ = g.PQ();
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (threaded(g))
  for (int64_t c = 0; c < g.planes(); ++c) {
    const T* x = inp + c * HW;
    T* y = out + c * PQ;
    for (int64_t p = 0; p < g.P; ++p) {
      for (int64_t q = 0; q < g.Q; ++q) y[p * g.Q + q] = value(x, p, q);
    }
  }
}

// For every plane c (dx, dy, x its planes of dinp, dout, inp; x null when inp is): dx = 0,
// first(dx, dy, x), then add(dx, x, dy[p, q], p, q) for every output (p, q), in that order.
template <typename T, typename First, typename Add>
void unpool_planes(T* dinp, const T* dout, const T* inp, const Pool2dGeom& g, First first,
                   Add add) {
  const int64_t HW = g.HW(), PQ = g.PQ();
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (threaded(g))
  for (int64_t c = 0; c < g.planes(); ++c) {
    T* dx = dinp + c * HW;
    const T* dy = dout + c * PQ;
    const T* x = inp ? inp + c * HW : nullptr;
    std::fill(dx, dx + HW, T(0));
    first(dx, dy, x);
    for (int64_t p = 0; p < g.P; ++p) {
      for (int64_t q = 0; q < g.Q; ++q) add(dx, x, dy[p * g.Q + q], p, q);
    }
  }
}

template <typename T, typename Add>
void unpool_planes(T* dinp, const T* dout, const T* inp, const Pool2dGeom& g, Add add) {
  unpool_planes(dinp, dout, inp, g, [](T*, const T*, const T*) {}, add);
}

}  // namespace

template <typename T>
void max_pool2d_forward_cpu(T* out, int64_t* idx, const T* inp, const Pool2dGeom& g) {
  extreme_forward<false>(out, idx, inp, g);
}

template <typename T>
void min_pool2d_forward_cpu(T* out, int64_t* idx, const T* inp, const Pool2dGeom& g) {
  extreme_forward<true>(out, idx, inp, g);
}

template <typename T>
void max_pool2d_backward_cpu(T* dinp, const T* dout, const int64_t* idx, const T* inp,
                             const Pool2dGeom& g, bool is_min) {
  const int64_t HW = g.HW(), PQ = g.PQ();
  const Spans sp(g);
  int64_t bad = 0;
#pragma omp parallel for schedule(static) num_threads(max_threads()) \
    if (threaded(g)) reduction(+ : bad)
  for (int64_t c = 0; c < g.planes(); ++c) {
    T* dx = dinp + c * HW;
    const T* dy = dout + c * PQ;
    std::fill(dx, dx + HW, T(0));
    if (idx) {
      const int64_t* id = idx + c * PQ;
      for (int64_t j = 0; j < PQ; ++j) {
        // An index from outside the plane would write another plane's memory: skip it, and
        // count it as bad unless its window is empty (forward's own index for such windows).
        if (id[j] < 0 || id[j] >= HW) {
          const int64_t p = j / g.Q, q = j % g.Q;
          bad += sp.h0[p] < sp.h1[p] && sp.w0[q] < sp.w1[q];
          continue;
        }
        dx[id[j]] += dy[j];
      }
    } else if (is_min) {
      scatter_extreme<true>(dx, dy, inp + c * HW, g, sp, 1.0);
    } else {
      scatter_extreme<false>(dx, dy, inp + c * HW, g, sp, 1.0);
    }
  }
  FC_CHECK(bad == 0, is_min ? "min_pool2d_backward" : g.adaptive ? "adaptive_max_pool2d_backward"
                                                               : "max_pool2d_backward",
           ": indices must lie in [0, H*W) = [0, ", HW, ") of their input plane, but ", bad,
           " of ", g.planes() * PQ, " do not");
}

template <typename T>
void avg_pool2d_forward_cpu(T* out, const T* inp, const Pool2dGeom& g, bool count_include_pad,
                            int64_t divisor_override) {
  const AvgSpans sp(g, count_include_pad, divisor_override);
  if (plain_2x2(g) && g.P > 0) {
    // Every window whole and alike: window_sum's order, ((x00 + x01) + x10) + x11 in double,
    // in a loop the variant vectorises.
    const double scale = sp.at(0, 0).scale;
    return for_planes(g, [&](int64_t c) {
      const T* x = inp + c * g.HW();
      T* __restrict y = out + c * g.PQ();
      const int64_t W = g.W, Q = g.Q;
      for (int64_t p = 0; p < g.P; ++p) {
        const T* __restrict r0 = x + 2 * p * W;
        const T* __restrict r1 = r0 + W;
        for (int64_t q = 0; q < Q; ++q) {
          const double sum = ((double(r0[2 * q]) + r0[2 * q + 1]) + r1[2 * q]) + r1[2 * q + 1];
          y[p * Q + q] = T(sum * scale);
        }
      }
    });
  }
  pool_planes(out, inp, g, [&](const T* x, int64_t p, int64_t q) {
    const AvgWindow a = sp.at(p, q);
    return a.empty() ? T(0) : T(window_sum(x, g.W, a.h0, a.h1, a.w0, a.w1) * a.scale);
  });
}

template <typename T>
void avg_pool2d_backward_cpu(T* dinp, const T* dout, const Pool2dGeom& g, bool count_include_pad,
                             int64_t divisor_override) {
  const AvgSpans sp(g, count_include_pad, divisor_override);
  if (plain_2x2(g) && g.P > 0) {
    // Windows that tile the plane: each input pixel receives its window's dy * scale alone
    // (0 + v, as window_add gives), rows past the last window zero.
    const double scale = sp.at(0, 0).scale;
    return for_planes(g, [&](int64_t c) {
      T* __restrict dx = dinp + c * g.HW();
      const T* __restrict dy = dout + c * g.PQ();
      const int64_t W = g.W, Q = g.Q;
      for (int64_t p = 0; p < g.P; ++p) {
        T* __restrict r0 = dx + 2 * p * W;
        for (int64_t q = 0; q < Q; ++q) {
          const T v = T(dy[p * Q + q] * scale);
          r0[2 * q] = v;
          r0[2 * q + 1] = v;
          r0[W + 2 * q] = v;
          r0[W + 2 * q + 1] = v;
        }
      }
      std::fill(dx + 2 * g.P * W, dx + g.HW(), T(0));
    });
  }
  unpool_planes(dinp, dout, static_cast<const T*>(nullptr), g,
                [&](T* dx, const T*, T dy, int64_t p, int64_t q) {
                  const AvgWindow a = sp.at(p, q);
                  window_add(dx, g.W, a.h0, a.h1, a.w0, a.w1, T(dy * a.scale));
                });
}

// lp_pool2d is PyTorch's composition (sign(a) * relu(|a|) * R*S)^(1/p) with a = avg_pool2d(x^p)
// (no padding, padding counted): a * R*S is the window's power sum, rescaled where a ceil-mode
// window is clipped. Its gradient is zero where a == 0 (relu's kink) and otherwise
// dy * (1/p) z^(1/p - 1) * R*S / divisor * p x^(p-1), with z = a * R*S.
namespace {

template <typename T>
double power_sum(const T* x, const Pool2dGeom& g, const AvgWindow& a, double p) {
  double s = 0;
  for (int64_t h = a.h0; h < a.h1; ++h) {
    for (int64_t w = a.w0; w < a.w1; ++w) s += std::pow(double(x[h * g.W + w]), p);
  }
  return s;
}

}  // namespace

template <typename T>
void lp_pool2d_forward_cpu(T* out, const T* inp, const Pool2dGeom& g, double p) {
  const AvgSpans sp(g, true, 0);
  const double area = double(g.R * g.S);
  pool_planes(out, inp, g, [&](const T* x, int64_t i, int64_t j) {
    const AvgWindow a = sp.at(i, j);
    return T(std::pow(power_sum(x, g, a, p) * a.scale * area, 1.0 / p));
  });
}

template <typename T>
void lp_pool2d_backward_cpu(T* dinp, const T* dout, const T* inp, const Pool2dGeom& g, double p) {
  const AvgSpans sp(g, true, 0);
  const double area = double(g.R * g.S);
  unpool_planes(dinp, dout, inp, g, [&](T* dx, const T* x, T dy, int64_t i, int64_t j) {
    const AvgWindow a = sp.at(i, j);
    const double mean = power_sum(x, g, a, p) * a.scale;
    if (mean == 0) return;
    const double z = mean * area;
    const double f = dy * (1.0 / p) * std::pow(z, 1.0 / p - 1.0) * area * a.scale;
    for (int64_t h = a.h0; h < a.h1; ++h) {
      for (int64_t w = a.w0; w < a.w1; ++w) {
        dx[h * g.W + w] += T(f * p * std::pow(double(x[h * g.W + w]), p - 1.0));
      }
    }
  });
}

#ifdef FC_ISA_X86
// out[c] = the mean of plane c (n floats) for c < planes, summed in double, 8 planes at once:
// their chains of adds interleave, and one transposing tree reduces the 8 planes' partial sums
// together. Plane by plane (run_sum), a 7x7 plane's two chains of dependent adds (the lanes',
// then the parts') took 23 cycles. Each plane sums in the same order wherever it falls among
// the 8 (a last group repeats its last plane), so the bits do not depend on the thread count.
FC_TARGET_AVX512 void plane_means_avx512(float* out, const float* in, int64_t planes,
                                         int64_t n) {
  const int64_t full = n / 8;
  const __mmask8 tail = __mmask8((1u << (n % 8)) - 1);
  const __m512d count = _mm512_set1_pd(double(n));
  for (int64_t c0 = 0; c0 < planes; c0 += 8) {
    const float* p[8];
    for (int64_t k = 0; k < 8; ++k) p[k] = in + std::min(c0 + k, planes - 1) * n;
    __m512d a[8];
    for (int k = 0; k < 8; ++k) a[k] = _mm512_setzero_pd();
    for (int64_t i = 0; i < full; ++i) {
      for (int k = 0; k < 8; ++k) {
        const __m256 x = _mm256_loadu_ps(p[k] + 8 * i);
        a[k] = _mm512_add_pd(a[k], _mm512_maskz_cvtps_pd(0xFF, x));
      }
    }
    if (tail) {
      for (int k = 0; k < 8; ++k) {
        const __m256 x = _mm256_maskz_loadu_ps(tail, p[k] + 8 * full);
        a[k] = _mm512_add_pd(a[k], _mm512_maskz_cvtps_pd(0xFF, x));
      }
    }
    // Lanes (0+1), (2+3), ... of planes 2j and 2j + 1, alternating; then (01 + 23) and
    // (45 + 67) of four planes; then all eight lanes of each plane, in plane order.
    __m512d b[4], c[2];
    for (int j = 0; j < 4; ++j) {
      b[j] = _mm512_add_pd(_mm512_maskz_unpacklo_pd(0xFF, a[2 * j], a[2 * j + 1]),
                           _mm512_maskz_unpackhi_pd(0xFF, a[2 * j], a[2 * j + 1]));
    }
    for (int j = 0; j < 2; ++j) {
      c[j] = _mm512_add_pd(_mm512_maskz_shuffle_f64x2(0xFF, b[2 * j], b[2 * j + 1], 0x88),
                           _mm512_maskz_shuffle_f64x2(0xFF, b[2 * j], b[2 * j + 1], 0xDD));
    }
    const __m512d sums = _mm512_add_pd(_mm512_maskz_shuffle_f64x2(0xFF, c[0], c[1], 0x88),
                                       _mm512_maskz_shuffle_f64x2(0xFF, c[0], c[1], 0xDD));
    const __mmask8 valid = __mmask8((1u << std::min<int64_t>(8, planes - c0)) - 1);
    _mm256_mask_storeu_ps(out + c0, valid, _mm512_maskz_cvtpd_ps(0xFF, _mm512_div_pd(sums, count)));
  }
}

// The same under AVX2: 4 double lanes per plane, then each group of 4 planes' lanes added
// pairwise (hadd) and across halves. Global pooling's forward took 1.18x PyTorch's AVX2 time
// plane by plane.
FC_TARGET_AVX2 void plane_means_avx2(float* out, const float* in, int64_t planes, int64_t n) {
  const int64_t full = n / 4;
  const __m128i tail = _mm_cmpgt_epi32(_mm_set1_epi32(int(n % 4)), _mm_setr_epi32(0, 1, 2, 3));
  const __m256d count = _mm256_set1_pd(double(n));
  for (int64_t c0 = 0; c0 < planes; c0 += 8) {
    const float* p[8];
    for (int64_t k = 0; k < 8; ++k) p[k] = in + std::min(c0 + k, planes - 1) * n;
    __m256d a[8];
    for (int k = 0; k < 8; ++k) a[k] = _mm256_setzero_pd();
    for (int64_t i = 0; i < full; ++i) {
      for (int k = 0; k < 8; ++k) {
        a[k] = _mm256_add_pd(a[k], _mm256_cvtps_pd(_mm_loadu_ps(p[k] + 4 * i)));
      }
    }
    if (n % 4) {
      for (int k = 0; k < 8; ++k) {
        a[k] = _mm256_add_pd(a[k], _mm256_cvtps_pd(_mm_maskload_ps(p[k] + 4 * full, tail)));
      }
    }
    __m128 mean[2];
    for (int h = 0; h < 2; ++h) {
      const __m256d t0 = _mm256_hadd_pd(a[4 * h], a[4 * h + 1]);
      const __m256d t1 = _mm256_hadd_pd(a[4 * h + 2], a[4 * h + 3]);
      const __m256d sums = _mm256_add_pd(_mm256_permute2f128_pd(t0, t1, 0x21),
                                         _mm256_blend_pd(t0, t1, 0xC));
      mean[h] = _mm256_cvtpd_ps(_mm256_div_pd(sums, count));
    }
    alignas(32) float m[8];
    _mm_store_ps(m, mean[0]);
    _mm_store_ps(m + 4, mean[1]);
    std::memcpy(out + c0, m, sizeof(float) * std::min<int64_t>(8, planes - c0));
  }
}
#endif

template <typename T>
void adaptive_avg_pool2d_forward_cpu(T* out, const T* inp, const Pool2dGeom& g) {
  if (g.P == 1 && g.Q == 1) {
    // Global pooling (a network's head): one contiguous run per plane; the general path's
    // per-window setup cost more than a 7x7 plane's sum.
    const int64_t HW = g.HW();
#ifdef FC_ISA_X86
    if (std::is_same_v<T, float> && cpu_isa() != CpuIsa::baseline) {
      const int64_t n = g.planes();
      const int teams = threaded(g) ? int(std::min<int64_t>(max_threads(), ceil_div(n, 8))) : 1;
      const int64_t block = ceil_div(ceil_div(n, int64_t(teams)), 8) * 8;
      const auto means = cpu_isa() == CpuIsa::avx512 ? plane_means_avx512 : plane_means_avx2;
#pragma omp parallel for schedule(static) num_threads(teams) if (teams > 1)
      for (int b = 0; b < teams; ++b) {
        const int64_t c0 = std::min(n, b * block), c1 = std::min(n, c0 + block);
        if (c1 > c0) {
          means(reinterpret_cast<float*>(out) + c0, reinterpret_cast<const float*>(inp) + c0 * HW,
                c1 - c0, HW);
        }
      }
      return;
    }
#endif
    for_planes(g, [&](int64_t c) { out[c] = T(run_sum(inp + c * HW, HW) / double(HW)); });
    return;
  }
  const Spans sp(g);
  pool_planes(out, inp, g, [&](const T* x, int64_t p, int64_t q) {
    const int64_t h0 = sp.h0[p], h1 = sp.h1[p], w0 = sp.w0[q], w1 = sp.w1[q];
    return T(window_sum(x, g.W, h0, h1, w0, w1) / double((h1 - h0) * (w1 - w0)));
  });
}

template <typename T>
void adaptive_avg_pool2d_backward_cpu(T* dinp, const T* dout, const Pool2dGeom& g) {
  const Spans sp(g);
  unpool_planes(dinp, dout, static_cast<const T*>(nullptr), g,
                [&](T* dx, const T*, T dy, int64_t p, int64_t q) {
                  const int64_t h0 = sp.h0[p], h1 = sp.h1[p], w0 = sp.w0[q], w1 = sp.w1[q];
                  window_add(dx, g.W, h0, h1, w0, w1, T(dy / double((h1 - h0) * (w1 - w0))));
                });
}

template <typename T>
void mixed_pool2d_forward_cpu(T* out, const T* inp, const Pool2dGeom& g, double alpha) {
  const AvgSpans sp(g, true, 0);
  pool_planes(out, inp, g, [&](const T* x, int64_t p, int64_t q) {
    const AvgWindow a = sp.at(p, q);
    T best;
    arg_extreme<false>(x, g, a.h0, a.h1, a.w0, a.w1, best);
    const double mean = window_sum(x, g.W, a.h0, a.h1, a.w0, a.w1) * a.scale;
    return T(alpha * double(best) + (1.0 - alpha) * mean);
  });
}

template <typename T>
void mixed_pool2d_backward_cpu(T* dinp, const T* dout, const T* inp, const Pool2dGeom& g,
                               double alpha) {
  const Spans extreme(g);
  const AvgSpans sp(g, true, 0);
  unpool_planes(
      dinp, dout, inp, g,
      [&](T* dx, const T* dy, const T* x) { scatter_extreme<false>(dx, dy, x, g, extreme, alpha); },
      [&](T* dx, const T*, T dy, int64_t p, int64_t q) {
        const AvgWindow a = sp.at(p, q);
        window_add(dx, g.W, a.h0, a.h1, a.w0, a.w1, T((1.0 - alpha) * dy * a.scale));
      });
}

FC_POOL_OPS(FC_INSTANTIATE_CPU, float)
FC_POOL_OPS(FC_INSTANTIATE_CPU, double)

}  // namespace fc
