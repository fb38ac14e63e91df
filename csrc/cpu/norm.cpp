// Normalisation on the CPU. Batch-norm statistics are reduced over fixed chunks of each
// channel's N*S elements (in double, vector partial sums per run) and the chunks are then
// combined in index order, so the result depends on the shape (and CPU variant) alone;
// elementwise passes run over (n, c) planes; loops run through with_isa (isa.h).
// local_response_norm works per element in double over blocks of kCols positions of one image.
// The per-channel finishing math is norm.h's, shared with the CUDA twins.
#include "norm.h"

#ifdef __x86_64__
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/isa.h"
#include "cpu/parallel.h"

namespace fc {
namespace {

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = int64_t(1) << 15;
// Elements of one channel reduced by one work item: a chunk stays in L2 between its passes.
constexpr int64_t kChunk = int64_t(1) << 14;
// Bytes of x and dy of one channel that batch-norm backward still finds in cache (L2) when it
// goes over the channel a second time.
constexpr int64_t kChannelCache = int64_t(1) << 20;
// Spatial positions per local_response_norm work item.
constexpr int64_t kCols = 128;

// sum(x[0:n]) and sum((x[0:n] - m)^2) in double. A floating-point sum may not be reordered by
// the compiler, so `omp simd` allows it: vector-register partial sums, added in a fixed order,
// so the result is the same on every run (of one CPU variant, isa.h: the register width sets
// the partial sums). The loops read plain local pointers: loads through a lambda's captures
// keep gcc from vectorising.
template <typename T>
double sum_of(const T* x, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += double(x[i]);
  return s;
}

template <typename T>
double sq_dev_sum(const T* x, int64_t n, double m) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(x[i]) - m;
    s += d * d;
  }
  return s;
}

// Calls f(offset, len) for the contiguous runs of elements [j0, j1) of channel c, element j of
// a channel being (n, s) = (j / S, j % S) of the (N, C, S) array.
template <typename F>
void channel_runs(int64_t C, int64_t S, int64_t c, int64_t j0, int64_t j1, F&& f) {
  while (j0 < j1) {
    const int64_t n = j0 / S, s = j0 % S, len = std::min(S - s, j1 - j0);
    f((n * C + c) * S + s, len);
    j0 += len;
  }
}

// Per-channel coefficients of an elementwise pass y = ((x - mh) - ml) * a + b. The mean is split
// into mh + ml (ml = 0 for double) so that float32 x - mean keeps the double mean's precision
// when the mean is large next to the spread.
template <typename T>
struct ChannelAffine {
  std::vector<T> mh, ml, a, b;
  ChannelAffine(int64_t C, const char* what)
      : mh(alloc_vector<T>(C, what)), ml(alloc_vector<T>(C, what)), a(alloc_vector<T>(C, what)),
        b(alloc_vector<T>(C, what)) {}
  void set(int64_t c, double mean, double scale, double shift) {
    mh[c] = T(mean);
    ml[c] = T(mean - double(mh[c]));
    a[c] = T(scale);
    b[c] = T(shift);
  }
};

// Chunk sums of a channel-wise reduction: items (c, q) with q < chunks(N*S), in that order.
struct Chunks {
  int64_t NS, count;
  explicit Chunks(int64_t NS) : NS(NS), count(ceil_div(NS, kChunk)) {}
  int64_t begin(int64_t q) const { return q * kChunk; }
  int64_t end(int64_t q) const { return std::min(NS, (q + 1) * kChunk); }
};

// y = ((x - mh) - ml) * a + b over every (n, c) plane.
template <typename T>
void apply_affine(T* out, const T* inp, const ChannelAffine<T>& f, int64_t N, int64_t C,
                  int64_t S) {
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (N * C * S >= kParallelMin)
  for (int64_t pl = 0; pl < N * C; ++pl) {
    const int64_t c = pl % C;
    const T mh = f.mh[c], ml = f.ml[c], a = f.a[c], b = f.b[c];
    const T* x = inp + pl * S;
    T* y = out + pl * S;
    with_isa([&] {
      for (int64_t s = 0; s < S; ++s) y[s] = ((x[s] - mh) - ml) * a + b;
    });
  }
}

// Batch mean and biased variance of every channel: each chunk is reduced in two passes around
// its own mean, then var = (sum of chunk M2 + cnt * (chunk mean - mean)^2) / NS, a sum of
// non-negative terms, stable for a large mean. mean and var have C elements.
template <typename T>
void channel_stats(double* mean, double* var, const T* inp, int64_t N, int64_t C, int64_t S) {
  const Chunks ch(N * S);
  const int64_t items = C * ch.count;
  auto sum = alloc_vector<double>(items, "batch_norm_forward_cpu: chunk sums");
  auto m2 = alloc_vector<double>(items, "batch_norm_forward_cpu: chunk sums");
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (N * C * S >= kParallelMin)
  for (int64_t i = 0; i < items; ++i) {
    const int64_t c = i / ch.count, q = i % ch.count, j0 = ch.begin(q), j1 = ch.end(q);
    with_isa([&] {
      double s = 0;
      channel_runs(C, S, c, j0, j1, [&](int64_t o, int64_t len) {
        s += sum_of(inp + o, len);
      });
      const double m = s / double(j1 - j0);
      double v = 0;
      channel_runs(C, S, c, j0, j1, [&](int64_t o, int64_t len) {
        v += sq_dev_sum(inp + o, len, m);
      });
      sum[i] = s;
      m2[i] = v;
    });
  }
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t q = 0; q < ch.count; ++q) s += sum[c * ch.count + q];
    const double m = s / double(ch.NS);
    double v = 0;
    for (int64_t q = 0; q < ch.count; ++q) {
      const double cnt = double(ch.end(q) - ch.begin(q)), d = sum[c * ch.count + q] / cnt - m;
      v += m2[c * ch.count + q] + cnt * d * d;
    }
    mean[c] = m;
    var[c] = v / double(ch.NS);
  }
}

// Eight double lanes, as one vector of 8 (one zmm under AVX-512) or two of 4 (a ymm each under
// AVX2, two xmm under the baseline variant: as one 64-byte vector they went through the stack
// under AVX2, batch-norm backward at 2.9x PyTorch's time there). Each lane is computed alike
// either way, so the sums below give the same bits under every variant.
typedef double D8 __attribute__((vector_size(64)));
typedef double D4 __attribute__((vector_size(32)));

#ifdef FC_ISA_X86
// One conversion from memory: GCC lowers the vector conversion below as two of half the width
// and puts them back together (five operations for one; a fifth of batch-norm backward's
// sums). The all-lanes mask compiles to no mask; _mm512_cvtps_pd's undefined source draws
// GCC 12's uninitialised-variable warning.
FC_TARGET_AVX512 inline void convert_avx512(D8& v, const float* x) {
  v = D8(_mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(x)));
}
#endif

// v = x[0, lanes of v) in double lanes. Float lanes go into D8 only under the AVX-512 variant
// (chunk_grad_sums).
inline void load_lanes(D8& v, const float* x) {
#ifdef FC_ISA_X86
  convert_avx512(v, x);
#else
  typedef float F8 __attribute__((vector_size(32)));
  F8 f;
  std::memcpy(&f, x, sizeof f);
  v = __builtin_convertvector(f, D8);
#endif
}
inline void load_lanes(D4& v, const float* x) {
  typedef float F4 __attribute__((vector_size(16)));
  F4 f;
  std::memcpy(&f, x, sizeof f);
  v = __builtin_convertvector(f, D4);
}
template <typename D>
inline void load_lanes(D& v, const double* x) {
  std::memcpy(&v, x, sizeof v);
}

// The three sums of grad_sums over elements [j0, j1) of channel c, m its mean, into p[0..2],
// for float64 (float32 has chunk_grad_sums_f32 below). Lane l (of 8: H vectors D of 8 / H) of
// the vector sums takes each run's elements 8i + l, across the runs; a run's last len % 8 go
// to scalar sums; the lanes are added in order at the end. (A reduction per run, `omp simd`,
// ended every run with three horizontal sums and a scalar remainder: most of the time of a run
// of 196, fashion_cnn's second block.)
template <typename D, int H>
void chunk_grad_sums_in(double* p, const double* dout, const double* inp, double m, int64_t C,
                        int64_t S, int64_t c, int64_t j0, int64_t j1) {
  constexpr int L = 8 / H;
  D va[H] = {}, vb[H] = {}, vd[H] = {};
  const D mv = m - D{};
  double a = 0, b = 0, d = 0;
  channel_runs(C, S, c, j0, j1, [&](int64_t o, int64_t len) {
    const double* x = inp + o;
    const double* dy = dout + o;
    int64_t e = 0;
    for (; e + 8 <= len; e += 8) {
      for (int h = 0; h < H; ++h) {
        D g, xm;
        load_lanes(g, dy + e + L * h);
        load_lanes(xm, x + e + L * h);
        xm -= mv;
        va[h] += g;
        vb[h] += g * xm;
        vd[h] += xm;
      }
    }
    for (; e < len; ++e) {
      const double g = dy[e], xm = x[e] - m;
      a += g;
      b += g * xm;
      d += xm;
    }
  });
  for (int l = 0; l < 8; ++l) {
    a += va[l / L][l % L];
    b += vb[l / L][l % L];
    d += vd[l / L][l % L];
  }
  p[0] = a;
  p[1] = b;
  p[2] = d;
}

// The same for float32. Converting every element to double made the sums bound by the
// conversions (two of the three vector ports' operations; the sums were three fifths of
// batch-norm backward's time), so only sum dy, the bias gradient (a plain sum whose terms
// cancel when dy follows x), stays in double: two sets of eight double lanes, lane l of set k
// taking the elements 16i + 8k + l. The two sums against x go in two stages: sixteen float
// lanes sum a block of at most 128 of a run's elements (lane l its elements 16i + l, at most 8
// float roundings), then the eight double lanes take them (lane l float lanes l and l + 8, in
// that order). m is the float32 saved mean, subtracted in float. F: float vectors of 16 / H
// lanes, D double vectors of 8 / H; each lane is computed alike for every H, as above.
template <typename F, typename D, int H>
void chunk_grad_sums_f32(double* p, const float* dout, const float* inp, float m, int64_t C,
                         int64_t S, int64_t c, int64_t j0, int64_t j1) {
  constexpr int FL = 16 / H, DL = 8 / H;
  D va[2][H] = {}, vb[H] = {}, vd[H] = {};
  const F mv = m - F{};
  double a = 0, b = 0, d = 0;
  channel_runs(C, S, c, j0, j1, [&](int64_t o, int64_t len) {
    const float* x = inp + o;
    const float* dy = dout + o;
    int64_t e = 0;
    while (e + 16 <= len) {
      const int64_t e1 = std::min(len - len % 16, e + 128);
      F fb[H] = {}, fd[H] = {};
      for (; e < e1; e += 16) {
        for (int h = 0; h < H; ++h) {
          F g, xm;
          std::memcpy(&g, dy + e + FL * h, sizeof(F));
          std::memcpy(&xm, x + e + FL * h, sizeof(F));
          xm -= mv;
          fb[h] += g * xm;
          fd[h] += xm;
        }
        for (int k = 0; k < 2; ++k) {
          for (int h = 0; h < H; ++h) {
            D t;
            load_lanes(t, dy + e + 8 * k + DL * h);
            va[k][h] += t;
          }
        }
      }
      alignas(64) float f[2][16];
      for (int h = 0; h < H; ++h) {
        std::memcpy(f[0] + FL * h, &fb[h], sizeof(F));
        std::memcpy(f[1] + FL * h, &fd[h], sizeof(F));
      }
      for (int k = 0; k < 2; ++k) {
        for (int h = 0; h < H; ++h) {
          D t;
          load_lanes(t, f[0] + 8 * k + DL * h);
          vb[h] += t;
          load_lanes(t, f[1] + 8 * k + DL * h);
          vd[h] += t;
        }
      }
    }
    for (; e < len; ++e) {
      const double g = double(dy[e]), xm = double(x[e]) - double(m);
      a += g;
      b += g * xm;
      d += xm;
    }
  });
  for (int k = 0; k < 2; ++k) {
    for (int l = 0; l < 8; ++l) a += va[k][l / DL][l % DL];
  }
  for (int l = 0; l < 8; ++l) {
    b += vb[l / DL][l % DL];
    d += vd[l / DL][l % DL];
  }
  p[0] = a;
  p[1] = b;
  p[2] = d;
}

template <typename T>
void chunk_grad_sums(double* p, const T* dout, const T* inp, double m, int64_t C, int64_t S,
                     int64_t c, int64_t j0, int64_t j1) {
  typedef float F16 __attribute__((vector_size(64)));
  typedef float F8 __attribute__((vector_size(32)));
  const bool wide = cpu_isa() == CpuIsa::avx512;
  if constexpr (std::is_same_v<T, float>) {
    // m is a float32 saved mean: float(m) is m.
    if (wide) {
      chunk_grad_sums_f32<F16, D8, 1>(p, dout, inp, float(m), C, S, c, j0, j1);
    } else {
      chunk_grad_sums_f32<F8, D4, 2>(p, dout, inp, float(m), C, S, c, j0, j1);
    }
  } else if (wide) {
    chunk_grad_sums_in<D8, 1>(p, dout, inp, m, C, S, c, j0, j1);
  } else {
    chunk_grad_sums_in<D4, 2>(p, dout, inp, m, C, S, c, j0, j1);
  }
}

// The chunks' sums of channel c added in chunk order, into p[0..2].
inline void add_chunks(double* p, const double* part, int64_t count) {
  p[0] = p[1] = p[2] = 0;
  for (int64_t q = 0; q < count; ++q) {
    for (int k = 0; k < 3; ++k) p[k] += part[3 * q + k];
  }
}

// Per channel: sdy = sum dy, sdyd = sum dy * (x - m0[c]) and, when sd is not null,
// sd = sum (x - m0[c]), each in double. Arrays of C elements.
template <typename T>
void grad_sums(double* sdy, double* sdyd, double* sd, const T* dout, const T* inp, const T* m0,
               int64_t N, int64_t C, int64_t S) {
  const Chunks ch(N * S);
  const int64_t items = C * ch.count;
  auto part = alloc_vector<double>(3 * items, "batch_norm_backward_cpu: chunk sums");
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (N * C * S >= kParallelMin)
  for (int64_t i = 0; i < items; ++i) {
    const int64_t c = i / ch.count, q = i % ch.count;
    with_isa([&] {
      chunk_grad_sums(&part[3 * i], dout, inp, double(m0[c]), C, S, c, ch.begin(q), ch.end(q));
    });
  }
  for (int64_t c = 0; c < C; ++c) {
    double p[3];
    add_chunks(p, &part[3 * c * ch.count], ch.count);
    sdy[c] = p[0];
    sdyd[c] = p[1];
    if (sd) sd[c] = p[2];
  }
}

// den^beta. beta = 0.75 (the default, and AlexNet's) is sqrt(den) * sqrt(sqrt(den)), which the
// compiler vectorises; std::pow is a scalar libm call.
template <bool kThreeQuarters>
double pow_beta(double den, double beta) {
  if constexpr (kThreeQuarters) {
    const double r = std::sqrt(den);
    return r * std::sqrt(r);
  } else {
    return std::pow(den, beta);
  }
}

// acc[0, len) = sum of inp^2 over the window of channel c at spatial positions [s0, s0 + len)
// of image n, in double and in channel order.
template <typename T>
void window_sq_sum(double* acc, const T* inp, int64_t n, int64_t c, int64_t s0, int64_t len,
                   int64_t C, int64_t S, int64_t size) {
  const int64_t lo = std::max<int64_t>(0, c - size / 2);
  const int64_t hi = std::min(C - 1, c + (size - 1) / 2);
  std::fill(acc, acc + len, 0.0);
  for (int64_t j = lo; j <= hi; ++j) {
    const T* x = inp + (n * C + j) * S + s0;
    for (int64_t s = 0; s < len; ++s) acc[s] += double(x[s]) * double(x[s]);
  }
}

template <bool kThreeQuarters, typename T>
void lrn_forward(T* out, const T* inp, int64_t N, int64_t C, int64_t S, int64_t size,
                 double alpha, double beta, double k) {
  const int64_t blocks = ceil_div(S, kCols), items = N * blocks;
  const double scale = alpha / double(size);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (N * C * S >= kParallelMin)
  for (int64_t i = 0; i < items; ++i) {
    const int64_t n = i / blocks, s0 = (i % blocks) * kCols, len = std::min(kCols, S - s0);
    with_isa([&] {
      double acc[kCols];
      for (int64_t c = 0; c < C; ++c) {
        window_sq_sum(acc, inp, n, c, s0, len, C, S, size);
        const T* x = inp + (n * C + c) * S + s0;
        T* y = out + (n * C + c) * S + s0;
        for (int64_t s = 0; s < len; ++s) {
          y[s] = T(double(x[s]) / pow_beta<kThreeQuarters>(k + scale * acc[s], beta));
        }
      }
    });
  }
}

// With out_c = x_c / den_c^beta and den_c = k + alpha/size * sum_{j in W(c)} x_j^2:
//   dx_i = dy_i / den_i^beta - 2 alpha beta / size * x_i * sum_{c : i in W(c)} t_c,
//   t_c = dy_c * x_c / (den_c^beta * den_c),
// where i in W(c) <=> c in [i - (size-1)/2, i + size/2]: the window mirrored, which differs
// from W(i) when size is even.
template <bool kThreeQuarters, typename T>
void lrn_backward(T* dinp, const T* dout, const T* inp, int64_t N, int64_t C, int64_t S,
                  int64_t size, double alpha, double beta, double k) {
  const int64_t blocks = ceil_div(S, kCols), items = N * blocks;
  const double scale = alpha / double(size), coef = 2.0 * alpha * beta / double(size);
  // Per thread: den^beta and t of every channel at the block's cols positions, allocated before
  // the region (an exception must not leave one).
  const int threads = max_threads();
  const int64_t cols = std::min(kCols, S), per_thread = 2 * C * cols;
  const auto work = alloc_uninit<double>(mul_sat(threads, per_thread),
                                         "local_response_norm_backward_cpu: workspace");
#pragma omp parallel num_threads(threads) if (N * C * S >= kParallelMin)
  {
    double* powd = work.get() + thread_id() * per_thread;
    double* t = powd + C * cols;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < items; ++i) {
      const int64_t n = i / blocks, s0 = (i % blocks) * kCols, len = std::min(kCols, S - s0);
      with_isa([&] {
        double acc[kCols];
        for (int64_t c = 0; c < C; ++c) {
          window_sq_sum(acc, inp, n, c, s0, len, C, S, size);
          const T* x = inp + (n * C + c) * S + s0;
          const T* dy = dout + (n * C + c) * S + s0;
          double* p = powd + c * cols;
          double* tc = t + c * cols;
          for (int64_t s = 0; s < len; ++s) {
            const double den = k + scale * acc[s];
            p[s] = pow_beta<kThreeQuarters>(den, beta);
            tc[s] = double(dy[s]) * double(x[s]) / (p[s] * den);
          }
        }
        for (int64_t c = 0; c < C; ++c) {
          const int64_t lo = std::max<int64_t>(0, c - (size - 1) / 2);
          const int64_t hi = std::min(C - 1, c + size / 2);
          std::fill(acc, acc + len, 0.0);
          for (int64_t j = lo; j <= hi; ++j) {
            const double* tj = t + j * cols;
            for (int64_t s = 0; s < len; ++s) acc[s] += tj[s];
          }
          const T* x = inp + (n * C + c) * S + s0;
          const T* dy = dout + (n * C + c) * S + s0;
          const double* p = powd + c * cols;
          T* dx = dinp + (n * C + c) * S + s0;
          // beta 0: the cross term is 0 * x_i, not 0 times a sum that may be inf or NaN
          // (torch's pow backward gives an exact zero for a zero exponent), so a finite x_i
          // gets dy_i and only a non-finite one NaN, as in torch. (alpha 0 keeps the 0 * sum:
          // torch's product with alpha passes a neighbour's NaN on.)
          if (beta == 0) {
            for (int64_t s = 0; s < len; ++s) dx[s] = T(double(dy[s]) / p[s] + 0.0 * double(x[s]));
          } else {
            for (int64_t s = 0; s < len; ++s) {
              dx[s] = T(double(dy[s]) / p[s] - coef * double(x[s]) * acc[s]);
            }
          }
        }
      });
    }
  }
}

}  // namespace

template <typename T>
void batch_norm_forward_cpu(T* out, T* save_mean, T* save_invstd, T* running_mean,
                            T* running_var, const T* inp, const T* weight, const T* bias,
                            int64_t N, int64_t C, int64_t S, bool training, double momentum,
                            double eps) {
  const char* what = "batch_norm_forward_cpu: per-channel statistics";
  auto mean = alloc_vector<double>(C, what), invstd = alloc_vector<double>(C, what);
  if (training) {
    auto var = alloc_vector<double>(C, what);
    channel_stats(mean.data(), var.data(), inp, N, C, S);
    const double NS = double(N * S);
    for (int64_t c = 0; c < C; ++c) {
      invstd[c] = norm_math::bn_train_stats(running_mean, running_var, c, mean[c], var[c], NS,
                                            momentum, eps);
    }
  } else {
    for (int64_t c = 0; c < C; ++c) {
      mean[c] = double(running_mean[c]);
      invstd[c] = norm_math::bn_eval_invstd(double(running_var[c]), eps);
    }
  }
  ChannelAffine<T> f(C, what);
  for (int64_t c = 0; c < C; ++c) {
    save_mean[c] = T(mean[c]);
    save_invstd[c] = T(invstd[c]);
    const double w = weight ? double(weight[c]) : 1.0, b = bias ? double(bias[c]) : 0.0;
    f.set(c, mean[c], w * invstd[c], b);
  }
  apply_affine(out, inp, f, N, C, S);
}

template <typename T>
void batch_norm_backward_cpu(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                             const T* weight, const T* save_mean, const T* save_invstd,
                             int64_t N, int64_t C, int64_t S, bool training) {
  const double NS = double(N * S);
  const char* what = "batch_norm_backward_cpu: per-channel sums";
  if (!training) {
    if (dweight || dbias) {
      auto sdy = alloc_vector<double>(C, what), sdyd = alloc_vector<double>(C, what);
      grad_sums(sdy.data(), sdyd.data(), nullptr, dout, inp, save_mean, N, C, S);
      for (int64_t c = 0; c < C; ++c) {
        if (dweight) dweight[c] += T(sdyd[c] * double(save_invstd[c]));
        if (dbias) dbias[c] += T(sdy[c]);
      }
    }
    if (!dinp) return;
    // dx = dy * weight * invstd: the running statistics are constants.
    auto g = alloc_vector<T>(C, what);
    for (int64_t c = 0; c < C; ++c) {
      g[c] = T((weight ? double(weight[c]) : 1.0) * double(save_invstd[c]));
    }
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (N * C * S >= kParallelMin)
    for (int64_t pl = 0; pl < N * C; ++pl) {
      const T gc = g[pl % C];
      const T* dy = dout + pl * S;
      T* dx = dinp + pl * S;
      with_isa([&] {
        for (int64_t s = 0; s < S; ++s) dx[s] = gc * dy[s];
      });
    }
    return;
  }
  if (!dinp && !dweight && !dbias) return;
  const char* chunk_what = "batch_norm_backward_cpu: chunk sums";
  // dx_c from channel c's sums and coefficients, into dweight/dbias too.
  const auto finish = [&](int64_t c, const double* p, T& gc, double& mean, double& a, double& b) {
    const double invstd = double(save_invstd[c]), w = weight ? double(weight[c]) : 1.0;
    const norm_math::BnGrad d =
        norm_math::bn_train_grad(p[0], p[1], p[2], double(save_mean[c]), invstd, w, NS);
    if (dweight) dweight[c] += T(d.dweight);
    if (dbias) dbias[c] += T(p[0]);
    gc = T(w * invstd);
    mean = d.mean;
    a = d.a;
    b = d.b;
  };
  const auto apply = [&](int64_t pl, T gc, T mh, T ml, T a, T b) {
    const T* x = inp + pl * S;
    const T* dy = dout + pl * S;
    T* dx = dinp + pl * S;
    for (int64_t s = 0; s < S; ++s) dx[s] = gc * dy[s] + (((x[s] - mh) - ml) * a + b);
  };
  const Chunks ch(N * S);
  const int threads = max_threads();
  if (dinp && C >= 2 * threads && double(N * S) * 2 * sizeof(T) <= double(kChannelCache)) {
    // A channel at a time, its sums then its dx while its x and dy are still in cache: x and
    // dy leave memory once rather than twice. The sums are grad_sums', in its order.
    auto part = alloc_vector<double>(3 * ch.count * threads, chunk_what);
#pragma omp parallel for schedule(static) num_threads(threads) if (N * C * S >= kParallelMin)
    for (int64_t c = 0; c < C; ++c) {
      double* pc = &part[3 * ch.count * thread_id()];
      with_isa([&] {
        for (int64_t q = 0; q < ch.count; ++q) {
          chunk_grad_sums(pc + 3 * q, dout, inp, double(save_mean[c]), C, S, c, ch.begin(q),
                          ch.end(q));
        }
        double p[3], mean, a, b;
        add_chunks(p, pc, ch.count);
        T gc;
        finish(c, p, gc, mean, a, b);
        const T mh = T(mean), ml = T(mean - double(mh));
        for (int64_t n = 0; n < N; ++n) apply(n * C + c, gc, mh, ml, T(a), T(b));
      });
    }
    return;
  }
  auto sums = alloc_vector<double>(3 * C, what);
  grad_sums(&sums[0], &sums[C], &sums[2 * C], dout, inp, save_mean, N, C, S);
  ChannelAffine<T> f(C, what);
  auto g = alloc_vector<T>(C, what);
  for (int64_t c = 0; c < C; ++c) {
    const double p[3] = {sums[c], sums[C + c], sums[2 * C + c]};
    double mean, a, b;
    finish(c, p, g[c], mean, a, b);
    f.set(c, mean, a, b);
  }
  if (!dinp) return;
#pragma omp parallel for schedule(static) num_threads(threads) if (N * C * S >= kParallelMin)
  for (int64_t pl = 0; pl < N * C; ++pl) {
    const int64_t c = pl % C;
    with_isa([&] { apply(pl, g[c], f.mh[c], f.ml[c], f.a[c], f.b[c]); });
  }
}

template <typename T>
void local_response_norm_forward_cpu(T* out, const T* inp, int64_t N, int64_t C, int64_t S,
                                     int64_t size, double alpha, double beta, double k) {
  if (beta == 0.75) lrn_forward<true>(out, inp, N, C, S, size, alpha, beta, k);
  else lrn_forward<false>(out, inp, N, C, S, size, alpha, beta, k);
}

template <typename T>
void local_response_norm_backward_cpu(T* dinp, const T* dout, const T* inp, int64_t N, int64_t C,
                                      int64_t S, int64_t size, double alpha, double beta,
                                      double k) {
  if (beta == 0.75) lrn_backward<true>(dinp, dout, inp, N, C, S, size, alpha, beta, k);
  else lrn_backward<false>(dinp, dout, inp, N, C, S, size, alpha, beta, k);
}

FC_NORM_OPS(FC_INSTANTIATE_CPU, float)
FC_NORM_OPS(FC_INSTANTIATE_CPU, double)

}  // namespace fc
