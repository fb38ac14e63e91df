// Activations and softmax on the CPU. Elementwise loops are split into contiguous chunks that
// OpenMP spreads over threads only above a size threshold (small arrays do not pay the fork).
// Selects and float32 exp/expm1/tanh are written so gcc -O3 vectorises the loops without
// -ffast-math; float64 and log1p (softplus forward) call libm. Scalar arguments are rounded to
// T first, as PyTorch does, and float32 softmax sums are accumulated in double.
#include "act.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/isa.h"
#include "cpu/parallel.h"

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

// The vector loops below need these helpers inlined; with the module's link-time optimisation
// gcc otherwise may keep them as calls, and a call keeps a loop scalar.
#if defined(__GNUC__)
#define FC_INLINE inline __attribute__((always_inline))
#else
#define FC_INLINE inline
#endif

template <typename T> struct Bits;
template <> struct Bits<float> { using U = uint32_t; };
template <> struct Bits<double> { using U = uint64_t; };

// c ? a : b as a bit-mask blend of two computed values: gcc will not if-convert
// `c ? a : a * s` (under the default -ftrapping-math the product must not be speculated),
// so such a ternary keeps its loop scalar, while this blend vectorises.
template <typename T>
FC_INLINE T select(bool c, T a, T b) {
  using U = typename Bits<T>::U;
  U ua, ub;
  std::memcpy(&ua, &a, sizeof(T));
  std::memcpy(&ub, &b, sizeof(T));
  const U m = U(0) - U(c);
  const U r = (ua & m) | (ub & ~m);
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}

// 2^n for n in [-126, 127], built from its bit pattern.
FC_INLINE float pow2i(int32_t n) {
  const uint32_t u = uint32_t(n + 127) << 23;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// exp, expm1 and tanh: libm for double; for float, branch-free Cephes-style versions (within
// 2 ulp of the exact result, NaN/Inf/overflow/subnormals as libm) that gcc vectorises, where
// a libm call would keep the whole loop scalar.
FC_INLINE double exp_of(double x) { return std::exp(x); }
FC_INLINE double expm1_of(double x) { return std::expm1(x); }
FC_INLINE double tanh_of(double x) { return std::tanh(x); }

FC_INLINE float exp_of(float x) {
  constexpr float hi = 88.72283935546875f, lo = -103.97208404541015625f;
  float xc = select(x < lo, lo, x);
  xc = select(xc > hi, hi, xc);
  xc = select(x != x, 0.0f, xc);
  // round(xc / ln 2) by the 1.5 * 2^23 trick (exact for |v| < 2^22), then r = xc - n ln 2 in
  // two parts so that r keeps full precision.
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const int32_t ni = int32_t(n), n1 = ni >> 1;
  float y = e * pow2i(n1) * pow2i(ni - n1);
  y = select(x > hi, std::numeric_limits<float>::infinity(), y);
  y = select(x < lo, 0.0f, y);
  return select(x != x, x, y);
}

FC_INLINE float expm1_of(float x) {
  float t = 1.0f / 3628800;
  t = t * x + 1.0f / 362880;
  t = t * x + 1.0f / 40320;
  t = t * x + 1.0f / 5040;
  t = t * x + 1.0f / 720;
  t = t * x + 1.0f / 120;
  t = t * x + 1.0f / 24;
  t = t * x + 1.0f / 6;
  t = t * x + 0.5f;
  // Taylor series below 0.5 in magnitude, where exp(x) - 1 would cancel.
  const float small = (t * x) * x + x;
  const float big = exp_of(x) - 1.0f;
  return select(x == 0.0f, x, select(std::fabs(x) < 0.5f, small, big));
}

FC_INLINE float tanh_of(float x) {
  const float a = std::fabs(x), z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float big = 1.0f - 2.0f / (exp_of(2.0f * a) + 1.0f);
  const float r = select(a < 0.625f, small, select(x < 0.0f, -big, big));
  return select((x != x) | (x == 0.0f), x, r);
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

// The elementwise twins' loops: f an act::<op><CpuMath, T>.
template <typename T, typename F>
void map_forward(T* out, const T* inp, int64_t n, F f) {
  for_chunks(n, F::kCheap ? kCheapGrain : kMathGrain, [=](int64_t i0, int64_t i1) {
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

// sum(a[0:D]) in double with four interleaved partial sums: a fixed order, and short
// dependency chains instead of one long one.
template <typename T>
double sum_of(const T* a, int64_t D) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t d = 0;
  for (; d + 4 <= D; d += 4) {
    s0 += a[d];
    s1 += a[d + 1];
    s2 += a[d + 2];
    s3 += a[d + 3];
  }
  for (; d < D; ++d) s0 += a[d];
  return (s0 + s1) + (s2 + s3);
}

template <typename T>
double dot_of(const T* a, const T* b, int64_t D) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t d = 0;
  for (; d + 4 <= D; d += 4) {
    s0 += double(a[d]) * double(b[d]);
    s1 += double(a[d + 1]) * double(b[d + 1]);
    s2 += double(a[d + 2]) * double(b[d + 2]);
    s3 += double(a[d + 3]) * double(b[d + 3]);
  }
  for (; d < D; ++d) s0 += double(a[d]) * double(b[d]);
  return (s0 + s1) + (s2 + s3);
}

// One row (inner == 1). exp(x - m) goes through y first so that the exp loop vectorises apart
// from the double sum.
template <typename T, bool Log>
void softmax_row(T* y, const T* x, int64_t D) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t d = 0; d < D; ++d) m = x[d] > m ? x[d] : m;
  // A row of -inf (or one holding +inf or NaN) gives x - m = NaN, hence NaN out, as PyTorch.
  for (int64_t d = 0; d < D; ++d) y[d] = exp_of(x[d] - m);
  const double s = sum_of(y, D);
  if (Log) {
    const double ls = std::log(s);
    for (int64_t d = 0; d < D; ++d) y[d] = T((x[d] - m) - ls);
  } else {
    const double inv = 1.0 / s;
    for (int64_t d = 0; d < D; ++d) y[d] = T(y[d] * inv);
  }
}

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

template <typename T>
void softmax_forward_cpu(T* out, const T* inp, int64_t outer, int64_t D, int64_t inner) {
  softmax_forward<T, false>(out, inp, outer, D, inner);
}

template <typename T>
void softmax_backward_cpu(T* dinp, const T* dout, const T* out, int64_t outer, int64_t D,
                          int64_t inner) {
  softmax_backward<T, false>(dinp, dout, out, outer, D, inner);
}

template <typename T>
void log_softmax_forward_cpu(T* out, const T* inp, int64_t outer, int64_t D, int64_t inner) {
  softmax_forward<T, true>(out, inp, outer, D, inner);
}

template <typename T>
void log_softmax_backward_cpu(T* dinp, const T* dout, const T* out, int64_t outer, int64_t D,
                              int64_t inner) {
  softmax_backward<T, true>(dinp, dout, out, outer, D, inner);
}

FC_ACT_OPS(FC_INSTANTIATE_CPU, float)
FC_ACT_OPS(FC_INSTANTIATE_CPU, double)

}  // namespace fc
