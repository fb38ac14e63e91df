// Losses on the CPU. Every op works on "items": rows of logits (one sample, or one spatial
// position of one sample, whose C classes lie S elements apart). OpenMP splits the items once
// the work passes kParallelWork elements. Reductions sum blocks of about kBlockWork elements in
// double, then the blocks in order, so the result is the same for any thread count. The
// arithmetic follows torch's formulas term by term, so NaN and +-Inf propagate as they do there.
// Contiguous float32 softmax rows use a 16- and 4-lane exp, compiled per instruction set: items
// run through with_isa (isa.h).
#include "loss.h"

// Wide float vectors cross inlined calls (exp_lanes) in every variant's copy of the row loops;
// only the copy built for them runs (with_lanes below), so their ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/exp_avx512.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/vmath.h"

namespace fc {
namespace {

constexpr int64_t kParallelWork = int64_t(1) << 15;  // elements below which one thread is faster
constexpr int64_t kBlockWork = 8192;                 // elements per partial sum of a reduction

// Sum of f(i) for i in [0, M) (V: double or a struct of doubles with +=), where each f(i) reads
// `cost` elements: deterministic, see the file header. The block size depends on the sizes only.
template <typename V, typename F>
V ordered_sum(int64_t M, int64_t cost, F f) {
  const int64_t block = std::max<int64_t>(1, kBlockWork / std::max<int64_t>(1, cost));
  const int64_t blocks = ceil_div(M, block);
  auto part = alloc_vector<V>(blocks, "loss_cpu: partial sums of a reduction");
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (M * cost >= kParallelWork)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t i1 = std::min(M, (b + 1) * block);
    V s{};
    with_isa([&] {
      for (int64_t i = b * block; i < i1; ++i) s += f(i);
    });
    part[b] = s;
  }
  V s{};
  for (const V& p : part) s += p;
  return s;
}

// Runs f(i) for i in [0, M), `work` elements in all, in blocks of about kBlockWork elements
// (each through with_isa), in parallel when the work is large enough.
template <typename F>
void for_items(int64_t M, int64_t work, F f) {
  const int64_t cost = std::max<int64_t>(1, work / std::max<int64_t>(1, M));
  const int64_t block = std::max<int64_t>(1, kBlockWork / cost);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (work >= kParallelWork)
  for (int64_t b = 0; b < ceil_div(M, block); ++b) {
    const int64_t i1 = std::min(M, (b + 1) * block);
    with_isa([&] {
      for (int64_t i = b * block; i < i1; ++i) f(i);
    });
  }
}

// Contiguous rows go a register's width at a time (16 lanes under AVX-512, 8 under AVX2), then
// 4, then one, as GCC/Clang float vectors through vmath.h's exp_lanes (the exp the activations
// use, lane for lane): written as scalar loops, the row's reductions kept them scalar.
using f4 = float __attribute__((vector_size(16)));
using f8 = float __attribute__((vector_size(32)));
using f16 = float __attribute__((vector_size(64)));

// Calls f(V{}) with V the float vector of one register of the variant in use. Called inside
// with_isa's copy for that variant (items run through it), so the wide types meet only code
// compiled for them; the other copies hold them too, never run (the -Wpsabi at the top).
template <typename F>
void with_lanes(F f) {
  switch (cpu_isa()) {
    case CpuIsa::avx512: return f(f16{});
    case CpuIsa::avx2: return f(f8{});
    default: return f(f4{});
  }
}

template <typename V>
constexpr int kLanesOf = int(sizeof(V) / sizeof(float));

template <typename V>
inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename V>
inline void store(float* p, V v) { std::memcpy(p, &v, sizeof v); }

// Scalar exp: float goes through exp_lanes so every path of a kernel rounds alike.
inline float exp_(float x) { return exp_lanes(f4{x, x, x, x})[0]; }
inline double exp_(double x) { return std::exp(x); }

// Calls f(stride): a compile-time 1 (One) when the classes are contiguous (S == 1), so those
// loops vectorise, else S.
using One = std::integral_constant<int64_t, 1>;
template <typename F>
void with_stride(int64_t S, F f) {
  if (S == 1) {
    f(One{});
  } else {
    f(S);
  }
}

// The log-sum-exp of one row x[c * st], c < C, as max + log(sum exp(x - max)): no overflow for
// any finite logits. A row of -inf, or with +inf or NaN, gives NaN, as log_softmax does.
template <typename T>
struct LogSumExp {
  T max;
  double log_sum;
  double value() const { return double(max) + log_sum; }
  // softmax of one entry; x - max is exact for nearby values, so float32 keeps its precision
  T prob(T x) const { return exp_(T(x - max) - T(log_sum)); }
};

// sum_c exp(x[c * st] - m), accumulated in double.
template <typename T, typename St>
double sum_exp(const T* x, int64_t C, St st, T m) {
  double s = 0;
  for (int64_t c = 0; c < C; ++c) s += double(exp_(T(x[c * st] - m)));
  return s;
}

// exp of lanes that are <= 0 (or NaN): under AVX-512 (V = f16, which only the AVX-512
// variant runs) exp_nonpositive, the same bits in 20 instructions a vector rather than 28.
template <typename V>
inline V exp_nonpositive_lanes(V x) {
#ifdef FC_EXP_AVX512
  if constexpr (sizeof(V) == 64) return V(exp_nonpositive(__m512(x)));
#endif
  return exp_lanes(x);
}

// Contiguous float rows, from class c on, V's lanes at a time while a whole V remains: the
// lanes add in float over blocks of 256 classes (relative error below 1e-5 even then, the terms
// lying in [0, 1]), the blocks in double. Advances c past the classes it added.
// With keep, the exponentials are also stored there (keep[c] for x[c]).
template <typename V>
double sum_exp_lanes(const float* x, int64_t& c, int64_t C, float m, float* keep) {
  constexpr int W = kLanesOf<V>;
  double s = 0;
  while (c + W <= C) {
    V acc = V{} + 0.0f;
    for (const int64_t c1 = std::min(C - (W - 1), c + 256); c < c1; c += W) {
      const V e = exp_nonpositive_lanes(load<V>(x + c) - m);
      if (keep) store(keep + c, e);
      acc += e;
    }
    for (int k = 0; k < W; ++k) s += double(acc[k]);
  }
  return s;
}

inline double sum_exp(const float* x, int64_t C, One, float m,
                      float* keep = nullptr) {
  int64_t c = 0;
  double s = 0;
  with_lanes([&](auto v) { s = sum_exp_lanes<decltype(v)>(x, c, C, m, keep); });
  s += sum_exp_lanes<f4>(x, c, C, m, keep);
  for (; c < C; ++c) {
    const float e = exp_(x[c] - m);
    if (keep) keep[c] = e;
    s += double(e);
  }
  return s;
}

// max_c x[c * st]. A NaN is kept only if it is x[0], but a NaN anywhere makes the sum of
// exponentials NaN, which is what matters.
template <typename T, typename St>
T row_max(const T* x, int64_t C, St st) {
  T m = x[0];
  for (int64_t c = 1; c < C; ++c) m = x[c * st] > m ? x[c * st] : m;
  return m;
}

// Four chains of compares (v > m ? v : m, a max instruction): one chain of compare and blend
// was a dependency five cycles long per vector, a quarter of a 1000-class row's backward.
template <typename V>
void row_max_lanes(const float* x, int64_t& c, int64_t C, float& m) {
  constexpr int W = kLanesOf<V>;
  if (c + W > C) return;
  V mv[4];
  for (V& v : mv) v = V{} + m;
  for (; c + 4 * W <= C; c += 4 * W) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const V v = load<V>(x + c + k * W);
      mv[k] = v > mv[k] ? v : mv[k];
    }
  }
  for (; c + W <= C; c += W) {
    const V v = load<V>(x + c);
    mv[0] = v > mv[0] ? v : mv[0];
  }
  const V a = mv[0] > mv[1] ? mv[0] : mv[1], b = mv[2] > mv[3] ? mv[2] : mv[3];
  const V v = a > b ? a : b;
  for (int k = 0; k < W; ++k) m = v[k] > m ? v[k] : m;
}

inline float row_max(const float* x, int64_t C, One) {
  float m = x[0];
  int64_t c = 0;
  with_lanes([&](auto v) { row_max_lanes<decltype(v)>(x, c, C, m); });
  row_max_lanes<f4>(x, c, C, m);
  for (; c < C; ++c) m = x[c] > m ? x[c] : m;
  return m;
}

template <typename T, typename St>
LogSumExp<T> log_sum_exp(const T* x, int64_t C, St st) {
  const T m = row_max(x, C, st);
  return {m, std::log(sum_exp(x, C, st, m))};
}

// dx[c * st] = -kk w_c - softmax_c sa for every class (w_c = 1 without weights, kk = 0 without
// label smoothing): cross_entropy's gradient before the target's entry is fixed.
template <typename T, typename St>
void softmax_grad(T* dx, const T* x, int64_t C, St st, const LogSumExp<T>& lse, T sa, T kk,
                  const T* weight) {
  for (int64_t c = 0; c < C; ++c) {
    dx[c * st] = -(kk * (weight ? weight[c] : T(1))) - lse.prob(x[c * st]) * sa;
  }
}

template <typename V>
void softmax_grad_lanes(float* dx, const float* x, int64_t& c, int64_t C, float m, float ls,
                        float sa, float kk, const float* weight) {
  for (; c + kLanesOf<V> <= C; c += kLanesOf<V>) {
    const V w = weight ? load<V>(weight + c) : V{} + 1.0f;
    store(dx + c, -(kk * w) - exp_nonpositive_lanes((load<V>(x + c) - m) - ls) * sa);
  }
}

inline void softmax_grad(float* dx, const float* x, int64_t C, One,
                         const LogSumExp<float>& lse, float sa, float kk, const float* weight) {
  const float m = lse.max, ls = float(lse.log_sum);
  int64_t c = 0;
  with_lanes([&](auto v) { softmax_grad_lanes<decltype(v)>(dx, x, c, C, m, ls, sa, kk, weight); });
  softmax_grad_lanes<f4>(dx, x, c, C, m, ls, sa, kk, weight);
  for (; c < C; ++c) dx[c] = -(kk * (weight ? weight[c] : 1.0f)) - lse.prob(x[c]) * sa;
}

template <typename V>
void scaled_grad_lanes(float* dx, int64_t& c, int64_t C, float r, float sa, float kk,
                       const float* weight) {
  for (; c + kLanesOf<V> <= C; c += kLanesOf<V>) {
    const V w = weight ? load<V>(weight + c) : V{} + 1.0f;
    store(dx + c, -(kk * w) - (load<V>(dx + c) * r) * sa);
  }
}

// softmax_grad for a contiguous float row whose exp(x - max) are already in dx (sum_exp's
// keep) and sum to s: softmax_c = dx[c] * (1 / s), one exponential per class in all instead of
// one for the sum and one for the gradient.
inline void softmax_grad_kept(float* dx, int64_t C, float r, float sa, float kk,
                              const float* weight) {
  int64_t c = 0;
  with_lanes([&](auto v) { scaled_grad_lanes<decltype(v)>(dx, c, C, r, sa, kk, weight); });
  scaled_grad_lanes<f4>(dx, c, C, r, sa, kk, weight);
  for (; c < C; ++c) dx[c] = -(kk * (weight ? weight[c] : 1.0f)) - (dx[c] * r) * sa;
}

// Contiguous float rows of fewer than kShortRow classes (10-class heads) go kShortRow rows at
// a time, one row per lane of the variant's vectors: an exponential then serves a lane's worth
// of rows, where a row of its own took three 8-lane ones under AVX2 (one register and a
// 4-lane remainder, scalar calls past it) and a masked 16-lane one under AVX-512.
constexpr int64_t kShortRow = 16;

// Rows [0, n) of x (n <= kLanesOf<V>, C < kShortRow classes each), lane l holding row l (the
// last row again past n): m = each row's maximum, e[c] = exp(x_c - m), s = their sum, added in
// float in class order (terms in [0, 1], at most 15 of them).
template <typename V>
void short_rows(const float* x, int64_t C, int64_t n, V& m, V* e, V& s) {
  constexpr int W = kLanesOf<V>;
  if (C < 1) __builtin_unreachable();  // the binding refuses rows without classes
  alignas(64) float t[kShortRow][W];
  for (int l = 0; l < W; ++l) {
    const float* row = x + std::min<int64_t>(l, n - 1) * C;
    for (int64_t c = 0; c < C; ++c) t[c][l] = row[c];
  }
  // Two chains of compares (v > m ? v : m: a max instruction) for the even and odd classes: a
  // NaN or +-inf anywhere makes the sum NaN whichever maximum a row ends with.
  V m1 = load<V>(t[0]);
  m = m1;
  for (int64_t c = 1; c < C; c += 2) {
    const V v = load<V>(t[c]);
    m = v > m ? v : m;
    if (c + 1 < C) {
      const V u = load<V>(t[c + 1]);
      m1 = u > m1 ? u : m1;
    }
  }
  m = m1 > m ? m1 : m;
  s = V{};
  for (int64_t c = 0; c < C; ++c) {
    e[c] = exp_nonpositive_lanes(load<V>(t[c]) - m);
    s += e[c];
  }
}

// f(first row, rows, m, e, s) for the rows [i0, i1) of an [M, C] float array, C < kShortRow,
// in short_rows' groups of the variant's lanes (inside with_isa's copy for it).
template <typename F>
void for_short_rows(const float* x, int64_t C, int64_t i0, int64_t i1, F f) {
  with_lanes([&](auto v) {
    using V = decltype(v);
    V m, s, e[kShortRow];
    for (int64_t i = i0; i < i1; i += kLanesOf<V>) {
      const int64_t n = std::min<int64_t>(kLanesOf<V>, i1 - i);
      short_rows<V>(x + i * C, C, n, m, e, s);
      f(i, n, m, e, s);
    }
  });
}

// Item i of an [N, C, S] array: the first class of sample i / S at position i % S.
template <typename T>
T* item(T* base, int64_t i, int64_t C, int64_t S) {
  return S == 1 ? base + i * C : base + (i / S) * C * S + i % S;
}

template <typename T>
double weight_sum(const T* weight, int64_t C) {
  if (!weight) return double(C);
  double s = 0;
  for (int64_t c = 0; c < C; ++c) s += double(weight[c]);
  return s;
}

// The 'mean' divisor of index targets: the summed class weights of the non-ignored items.
template <typename T>
double target_weight(const int64_t* target, const T* weight, int64_t M, int64_t ignore_index) {
  return ordered_sum<double>(M, 1, [&](int64_t i) {
    const int64_t t = target[i];
    return t == ignore_index ? 0.0 : weight ? double(weight[t]) : 1.0;
  });
}

// The two terms of torch's smoothed cross entropy, kept apart because torch reduces each before
// combining them: loss = (1 - eps) nll + eps / C smooth ('mean': each divided by the weight sum).
struct CeTerms {
  double nll = 0, smooth = 0;
  CeTerms& operator+=(const CeTerms& o) {
    nll += o.nll;
    smooth += o.smooth;
    return *this;
  }
  double loss(double eps, int64_t C, double divisor = 1) const {
    return loss_math::ce_loss(nll, smooth, eps, C, divisor);
  }
};

// One item with class index t (not ignored): nll = w_t (lse - x_t) and, only for eps > 0,
// smooth = sum_c w_c (lse - x_c).
template <typename T, typename St>
CeTerms ce_terms(double lse, const T* x, int64_t C, St st, int64_t t, const T* weight,
                 double eps) {
  CeTerms r;
  r.nll = (weight ? double(weight[t]) : 1.0) * (lse - double(x[t * st]));
  if (eps > 0) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < C; ++c) {
      s += (weight ? double(weight[c]) : 1.0) * (lse - double(x[c * st]));
    }
    r.smooth = s;
  }
  return r;
}

template <typename T, typename St>
CeTerms ce_item(const T* x, int64_t C, St st, int64_t t, const T* weight, double eps) {
  return ce_terms(log_sum_exp(x, C, st).value(), x, C, st, t, weight, eps);
}

// Cross entropy of one item with class probabilities y[c * st]:
// -sum_c (x_c - lse) y'_c w_c, with y' = (1 - eps) y + eps / C.
template <typename T>
double ce_prob_item(const T* x, const T* y, int64_t C, int64_t st, const T* weight, double eps) {
  const double lse = log_sum_exp(x, C, st).value();
  double s = 0;
  for (int64_t c = 0; c < C; ++c) {
    const double yc = loss_math::smoothed(double(y[c * st]), eps, C);
    s += (double(x[c * st]) - lse) * yc * (weight ? double(weight[c]) : 1.0);
  }
  return -s;
}

// The upstream gradient of item i: dout[i] for 'none', else the scalar, divided by the mean's
// divisor (0 / 0 and g / 0 give NaN and Inf, as in torch).
template <typename T>
double item_scale(const T* dout, int64_t i, Reduction r, double divisor) {
  if (r == Reduction::none) return double(dout[i]);
  return r == Reduction::mean ? double(dout[0]) / divisor : double(dout[0]);
}

template <typename T>
void store_reduced(T* out, double total, Reduction r, double divisor) {
  out[0] = T(r == Reduction::mean ? total / divisor : total);
}

}  // namespace

template <typename T>
void cross_entropy_forward_cpu(T* out, const T* inp, const int64_t* target, const T* weight,
                               int64_t N, int64_t C, int64_t S, int64_t ignore_index,
                               double label_smoothing, Reduction reduction) {
  const int64_t M = N * S;
  const double eps = label_smoothing;
  // Short float rows: every row's log-sum-exp first, kShortRow rows per item.
  std::vector<double> lse;
  if constexpr (std::is_same_v<T, float>) {
    if (S == 1 && C < kShortRow) {
      lse = alloc_vector<double>(M, "cross_entropy: log-sum-exp of each row");
      for_items(ceil_div(M, kShortRow), M * C, [&](int64_t b) {
        const int64_t i0 = b * kShortRow, i1 = std::min(M, i0 + kShortRow);
        for_short_rows(inp, C, i0, i1, [&](int64_t i, int64_t n, auto m, auto*, auto s) {
          for (int64_t l = 0; l < n; ++l) lse[i + l] = double(m[l]) + std::log(double(s[l]));
        });
      });
    }
  }
  with_stride(S, [&](auto st) {
    auto terms = [&](int64_t i) {
      const int64_t t = target[i];
      if (t == ignore_index) return CeTerms{};
      const T* x = item(inp, i, C, S);
      return lse.empty() ? ce_item(x, C, st, t, weight, eps)
                         : ce_terms(lse[i], x, C, st, t, weight, eps);
    };
    if (reduction == Reduction::none) {
      for_items(M, M * C, [&](int64_t i) { out[i] = T(terms(i).loss(eps, C)); });
      return;
    }
    const CeTerms total = ordered_sum<CeTerms>(M, C, terms);
    const double divisor =
        reduction == Reduction::mean ? target_weight(target, weight, M, ignore_index) : 1.0;
    out[0] = T(total.loss(eps, C, divisor));
  });
}

template <typename T>
void cross_entropy_backward_cpu(T* dinp, const T* dout, const T* inp, const int64_t* target,
                                const T* weight, int64_t N, int64_t C, int64_t S,
                                int64_t ignore_index, double label_smoothing, Reduction reduction) {
  const int64_t M = N * S;
  const double eps = label_smoothing;
  const double divisor =
      reduction == Reduction::mean ? target_weight(target, weight, M, ignore_index) : 1.0;
  const double wsum = weight_sum(weight, C);
  // a_c = d loss / d logp_c = -q [c == t] - k w_c, with q = (1 - eps) w_t s and k = eps s / C;
  // through log_softmax: dx_c = a_c - p_c sum_c a_c, in torch's order. The target's entry is
  // that rearranged, q (p_t - 1) + k (p_t wsum - w_t), in double: each bracket is exactly 0
  // for C = 1 (p_t = 1, wsum = w_t), as torch's gradient is, whether or not the compiler
  // fuses a product into an addition. Ignored items have q = k = 0, so their gradient is 0
  // (NaN where the logits are, as in torch).
  const bool smooth = eps > 0;
  struct Coefs {
    double q = 0, k = 0, sum_a = 0;
  };
  const auto coefs = [&](int64_t i) {
    Coefs r;
    const int64_t t = target[i];
    if (t != ignore_index) {
      const double s = item_scale(dout, i, reduction, divisor);
      loss_math::ce_grad_coef(s, weight ? double(weight[t]) : 1.0, eps, C, r.q, r.k);
    }
    r.sum_a = smooth ? -(r.q + r.k * wsum) : -r.q;
    return r;
  };
  const auto target_grad = [&](int64_t t, const Coefs& a, double p_t) {
    const double w_t = weight ? double(weight[t]) : 1.0;
    return a.q * (p_t - 1.0) + (smooth ? a.k * (p_t * wsum - w_t) : 0.0);
  };
  if constexpr (std::is_same_v<T, float>) {
    if (S == 1 && C < kShortRow) {
      // As softmax_grad_kept below, from short_rows' exponentials.
      for_items(ceil_div(M, kShortRow), M * C, [&](int64_t b) {
        const int64_t i0 = b * kShortRow, i1 = std::min(M, i0 + kShortRow);
        for_short_rows(inp, C, i0, i1, [&](int64_t i, int64_t n, auto, auto* e, auto s) {
          for (int64_t l = 0; l < n; ++l) {
            const Coefs a = coefs(i + l);
            const float r = float(1.0 / double(s[l])), sa = float(a.sum_a);
            const float kk = smooth ? float(a.k) : 0.0f;
            float* dx = dinp + (i + l) * C;
            for (int64_t c = 0; c < C; ++c) {
              dx[c] = -(kk * (weight ? weight[c] : 1.0f)) - (e[c][l] * r) * sa;
            }
            const int64_t t = target[i + l];
            if (t != ignore_index) dx[t] = float(target_grad(t, a, double(e[t][l] * r)));
          }
        });
      });
      return;
    }
  }
  with_stride(S, [&](auto st) {
    for_items(M, M * C, [&](int64_t i) {
      const T* x = item(inp, i, C, S);
      T* dx = item(dinp, i, C, S);
      const int64_t t = target[i];
      const Coefs a = coefs(i);
      if constexpr (std::is_same_v<T, float> && std::is_same_v<decltype(st), One>) {
        const float m = row_max(x, C, st);
        const float r = float(1.0 / sum_exp(x, C, st, m, dx));
        const float p_t = t != ignore_index ? dx[t] * r : 0.0f;
        softmax_grad_kept(dx, C, r, float(a.sum_a), smooth ? float(a.k) : 0.0f, weight);
        if (t != ignore_index) dx[t] = float(target_grad(t, a, double(p_t)));
      } else {
        const LogSumExp<T> lse = log_sum_exp(x, C, st);
        softmax_grad(dx, x, C, st, lse, T(a.sum_a), smooth ? T(a.k) : T(0), weight);
        if (t != ignore_index) dx[t * st] = T(target_grad(t, a, double(lse.prob(x[t * st]))));
      }
    });
  });
}

template <typename T>
void cross_entropy_prob_forward_cpu(T* out, const T* inp, const T* target, const T* weight,
                                    int64_t N, int64_t C, int64_t S, double label_smoothing,
                                    Reduction reduction) {
  const int64_t M = N * S;
  auto loss = [&](int64_t i) {
    return ce_prob_item(item(inp, i, C, S), item(target, i, C, S), C, S, weight, label_smoothing);
  };
  if (reduction == Reduction::none) {
    for_items(M, M * C, [&](int64_t i) { out[i] = T(loss(i)); });
    return;
  }
  store_reduced(out, ordered_sum<double>(M, C, loss), reduction, double(M));
}

template <typename T>
void cross_entropy_prob_backward_cpu(T* dinp, const T* dout, const T* inp, const T* target,
                                     const T* weight, int64_t N, int64_t C, int64_t S,
                                     double label_smoothing, Reduction reduction) {
  const int64_t M = N * S;
  const double eps = label_smoothing;
  for_items(M, M * C, [&](int64_t i) {
    const T* x = item(inp, i, C, S);
    const T* y = item(target, i, C, S);
    T* dx = item(dinp, i, C, S);
    const double s = item_scale(dout, i, reduction, double(M));
    auto wy = [&](int64_t c) {
      const double yc = loss_math::smoothed(double(y[c * S]), eps, C);
      return (weight ? double(weight[c]) : 1.0) * yc;
    };
    // d loss / d logp_c = -s w_c y'_c; through log_softmax: dx_c = s (p_c sum_c w_c y'_c - w_c y'_c).
    double b = 0;
    for (int64_t c = 0; c < C; ++c) b += wy(c);
    const LogSumExp<T> lse = log_sum_exp(x, C, S);
    for (int64_t c = 0; c < C; ++c) dx[c * S] = T(s * (double(lse.prob(x[c * S])) * b - wy(c)));
  });
}

template <typename T>
void mse_loss_forward_cpu(T* out, const T* inp, const T* target, int64_t n, Reduction reduction) {
  if (reduction == Reduction::none) {
#pragma omp parallel for simd schedule(static) num_threads(max_threads()) if (n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) out[i] = loss_math::sq_diff(inp[i], target[i]);
    return;
  }
  // Items of B elements: long enough for the vectorised sum, fixed for determinism.
  constexpr int64_t B = kBlockWork;
  const double total = ordered_sum<double>(ceil_div(n, B), B, [&](int64_t b) {
    const int64_t i1 = std::min(n, (b + 1) * B);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b * B; i < i1; ++i) s += loss_math::sq_diff(double(inp[i]), double(target[i]));
    return s;
  });
  store_reduced(out, total, reduction, double(n));
}

template <typename T>
void mse_loss_backward_cpu(T* dinp, const T* dout, const T* inp, const T* target, int64_t n,
                           Reduction reduction) {
  if (reduction == Reduction::none) {
#pragma omp parallel for simd schedule(static) num_threads(max_threads()) if (n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) dinp[i] = loss_math::mse_grad(inp[i], target[i], dout[i]);
    return;
  }
  const T scale = T((reduction == Reduction::mean ? 2.0 / double(n) : 2.0) * double(dout[0]));
#pragma omp parallel for simd schedule(static) num_threads(max_threads()) if (n >= kParallelWork)
  for (int64_t i = 0; i < n; ++i) dinp[i] = scale * (inp[i] - target[i]);
}

template <typename T>
void multi_margin_loss_forward_cpu(T* out, const T* inp, const int64_t* target, const T* weight,
                                   int64_t N, int64_t C, int p, double margin, Reduction reduction) {
  const T m = T(margin);
  auto loss = [&](int64_t n) {
    const T* x = inp + n * C;
    const int64_t y = target[n];
    const double wy = weight ? double(weight[y]) : 1.0;
    double s = 0;
    for (int64_t i = 0; i < C; ++i) {
      T z;
      if (loss_math::margin_hinge(m, x, y, i, z)) {
        s += loss_math::margin_loss_term(double(z), p, wy);
      }
    }
    return s / double(C);
  };
  if (reduction == Reduction::none) {
    for_items(N, N * C, [&](int64_t n) { out[n] = T(loss(n)); });
    return;
  }
  store_reduced(out, ordered_sum<double>(N, C, loss), reduction, double(N));
}

template <typename T>
void multi_margin_loss_backward_cpu(T* dinp, const T* dout, const T* inp, const int64_t* target,
                                    const T* weight, int64_t N, int64_t C, int p, double margin,
                                    Reduction reduction) {
  const T m = T(margin);
  const double g = loss_math::margin_grad_scale(reduction, N, C);
  for_items(N, N * C, [&](int64_t n) {
    const T* x = inp + n * C;
    T* dx = dinp + n * C;
    const int64_t y = target[n];
    const double go = double(reduction == Reduction::none ? dout[n] : dout[0]);
    const double wy = weight ? double(weight[y]) : 1.0;
    double dy = 0;
    for (int64_t i = 0; i < C; ++i) {
      T z;
      double h = 0;
      if (loss_math::margin_hinge(m, x, y, i, z)) {
        h = loss_math::margin_grad_term(double(z), p, g, wy);
      }
      dy -= h;
      dx[i] = T(h * go);
    }
    dx[y] = T(dy * go);
  });
}

FC_LOSS_OPS(FC_INSTANTIATE_CPU, float)
FC_LOSS_OPS(FC_INSTANTIATE_CPU, double)

}  // namespace fc
