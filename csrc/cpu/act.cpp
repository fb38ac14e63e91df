// Activations and softmax on the CPU. Elementwise loops are split into contiguous chunks that
// OpenMP spreads over threads only above a size threshold (small arrays do not pay the fork).
// Selects and float32 exp/expm1/tanh are written so gcc -O3 vectorises the loops without
// -ffast-math; float64 and log1p (softplus forward) call libm. Scalar arguments are rounded to
// T first, as PyTorch does, and float32 softmax sums are accumulated in double. Contiguous
// float32 softmax rows have their own AVX-512 loop (softmax_row_avx512).
#include "act.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/exp_avx512.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/vmath.h"

namespace fc {
namespace {

// Below these sizes a loop runs on the calling thread: a memory-bound loop needs ~64K elements
// to amortise waking the team, a loop that evaluates exp/tanh per element fewer.
constexpr int64_t kCheapGrain = int64_t(1) << 16;
constexpr int64_t kMathGrain = int64_t(1) << 14;

// body(i0, i1) over [0, n): one call below grain, else one chunk per thread.
template <typename F>
void for_chunks(int64_t n, int64_t grain, F body) {
  const int threads = max_threads();
  if (n < grain || threads == 1) {
    body(int64_t(0), n);
    return;
  }
  // Chunks are whole cache lines so that no two threads write the same line.
  const int64_t chunk = ceil_div(ceil_div(n, threads), 64) * 64;
  const int64_t items = ceil_div(n, chunk);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t c = 0; c < items; ++c) body(c * chunk, std::min(n, (c + 1) * chunk));
}

// The CPU's math for the formulas in act.h (act::<op><CpuMath, T>).
struct CpuMath {
  template <typename T> static FC_INLINE T select(bool c, T a, T b) { return fc::select(c, a, b); }
  template <typename T> static FC_INLINE T exp(T x) { return exp_of(x); }
  template <typename T> static FC_INLINE T expm1(T x) { return expm1_of(x); }
  template <typename T> static FC_INLINE T tanh(T x) { return tanh_of(x); }
  template <typename T> static FC_INLINE T erf(T x) { return std::erf(x); }
  template <typename T> static FC_INLINE T log1p_exp(T x) { return std::log1p(std::exp(x)); }
};

#ifdef FC_ISA_X86
#define FC_AVX512 FC_TARGET_AVX512

// tanh_of (vmath.h) on K vectors of 16 floats, operation for operation, so the bits are the
// same (checked over every float32). GCC's vectorisation of tanh_of takes ~30 instructions a
// vector on the two ports that run AVX-512 (a compare and a blend for the clamp, 2^n from
// integer shifts), this 22; and each step here runs on all K vectors before the next: one
// vector's chain of ~90 cycles of dependent steps left the out-of-order window short of
// independent work. 64x6x28x28 on one thread: 115 -> 97 us.
template <int K>
FC_AVX512 inline void tanh16(__m512* x) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
  __m512 v[K], n[K], r[K], p[K];
  for (int k = 0; k < K; ++k) {
    const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x[k]), abs_mask));
    // min(9, a) keeps a NaN a (vminps returns its second operand when either is NaN).
    v[k] = _mm512_mul_ps(splat16(2.0f), _mm512_maskz_min_ps(0xFFFF, splat16(9.0f), a));
  }
  for (int k = 0; k < K; ++k) {
    n[k] = _mm512_sub_ps(_mm512_fmadd_ps(v[k], splat16(1.44269504088896341f), splat16(12582912.0f)),
                         splat16(12582912.0f));
  }
  for (int k = 0; k < K; ++k) r[k] = _mm512_fnmadd_ps(n[k], splat16(0.693359375f), v[k]);
  for (int k = 0; k < K; ++k) r[k] = _mm512_fnmadd_ps(n[k], splat16(-2.12194440e-4f), r[k]);
  for (int k = 0; k < K; ++k) p[k] = splat16(1.9875691500e-4f);
  for (const float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f,
                        5.0000001201e-1f}) {
    for (int k = 0; k < K; ++k) p[k] = _mm512_fmadd_ps(p[k], r[k], splat16(c));
  }
  for (int k = 0; k < K; ++k) p[k] = _mm512_fmadd_ps(_mm512_mul_ps(p[k], r[k]), r[k], r[k]);
  for (int k = 0; k < K; ++k) {
    const __m512 s = _mm512_maskz_scalef_ps(0xFFFF, splat16(1.0f), n[k]);
    p[k] = _mm512_fmadd_ps(s, p[k], _mm512_sub_ps(s, splat16(1.0f)));
  }
  for (int k = 0; k < K; ++k) p[k] = _mm512_div_ps(p[k], _mm512_add_ps(p[k], splat16(2.0f)));
  // t | (x & ~abs_mask): x's sign put back.
  for (int k = 0; k < K; ++k) {
    x[k] = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
        _mm512_castps_si512(p[k]), _mm512_castps_si512(x[k]), abs_mask, 0xF4));
  }
}

// tanh16 under AVX2: 8 floats a vector, 2^n from the exponent bits as tanh_of builds it (no
// vscalefps), the clamp by vminps, the sign by and/or. The same bits as tanh_of again.
#define FC_AVX2 FC_TARGET_AVX2

FC_AVX2 inline __m256 splat8(float v) { return _mm256_set1_ps(v); }

template <int K>
FC_AVX2 inline void tanh8(__m256* x) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 v[K], n[K], r[K], p[K];
  __m256i e[K];
  for (int k = 0; k < K; ++k) {
    // min(9, a) keeps a NaN a (vminps returns its second operand when either is NaN).
    v[k] = _mm256_mul_ps(splat8(2.0f), _mm256_min_ps(splat8(9.0f), _mm256_and_ps(x[k], abs_mask)));
  }
  for (int k = 0; k < K; ++k) {
    const __m256 nb = _mm256_fmadd_ps(v[k], splat8(1.44269504088896341f), splat8(12582912.0f));
    e[k] = _mm256_sub_epi32(_mm256_castps_si256(nb), _mm256_set1_epi32(0x4B400000 - 127));
    n[k] = _mm256_sub_ps(nb, splat8(12582912.0f));
  }
  for (int k = 0; k < K; ++k) r[k] = _mm256_fnmadd_ps(n[k], splat8(0.693359375f), v[k]);
  for (int k = 0; k < K; ++k) r[k] = _mm256_fnmadd_ps(n[k], splat8(-2.12194440e-4f), r[k]);
  for (int k = 0; k < K; ++k) p[k] = splat8(1.9875691500e-4f);
  for (const float q : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f,
                        5.0000001201e-1f}) {
    for (int k = 0; k < K; ++k) p[k] = _mm256_fmadd_ps(p[k], r[k], splat8(q));
  }
  for (int k = 0; k < K; ++k) p[k] = _mm256_fmadd_ps(_mm256_mul_ps(p[k], r[k]), r[k], r[k]);
  for (int k = 0; k < K; ++k) {
    const __m256 s = _mm256_castsi256_ps(_mm256_slli_epi32(e[k], 23));
    p[k] = _mm256_fmadd_ps(s, p[k], _mm256_sub_ps(s, splat8(1.0f)));
  }
  for (int k = 0; k < K; ++k) p[k] = _mm256_div_ps(p[k], _mm256_add_ps(p[k], splat8(2.0f)));
  for (int k = 0; k < K; ++k) x[k] = _mm256_or_ps(p[k], _mm256_andnot_ps(abs_mask, x[k]));
}

FC_AVX2 void tanh_avx2(float* y, const float* x, int64_t n) {
  constexpr int K = 4;
  int64_t i = 0;
  for (; i + 8 * K <= n; i += 8 * K) {
    __m256 v[K];
    for (int k = 0; k < K; ++k) v[k] = _mm256_loadu_ps(x + i + 8 * k);
    tanh8<K>(v);
    for (int k = 0; k < K; ++k) _mm256_storeu_ps(y + i + 8 * k, v[k]);
  }
  for (; i < n; i += 8) {
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(std::min<int64_t>(n - i, 8))),
                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 v = _mm256_maskload_ps(x + i, m);
    tanh8<1>(&v);
    _mm256_maskstore_ps(y + i, m, v);
  }
}

FC_AVX512 void tanh_avx512(float* y, const float* x, int64_t n) {
  constexpr int K = 4;
  int64_t i = 0;
  for (; i + 16 * K <= n; i += 16 * K) {
    __m512 v[K];
    for (int k = 0; k < K; ++k) v[k] = _mm512_loadu_ps(x + i + 16 * k);
    tanh16<K>(v);
    for (int k = 0; k < K; ++k) _mm512_storeu_ps(y + i + 16 * k, v[k]);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = __mmask16(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    tanh16<1>(&v);
    _mm512_mask_storeu_ps(y + i, m, v);
  }
}
#endif

// The elementwise twins' loops: f an act::<op><CpuMath, T>.
template <typename T, typename F>
void map_forward(T* out, const T* inp, int64_t n, F f) {
  for_chunks(n, F::kCheap ? kCheapGrain : kMathGrain, [=](int64_t i0, int64_t i1) {
#ifdef FC_ISA_X86
    if constexpr (std::is_same_v<F, act::tanh<CpuMath, float>>) {
      if (cpu_isa() == CpuIsa::avx512) return tanh_avx512(out + i0, inp + i0, i1 - i0);
      if (cpu_isa() == CpuIsa::avx2) return tanh_avx2(out + i0, inp + i0, i1 - i0);
    }
#endif
    with_isa([&] {
      for (int64_t i = i0; i < i1; ++i) out[i] = f.forward(inp[i]);
    });
  });
}

template <typename T, typename F>
void map_backward(T* dinp, const T* dout, const T* inp, int64_t n, F f) {
  for_chunks(n, F::kCheap ? kCheapGrain : kMathGrain, [=](int64_t i0, int64_t i1) {
    with_isa([&] {
      for (int64_t i = i0; i < i1; ++i) {
        const T g = dout[i];
        dinp[i] = f.backward(g, inp[i]);
      }
    });
  });
}

// From the forward's output (a cheap loop), else recomputing it from the input.
template <typename T, typename F>
void map_backward_from_output(T* dinp, const T* dout, const T* out, const T* inp, int64_t n,
                              F f) {
  if (out) {
    for_chunks(n, kCheapGrain, [=](int64_t i0, int64_t i1) {
      with_isa([&] {
        for (int64_t i = i0; i < i1; ++i) dinp[i] = f.grad(dout[i], out[i]);
      });
    });
    return;
  }
  for_chunks(n, kMathGrain, [=](int64_t i0, int64_t i1) {
    with_isa([&] {
      for (int64_t i = i0; i < i1; ++i) {
        const T y = f.forward(inp[i]);
        dinp[i] = f.grad(dout[i], y);
      }
    });
  });
}

// Softmax over a strided dim handles this many inner positions per work item: the running
// max and sum of each lane live in small arrays and the loops over lanes read contiguously.
constexpr int64_t kLanes = 64;

// sum(a[0:D]) and sum(a[0:D] * b[0:D]) in double with 16 interleaved partial sums: a fixed
// order, and short dependency chains (vector registers of them) instead of one long one.
constexpr int64_t kSumLanes = 16;

template <typename T>
double lanes_total(const double* s, int64_t d, int64_t D, const T* a, const T* b) {
  double t = 0;
  for (int64_t j = 0; j < kSumLanes; ++j) t += s[j];
  for (; d < D; ++d) t += b ? double(a[d]) * double(b[d]) : double(a[d]);
  return t;
}

template <typename T>
double sum_of(const T* a, int64_t D) {
  double s[kSumLanes] = {};
  int64_t d = 0;
  for (; d + kSumLanes <= D; d += kSumLanes) {
    for (int64_t j = 0; j < kSumLanes; ++j) s[j] += double(a[d + j]);
  }
  return lanes_total<T>(s, d, D, a, nullptr);
}

template <typename T>
double dot_of(const T* a, const T* b, int64_t D) {
  double s[kSumLanes] = {};
  int64_t d = 0;
  for (; d + kSumLanes <= D; d += kSumLanes) {
    for (int64_t j = 0; j < kSumLanes; ++j) s[j] += double(a[d + j]) * double(b[d + j]);
  }
  return lanes_total(s, d, D, a, b);
}

// float rows: the products go into float lanes over blocks of kDotBlock elements (8 products a
// lane), then the lanes into double. Products converted to double (two conversions per 8)
// bound softmax's backward under AVX2 on two threads, 1.2x PyTorch's time there; float lanes
// are what PyTorch sums in, whole rows of them.
constexpr int64_t kDotBlock = 8 * kSumLanes;

template <>
double dot_of(const float* a, const float* b, int64_t D) {
  double s[kSumLanes] = {};
  int64_t d = 0;
  while (d + kSumLanes <= D) {
    float f[kSumLanes] = {};
    for (const int64_t d1 = std::min(D, d + kDotBlock); d + kSumLanes <= d1; d += kSumLanes) {
      for (int64_t j = 0; j < kSumLanes; ++j) f[j] += a[d + j] * b[d + j];
    }
    for (int64_t j = 0; j < kSumLanes; ++j) s[j] += double(f[j]);
  }
  return lanes_total(s, d, D, a, b);
}

// max(-inf, x[0:n]) in independent lanes: one running maximum is a chain of dependent
// compares, about 4 cycles per element, most of a softmax row's time. The lanes are a GCC
// vector of one register (64 bytes under AVX-512, 32 otherwise: written as an array of lanes,
// gcc kept the loop scalar, and as a 64-byte vector it went through the stack under AVX2,
// softmax's forward at 1.8x PyTorch's time there). NaN is never taken (a row holding one gives
// NaN through x - max anyway).
template <typename T, typename Lanes>
T max_in_lanes(const T* x, int64_t n) {
  constexpr int64_t L = sizeof(Lanes) / sizeof(T);
  // Two vectors of them, so that two compare chains overlap.
  Lanes m0, m1;
  for (int64_t j = 0; j < L; ++j) m0[j] = m1[j] = -std::numeric_limits<T>::infinity();
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    Lanes v0, v1;
    std::memcpy(&v0, x + i, sizeof v0);
    std::memcpy(&v1, x + i + L, sizeof v1);
    m0 = v0 > m0 ? v0 : m0;
    m1 = v1 > m1 ? v1 : m1;
  }
  T r = -std::numeric_limits<T>::infinity();
  for (; i < n; ++i) r = select(x[i] > r, x[i], r);
  for (int64_t j = 0; j < L; ++j) {
    r = select(m0[j] > r, m0[j], r);
    r = select(m1[j] > r, m1[j], r);
  }
  return r;
}

template <typename T>
T max_of(const T* x, int64_t n) {
  typedef T Wide __attribute__((vector_size(64)));
  typedef T Narrow __attribute__((vector_size(32)));
  return cpu_isa() == CpuIsa::avx512 ? max_in_lanes<T, Wide>(x, n)
                                     : max_in_lanes<T, Narrow>(x, n);
}

// One row (inner == 1). exp(x - m) goes through y first so that the exp loop vectorises apart
// from the double sum.
template <typename T, bool Log>
void softmax_row(T* y, const T* x, int64_t D) {
  const T m = max_of(x, D);
  // A row of -inf (or one holding +inf or NaN) gives x - m = NaN, hence NaN out, as PyTorch.
  for (int64_t d = 0; d < D; ++d) y[d] = exp_of(x[d] - m);
  const double s = sum_of(y, D);
  if (Log) {
    const double ls = std::log(s);
    for (int64_t d = 0; d < D; ++d) y[d] = T((x[d] - m) - ls);
  } else {
    // In T, as PyTorch scales: one more rounding (of 1 / s) than a double product, a third
    // of the loop's instructions.
    const T inv = T(1.0 / s);
    for (int64_t d = 0; d < D; ++d) y[d] = y[d] * inv;
  }
}

#ifdef FC_ISA_X86
// float32 rows (inner == 1) under AVX-512, in intrinsics: softmax_row's loops as GCC
// vectorised them spent a third of a 1000-class row outside the exponentials (a max reduced
// lane by lane, a sum loop and a scale loop over y), and the exponentials took 28
// instructions a vector where exp_nonpositive (exp_avx512.h) takes 20.

// s += the 16 lanes of v in double, 8 to each of the two accumulators.
FC_AVX512 inline void add_wide(__m512d& s0, __m512d& s1, __m512 v) {
  s0 = _mm512_add_pd(s0, _mm512_maskz_cvtps_pd(0xFF, _mm512_extractf32x8_ps(v, 0)));
  s1 = _mm512_add_pd(s1, _mm512_maskz_cvtps_pd(0xFF, _mm512_extractf32x8_ps(v, 1)));
}

// The lanes' sum and max, through memory (once per row).
FC_AVX512 inline double total(__m512d s0, __m512d s1) {
  alignas(64) double t[8];
  _mm512_store_pd(t, _mm512_add_pd(s0, s1));
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

FC_AVX512 inline float lanes_max(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float m = t[0];
  for (int j = 1; j < 16; ++j) m = t[j] > m ? t[j] : m;
  return m;
}

// softmax_row<float, false>: the max in four chains, then exp(x - max) stored and summed in
// double in one pass, then y scaled by 1 / sum rounded to float, as softmax_row does.
FC_AVX512 void softmax_row_avx512(float* y, const float* x, int64_t D) {
  constexpr int64_t W = 16;
  const int64_t full = D / W * W;
  const __mmask16 tail = __mmask16((1u << (D - full)) - 1);
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  // vmaxps(v, m) keeps m where v is NaN: NaN is never taken (a row holding one gives NaN
  // through x - max anyway).
  __m512 m[4] = {ninf, ninf, ninf, ninf};
  int64_t d = 0;
  for (; d + 4 * W <= D; d += 4 * W) {
    for (int k = 0; k < 4; ++k) {
      m[k] = _mm512_maskz_max_ps(0xFFFF, _mm512_loadu_ps(x + d + k * W), m[k]);
    }
  }
  for (; d < full; d += W) m[0] = _mm512_maskz_max_ps(0xFFFF, _mm512_loadu_ps(x + d), m[0]);
  m[1] = _mm512_mask_max_ps(m[1], tail, _mm512_maskz_loadu_ps(tail, x + full), m[1]);
  const __m512 mv = _mm512_set1_ps(lanes_max(_mm512_maskz_max_ps(
      0xFFFF, _mm512_maskz_max_ps(0xFFFF, m[0], m[1]), _mm512_maskz_max_ps(0xFFFF, m[2], m[3]))));
  __m512d s0 = _mm512_setzero_pd(), s1 = s0;
  for (d = 0; d < full; d += W) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(x + d), mv));
    _mm512_storeu_ps(y + d, e);
    add_wide(s0, s1, e);
  }
  if (tail) {
    const __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + d), mv);
    const __m512 e = _mm512_maskz_mov_ps(tail, exp_nonpositive(v));
    _mm512_mask_storeu_ps(y + d, tail, e);
    add_wide(s0, s1, e);
  }
  const __m512 inv = _mm512_set1_ps(float(1.0 / total(s0, s1)));
  for (d = 0; d < full; d += W) {
    _mm512_storeu_ps(y + d, _mm512_mul_ps(_mm512_loadu_ps(y + d), inv));
  }
  if (tail) {
    _mm512_mask_storeu_ps(y + d, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + d), inv));
  }
}

// softmax_backward_row<float, false>: sum(g * y) in dot_of<float>'s scheme, float lanes over
// blocks of 128 elements, then double lanes (the products converted to double, two conversions
// per 8 of them, had bound the row on two threads), here in two chains of 16 lanes added
// together per block and a last partial vector in float, so the bits are this variant's own;
// then dx = y * (g - sum) in float.
FC_AVX512 void softmax_backward_row_avx512(float* dx, const float* g, const float* y, int64_t D) {
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  int64_t d = 0;
  while (d + 16 <= D) {
    __m512 f0 = _mm512_setzero_ps(), f1 = _mm512_setzero_ps();
    const int64_t d1 = std::min(D, d + 128);
    for (; d + 32 <= d1; d += 32) {
      f0 = _mm512_fmadd_ps(_mm512_loadu_ps(g + d), _mm512_loadu_ps(y + d), f0);
      f1 = _mm512_fmadd_ps(_mm512_loadu_ps(g + d + 16), _mm512_loadu_ps(y + d + 16), f1);
    }
    if (d + 16 <= d1) {
      f0 = _mm512_fmadd_ps(_mm512_loadu_ps(g + d), _mm512_loadu_ps(y + d), f0);
      d += 16;
    }
    add_wide(s0, s1, _mm512_add_ps(f0, f1));
  }
  if (d < D) {
    const __mmask16 m = __mmask16((1u << (D - d)) - 1);
    add_wide(s0, s1,
             _mm512_mul_ps(_mm512_maskz_loadu_ps(m, g + d), _mm512_maskz_loadu_ps(m, y + d)));
  }
  const __m512 st = _mm512_set1_ps(float(total(s0, s1)));
  for (d = 0; d + 16 <= D; d += 16) {
    const __m512 v = _mm512_sub_ps(_mm512_loadu_ps(g + d), st);
    _mm512_storeu_ps(dx + d, _mm512_mul_ps(_mm512_loadu_ps(y + d), v));
  }
  if (d < D) {
    const __mmask16 m = __mmask16((1u << (D - d)) - 1);
    const __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, g + d), st);
    _mm512_mask_storeu_ps(dx + d, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, y + d), v));
  }
}
#endif

// Lanes [0, L) of one outer slice; element (d, j) is at d * inner + j.
template <typename T, bool Log>
void softmax_lanes(T* y, const T* x, int64_t D, int64_t inner, int64_t L) {
  T m[kLanes];
  double s[kLanes];
  std::fill(m, m + L, -std::numeric_limits<T>::infinity());
  std::fill(s, s + L, 0.0);
  for (int64_t d = 0; d < D; ++d) {
    const T* xd = x + d * inner;
    for (int64_t j = 0; j < L; ++j) m[j] = xd[j] > m[j] ? xd[j] : m[j];
  }
  for (int64_t d = 0; d < D; ++d) {
    const T* xd = x + d * inner;
    T* yd = y + d * inner;
    for (int64_t j = 0; j < L; ++j) {
      const T e = exp_of(xd[j] - m[j]);
      if (!Log) yd[j] = e;
      s[j] += e;
    }
  }
  for (int64_t j = 0; j < L; ++j) s[j] = Log ? std::log(s[j]) : 1.0 / s[j];
  for (int64_t d = 0; d < D; ++d) {
    const T* xd = x + d * inner;
    T* yd = y + d * inner;
    if (Log) {
      for (int64_t j = 0; j < L; ++j) yd[j] = T((xd[j] - m[j]) - s[j]);
    } else {
      for (int64_t j = 0; j < L; ++j) yd[j] = T(yd[j] * s[j]);
    }
  }
}

// softmax: dx = y * (g - sum(g * y)); log_softmax: dx = g - exp(y) * sum(g).
template <typename T, bool Log>
void softmax_backward_row(T* dx, const T* g, const T* y, int64_t D) {
  const T st = T(Log ? sum_of(g, D) : dot_of(g, y, D));
  if (Log) {
    for (int64_t d = 0; d < D; ++d) dx[d] = g[d] - exp_of(y[d]) * st;
  } else {
    for (int64_t d = 0; d < D; ++d) dx[d] = y[d] * (g[d] - st);
  }
}

template <typename T, bool Log>
void softmax_backward_lanes(T* dx, const T* g, const T* y, int64_t D, int64_t inner, int64_t L) {
  double s[kLanes];
  std::fill(s, s + L, 0.0);
  for (int64_t d = 0; d < D; ++d) {
    const T* gd = g + d * inner;
    const T* yd = y + d * inner;
    for (int64_t j = 0; j < L; ++j) s[j] += Log ? double(gd[j]) : double(gd[j]) * double(yd[j]);
  }
  T st[kLanes];
  for (int64_t j = 0; j < L; ++j) st[j] = T(s[j]);
  for (int64_t d = 0; d < D; ++d) {
    const T* gd = g + d * inner;
    const T* yd = y + d * inner;
    T* dd = dx + d * inner;
    if (Log) {
      for (int64_t j = 0; j < L; ++j) dd[j] = gd[j] - exp_of(yd[j]) * st[j];
    } else {
      for (int64_t j = 0; j < L; ++j) dd[j] = yd[j] * (gd[j] - st[j]);
    }
  }
}

// Work items are rows when D is the last dim (inner == 1), else blocks of kLanes inner
// positions of one outer slice; f(offset of the item's first element, lanes in it).
template <typename F>
void for_softmax_items(int64_t outer, int64_t D, int64_t inner, F f) {
  if (outer * D * inner == 0) return;
  const int64_t blocks = ceil_div(inner, kLanes), items = outer * blocks;
  auto item = [&](int64_t i) {
    const int64_t o = i / blocks, j0 = (i % blocks) * kLanes;
    f(o * D * inner + j0, std::min(kLanes, inner - j0));
  };
  const int threads = max_threads();
  if (outer * D * inner < kMathGrain || threads == 1 || items == 1) {
    for (int64_t i = 0; i < items; ++i) item(i);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < items; ++i) item(i);
}

template <typename T, bool Log>
void softmax_forward(T* out, const T* inp, int64_t outer, int64_t D, int64_t inner) {
  for_softmax_items(outer, D, inner, [&](int64_t off, int64_t L) {
    with_isa([&] {
#ifdef FC_ISA_X86
      if constexpr (std::is_same_v<T, float> && !Log) {
        if (inner == 1 && cpu_isa() == CpuIsa::avx512) {
          return softmax_row_avx512(out + off, inp + off, D);
        }
      }
#endif
      if (inner == 1) softmax_row<T, Log>(out + off, inp + off, D);
      else softmax_lanes<T, Log>(out + off, inp + off, D, inner, L);
    });
  });
}

template <typename T, bool Log>
void softmax_backward(T* dinp, const T* dout, const T* out, int64_t outer, int64_t D,
                      int64_t inner) {
  for_softmax_items(outer, D, inner, [&](int64_t off, int64_t L) {
    with_isa([&] {
#ifdef FC_ISA_X86
      if constexpr (std::is_same_v<T, float> && !Log) {
        if (inner == 1 && cpu_isa() == CpuIsa::avx512) {
          return softmax_backward_row_avx512(dinp + off, dout + off, out + off, D);
        }
      }
#endif
      if (inner == 1) softmax_backward_row<T, Log>(dinp + off, dout + off, out + off, D);
      else softmax_backward_lanes<T, Log>(dinp + off, dout + off, out + off, D, inner, L);
    });
  });
}

}  // namespace

// The elementwise twins, from the list in act.h.
#define FC_ACT_CPU_TWINS(X, T, op, bkind, decls, names)                                    \
  template <typename T>                                                                    \
  void op##_forward_cpu(T* out, const T* inp, int64_t n FC_ACT_UNPAREN decls) {             \
    map_forward(out, inp, n, act::op<CpuMath, T>(FC_ACT_UNPAREN names));                   \
  }                                                                                        \
  FC_ACT_CPU_BACKWARD_##bkind(T, op, decls, names)
#define FC_ACT_CPU_BACKWARD_ElementwiseGrad(T, op, decls, names)                           \
  template <typename T>                                                                    \
  void op##_backward_cpu(T* dinp, const T* dout, const T* inp,                             \
                         int64_t n FC_ACT_UNPAREN decls) {                                 \
    map_backward(dinp, dout, inp, n, act::op<CpuMath, T>(FC_ACT_UNPAREN names));           \
  }
#define FC_ACT_CPU_BACKWARD_ElementwiseGradOut(T, op, decls, names)                        \
  template <typename T>                                                                    \
  void op##_backward_cpu(T* dinp, const T* dout, const T* out, const T* inp,               \
                         int64_t n FC_ACT_UNPAREN decls) {                                 \
    map_backward_from_output(dinp, dout, out, inp, n,                                      \
                             act::op<CpuMath, T>(FC_ACT_UNPAREN names));                   \
  }
FC_ACT_ELEMENTWISE(FC_ACT_CPU_TWINS, X, T)

FC_SOFTMAX_TWINS(cpu)

FC_ACT_OPS(FC_INSTANTIATE_CPU, float)
FC_ACT_OPS(FC_INSTANTIATE_CPU, double)

}  // namespace fc
