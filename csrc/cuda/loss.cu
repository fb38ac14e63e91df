// Losses on the GPU: the CPU twins' formulas term by term (cpu/loss.cpp), NaN and Inf included.
// An item (one row of C logits lying S apart) belongs to a group of G threads: one thread (G = 1,
// neighbouring threads read neighbouring positions s) or one warp when C is large and the classes
// lie close together (G = 32, the warp's lanes split the classes). Reductions add fixed chunks
// of items per block in double, then the chunks in order in a single block: results depend on
// the sizes only, never on timing. No floating-point atomics.
#include "loss.h"
#include "cuda/cuda_common.cuh"

#include <math_constants.h>

#include <algorithm>
#include <climits>

namespace fc {
namespace {

constexpr int kThreads = 256;
constexpr int kGroupItems = 4;  // items per group of threads in one chunk of a reduction

__device__ inline float exp_of(float x) { return expf(x); }
__device__ inline double exp_of(double x) { return exp(x); }
__device__ inline float max_of(float a, float b) { return fmaxf(a, b); }
__device__ inline double max_of(double a, double b) { return fmax(a, b); }

// Sum over the G lanes of a group by a butterfly: every lane gets the bitwise same result
// (each step adds the same two numbers, only in swapped order).
template <int G>
__device__ inline double group_sum(double v) {
  if constexpr (G > 1) {
    for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  }
  return v;
}

// Max ignoring NaN (fmax), which is commutative, so all lanes agree; a NaN in the row still
// makes the sum of exponentials, hence the result, NaN.
template <int G, typename T>
__device__ inline T group_max(T v) {
  if constexpr (G > 1) {
    for (int o = G / 2; o > 0; o >>= 1) v = max_of(v, __shfl_xor_sync(0xffffffffu, v, o));
  }
  return v;
}

// The first class of item i of an [N, C, S] array.
__device__ inline int64_t item_offset(int64_t i, int64_t C, int64_t S) {
  return S == 1 ? i * C : (i / S) * C * S + i % S;
}

// Warps for rows whose classes lie within a few cache lines; one thread per item otherwise
// (then neighbouring threads read neighbouring positions, and small rows waste no lanes).
bool warp_per_item(int64_t C, int64_t S) { return C >= 32 && S < 32; }

template <int K>
struct Sums {
  double v[K] = {};
  __device__ Sums& operator+=(const Sums& o) {
    for (int k = 0; k < K; ++k) v[k] += o.v[k];
    return *this;
  }
};

// f(i, lane) for every item i < M; the G lanes of a group (aligned within a warp) share i, so
// group shuffles see all 32 lanes.
template <int G, typename F>
__global__ void items_kernel(int64_t M, F f) {
  const int lane = threadIdx.x % G;
  const int64_t step = int64_t(gridDim.x) * (blockDim.x / G);
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / G; i < M; i += step) {
    f(i, lane);
  }
}

template <int G, typename F>
void for_items(const char* name, int64_t M, F f) {
  if (M <= 0) return;
  items_kernel<G><<<cuda::grid_for(mul_sat(M, G), kThreads), kThreads, 0, cuda::stream()>>>(M, f);
  FC_CUDA_LAUNCHED(name);
}

// Block b sums f(i, lane) (lane 0's copy) over items [b * chunk, (b + 1) * chunk) into
// part[k * gridDim.x + b] for each of the K components.
template <int K, int G, typename F>
__global__ void partials_kernel(double* part, int64_t M, int64_t chunk, F f) {
  __shared__ double shared[32];
  const int lane = threadIdx.x % G;
  const int64_t begin = int64_t(blockIdx.x) * chunk;
  const int64_t end = begin + chunk < M ? begin + chunk : M;
  Sums<K> acc;
  for (int64_t i = begin + threadIdx.x / G; i < end; i += blockDim.x / G) {
    const Sums<K> v = f(i, lane);
    if (lane == 0) acc += v;
  }
  for (int k = 0; k < K; ++k) {
    const double s = cuda::block_sum(acc.v[k], shared);
    if (threadIdx.x == 0) part[int64_t(k) * gridDim.x + blockIdx.x] = s;
  }
}

// One block: the partials of each component summed in a fixed order, handed to fin (thread 0).
template <int K, typename Fin>
__global__ void finish_kernel(const double* part, int64_t blocks, Fin fin) {
  __shared__ double shared[32];
  Sums<K> total;
  for (int k = 0; k < K; ++k) {
    double s = 0;
    for (int64_t b = threadIdx.x; b < blocks; b += blockDim.x) s += part[k * blocks + b];
    total.v[k] = cuda::block_sum(s, shared);
  }
  if (threadIdx.x == 0) fin(total);
}

// fin(sum over i < M of f(i, lane)), deterministically. M may be 0: fin still runs (the 0-d
// output of an empty 'mean' or 'sum' is written).
template <int K, int G, typename F, typename Fin>
void reduce_items(const char* name, int64_t M, F f, Fin fin) {
  // Chunks grow when needed to keep the grid within 2^31 - 1 blocks (its x dimension's limit).
  const int64_t chunk = std::max(int64_t(kThreads / G) * kGroupItems, cuda::ceil_div(M, INT_MAX));
  const int64_t blocks = cuda::ceil_div(M, chunk);
  cuda::Scratch part(size_t(blocks) * K * sizeof(double), name);
  if (blocks > 0) {
    partials_kernel<K, G><<<unsigned(blocks), kThreads, 0, cuda::stream()>>>(part.as<double>(), M,
                                                                             chunk, f);
    FC_CUDA_LAUNCHED(name);
  }
  finish_kernel<K><<<1, kThreads, 0, cuda::stream()>>>(part.as<double>(), blocks, fin);
  FC_CUDA_LAUNCHED(name);
}

// log-sum-exp of one row as max + log(sum exp(x - max)), the sum in double (see cpu/loss.cpp).
template <typename T>
struct LogSumExp {
  T max;
  double log_sum;
  __device__ double value() const { return double(max) + log_sum; }
  __device__ T prob(T x) const { return exp_of(T(T(x - max) - T(log_sum))); }
};

template <int G, typename T>
__device__ LogSumExp<T> log_sum_exp(const T* x, int64_t C, int64_t S, int lane) {
  T m = T(-CUDART_INF);
  for (int64_t c = lane; c < C; c += G) m = max_of(m, x[c * S]);
  m = group_max<G>(m);
  double s = 0;
  for (int64_t c = lane; c < C; c += G) s += double(exp_of(T(x[c * S] - m)));
  return {m, log(group_sum<G>(s))};
}

// {nll, smooth, target weight} of item i: nll = w_t (lse - x_t), smooth = sum_c w_c (lse - x_c)
// (only for eps > 0); all 0 for an ignored item, whatever its logits.
template <int G, typename T>
__device__ Sums<3> ce_terms(const T* inp, const int64_t* target, const T* weight, int64_t i,
                            int64_t C, int64_t S, int64_t ignore_index, double eps, int lane) {
  Sums<3> r;
  const int64_t t = target[i];
  if (t == ignore_index) return r;  // the whole group returns: it shares i
  const T* x = inp + item_offset(i, C, S);
  const double lse = log_sum_exp<G>(x, C, S, lane).value();
  const double wt = weight ? double(weight[t]) : 1.0;
  r.v[0] = wt * (lse - double(x[t * S]));
  if (eps > 0) {
    double s = 0;
    for (int64_t c = lane; c < C; c += G) {
      s += (weight ? double(weight[c]) : 1.0) * (lse - double(x[c * S]));
    }
    r.v[1] = group_sum<G>(s);
  }
  r.v[2] = wt;
  return r;
}

template <int G, typename T>
void ce_forward(T* out, const T* inp, const int64_t* target, const T* weight, int64_t N,
                int64_t C, int64_t S, int64_t ignore_index, double eps, Reduction reduction) {
  const int64_t M = N * S;
  auto terms = [=] __device__(int64_t i, int lane) {
    return ce_terms<G>(inp, target, weight, i, C, S, ignore_index, eps, lane);
  };
  if (reduction == Reduction::none) {
    for_items<G>("cross_entropy_forward_cuda", M, [=] __device__(int64_t i, int lane) {
      const Sums<3> r = terms(i, lane);
      if (lane == 0) out[i] = T(loss_math::ce_loss(r.v[0], r.v[1], eps, C, 1.0));
    });
    return;
  }
  const bool mean = reduction == Reduction::mean;
  reduce_items<3, G>("cross_entropy_forward_cuda", M, terms, [=] __device__(const Sums<3>& s) {
    out[0] = T(loss_math::ce_loss(s.v[0], s.v[1], eps, C, mean ? s.v[2] : 1.0));
  });
}

// Writes scal[0] = the 'mean' divisor (summed weights of the non-ignored targets; 1 for other
// reductions) and scal[1] = the sum of the class weights (in class order, as the CPU).
template <typename T>
void ce_backward_scalars(double* scal, const int64_t* target, const T* weight, int64_t M,
                         int64_t C, int64_t ignore_index, Reduction reduction) {
  const bool mean = reduction == Reduction::mean;
  reduce_items<1, 1>(
      "cross_entropy_backward_cuda", mean ? M : 0,
      [=] __device__(int64_t i, int) {
        Sums<1> r;
        const int64_t t = target[i];
        if (t != ignore_index) r.v[0] = weight ? double(weight[t]) : 1.0;
        return r;
      },
      [=] __device__(const Sums<1>& s) {
        scal[0] = mean ? s.v[0] : 1.0;
        double w = double(C);
        if (weight) {
          w = 0;
          for (int64_t c = 0; c < C; ++c) w += double(weight[c]);
        }
        scal[1] = w;
      });
}

// dx_c = a_c - p_c sum_c a_c with a_c = -q [c == t] - k w_c (see the CPU twin). The target's
// entry and sum_a use explicitly rounded operations: unfused, a_t - 1 * sum_a is exactly 0 for
// C = 1 (as in torch), which contracting one side into an FMA would break.
template <int G, typename T>
void ce_backward(T* dinp, const T* dout, const T* inp, const int64_t* target, const T* weight,
                 int64_t N, int64_t C, int64_t S, int64_t ignore_index, double eps,
                 Reduction reduction) {
  const int64_t M = N * S;
  if (M == 0) return;
  cuda::Scratch scratch(2 * sizeof(double), "cross_entropy_backward_cuda");
  double* scal = scratch.as<double>();
  ce_backward_scalars(scal, target, weight, M, C, ignore_index, reduction);
  for_items<G>("cross_entropy_backward_cuda", M, [=] __device__(int64_t i, int lane) {
    const int64_t off = item_offset(i, C, S);
    const T* x = inp + off;
    T* dx = dinp + off;
    const int64_t t = target[i];
    const bool kept = t != ignore_index;
    double q = 0, k = 0;
    if (kept) {
      const double s = reduction == Reduction::none ? double(dout[i])
                       : reduction == Reduction::mean ? double(dout[0]) / scal[0]
                                                      : double(dout[0]);
      loss_math::ce_grad_coef(s, weight ? double(weight[t]) : 1.0, eps, C, q, k);
    }
    const LogSumExp<T> lse = log_sum_exp<G>(x, C, S, lane);
    const bool smooth = eps > 0;
    const double sum_a = smooth ? -__dadd_rn(q, __dmul_rn(k, scal[1])) : -q;
    const T sa = T(sum_a), kk = smooth ? T(k) : T(0);
    for (int64_t c = lane; c < C; c += G) {
      const T xc = x[c * S];
      if (kept && c == t) {
        const double a = __dsub_rn(-__dmul_rn(k, weight ? double(weight[t]) : 1.0), q);
        dx[c * S] = T(__dsub_rn(a, __dmul_rn(double(lse.prob(xc)), sum_a)));
      } else {
        dx[c * S] = -(kk * (weight ? weight[c] : T(1))) - lse.prob(xc) * sa;
      }
    }
  });
}

// Cross entropy of item i against probabilities y: -sum_c (x_c - lse) y'_c w_c.
template <int G, typename T>
__device__ double ce_prob_loss(const T* inp, const T* target, const T* weight, int64_t i,
                               int64_t C, int64_t S, double eps, int lane) {
  const int64_t off = item_offset(i, C, S);
  const T* x = inp + off;
  const T* y = target + off;
  const double lse = log_sum_exp<G>(x, C, S, lane).value();
  double s = 0;
  for (int64_t c = lane; c < C; c += G) {
    const double yc = loss_math::smoothed(double(y[c * S]), eps, C);
    s += (double(x[c * S]) - lse) * yc * (weight ? double(weight[c]) : 1.0);
  }
  return -group_sum<G>(s);
}

template <int G, typename T>
void ce_prob_forward(T* out, const T* inp, const T* target, const T* weight, int64_t N, int64_t C,
                     int64_t S, double eps, Reduction reduction) {
  const int64_t M = N * S;
  if (reduction == Reduction::none) {
    for_items<G>("cross_entropy_prob_forward_cuda", M, [=] __device__(int64_t i, int lane) {
      const double l = ce_prob_loss<G>(inp, target, weight, i, C, S, eps, lane);
      if (lane == 0) out[i] = T(l);
    });
    return;
  }
  const bool mean = reduction == Reduction::mean;
  reduce_items<1, G>(
      "cross_entropy_prob_forward_cuda", M,
      [=] __device__(int64_t i, int lane) {
        Sums<1> r;
        r.v[0] = ce_prob_loss<G>(inp, target, weight, i, C, S, eps, lane);
        return r;
      },
      [=] __device__(const Sums<1>& s) { out[0] = T(mean ? s.v[0] / double(M) : s.v[0]); });
}

// dx_c = s (p_c sum_c w_c y'_c - w_c y'_c).
template <int G, typename T>
void ce_prob_backward(T* dinp, const T* dout, const T* inp, const T* target, const T* weight,
                      int64_t N, int64_t C, int64_t S, double eps, Reduction reduction) {
  const int64_t M = N * S;
  for_items<G>("cross_entropy_prob_backward_cuda", M, [=] __device__(int64_t i, int lane) {
    const int64_t off = item_offset(i, C, S);
    const T* x = inp + off;
    const T* y = target + off;
    T* dx = dinp + off;
    const double s = reduction == Reduction::none ? double(dout[i])
                     : reduction == Reduction::mean ? double(dout[0]) / double(M)
                                                    : double(dout[0]);
    auto wy = [&](int64_t c) {
      const double yc = loss_math::smoothed(double(y[c * S]), eps, C);
      return (weight ? double(weight[c]) : 1.0) * yc;
    };
    double b = 0;
    for (int64_t c = lane; c < C; c += G) b += wy(c);
    b = group_sum<G>(b);
    const LogSumExp<T> lse = log_sum_exp<G>(x, C, S, lane);
    for (int64_t c = lane; c < C; c += G) {
      dx[c * S] = T(s * (double(lse.prob(x[c * S])) * b - wy(c)));
    }
  });
}

// Row n's hinge sum_{i != y} max(0, margin - x_y + x_i)^p w_y / C; z in T as on the CPU, and
// z > 0 is false for NaN, which the hinge therefore skips.
template <int G, typename T>
__device__ double margin_loss(const T* inp, const int64_t* target, const T* weight, int64_t n,
                              int64_t C, int p, T m, int lane) {
  const T* x = inp + n * C;
  const int64_t y = target[n];
  const double wy = weight ? double(weight[y]) : 1.0;
  double s = 0;
  for (int64_t i = lane; i < C; i += G) {
    T z;
    if (loss_math::margin_hinge(m, x, y, i, z)) s += loss_math::margin_loss_term(double(z), p, wy);
  }
  return group_sum<G>(s) / double(C);
}

template <int G, typename T>
void margin_forward(T* out, const T* inp, const int64_t* target, const T* weight, int64_t N,
                    int64_t C, int p, double margin, Reduction reduction) {
  const T m = T(margin);
  if (reduction == Reduction::none) {
    for_items<G>("multi_margin_loss_forward_cuda", N, [=] __device__(int64_t n, int lane) {
      const double l = margin_loss<G>(inp, target, weight, n, C, p, m, lane);
      if (lane == 0) out[n] = T(l);
    });
    return;
  }
  const bool mean = reduction == Reduction::mean;
  reduce_items<1, G>(
      "multi_margin_loss_forward_cuda", N,
      [=] __device__(int64_t n, int lane) {
        Sums<1> r;
        r.v[0] = margin_loss<G>(inp, target, weight, n, C, p, m, lane);
        return r;
      },
      [=] __device__(const Sums<1>& s) { out[0] = T(mean ? s.v[0] / double(N) : s.v[0]); });
}

}  // namespace

template <typename T>
void cross_entropy_forward_cuda(T* out, const T* inp, const int64_t* target, const T* weight,
                                int64_t N, int64_t C, int64_t S, int64_t ignore_index,
                                double label_smoothing, Reduction reduction) {
  if (warp_per_item(C, S)) {
    ce_forward<32>(out, inp, target, weight, N, C, S, ignore_index, label_smoothing, reduction);
  } else {
    ce_forward<1>(out, inp, target, weight, N, C, S, ignore_index, label_smoothing, reduction);
  }
}

template <typename T>
void cross_entropy_backward_cuda(T* dinp, const T* dout, const T* inp, const int64_t* target,
                                 const T* weight, int64_t N, int64_t C, int64_t S,
                                 int64_t ignore_index, double label_smoothing,
                                 Reduction reduction) {
  if (warp_per_item(C, S)) {
    ce_backward<32>(dinp, dout, inp, target, weight, N, C, S, ignore_index, label_smoothing,
                    reduction);
  } else {
    ce_backward<1>(dinp, dout, inp, target, weight, N, C, S, ignore_index, label_smoothing,
                   reduction);
  }
}

template <typename T>
void cross_entropy_prob_forward_cuda(T* out, const T* inp, const T* target, const T* weight,
                                     int64_t N, int64_t C, int64_t S, double label_smoothing,
                                     Reduction reduction) {
  if (warp_per_item(C, S)) {
    ce_prob_forward<32>(out, inp, target, weight, N, C, S, label_smoothing, reduction);
  } else {
    ce_prob_forward<1>(out, inp, target, weight, N, C, S, label_smoothing, reduction);
  }
}

template <typename T>
void cross_entropy_prob_backward_cuda(T* dinp, const T* dout, const T* inp, const T* target,
                                      const T* weight, int64_t N, int64_t C, int64_t S,
                                      double label_smoothing, Reduction reduction) {
  if (warp_per_item(C, S)) {
    ce_prob_backward<32>(dinp, dout, inp, target, weight, N, C, S, label_smoothing, reduction);
  } else {
    ce_prob_backward<1>(dinp, dout, inp, target, weight, N, C, S, label_smoothing, reduction);
  }
}

template <typename T>
void mse_loss_forward_cuda(T* out, const T* inp, const T* target, int64_t n, Reduction reduction) {
  if (reduction == Reduction::none) {
    cuda::for_each("mse_loss_forward_cuda", n, [=] __device__(int64_t i) {
      out[i] = loss_math::sq_diff(inp[i], target[i]);
    });
    return;
  }
  const bool mean = reduction == Reduction::mean;
  reduce_items<1, 1>(
      "mse_loss_forward_cuda", n,
      [=] __device__(int64_t i, int) {
        Sums<1> r;
        r.v[0] = loss_math::sq_diff(double(inp[i]), double(target[i]));
        return r;
      },
      [=] __device__(const Sums<1>& s) { out[0] = T(mean ? s.v[0] / double(n) : s.v[0]); });
}

template <typename T>
void mse_loss_backward_cuda(T* dinp, const T* dout, const T* inp, const T* target, int64_t n,
                            Reduction reduction) {
  if (reduction == Reduction::none) {
    cuda::for_each("mse_loss_backward_cuda", n, [=] __device__(int64_t i) {
      dinp[i] = loss_math::mse_grad(inp[i], target[i], dout[i]);
    });
    return;
  }
  // the scalar upstream gradient stays on the device: each thread reads it
  const double factor = reduction == Reduction::mean ? 2.0 / double(n) : 2.0;
  cuda::for_each("mse_loss_backward_cuda", n, [=] __device__(int64_t i) {
    const T scale = T(factor * double(dout[0]));
    dinp[i] = scale * (inp[i] - target[i]);
  });
}

template <typename T>
void multi_margin_loss_forward_cuda(T* out, const T* inp, const int64_t* target, const T* weight,
                                    int64_t N, int64_t C, int p, double margin,
                                    Reduction reduction) {
  if (C >= 32) {
    margin_forward<32>(out, inp, target, weight, N, C, p, margin, reduction);
  } else {
    margin_forward<1>(out, inp, target, weight, N, C, p, margin, reduction);
  }
}

// One thread per element of dinp (a gather): entry i != y from its own hinge term, entry y
// minus the sum of the row's terms, added in class order as on the CPU.
template <typename T>
void multi_margin_loss_backward_cuda(T* dinp, const T* dout, const T* inp, const int64_t* target,
                                     const T* weight, int64_t N, int64_t C, int p, double margin,
                                     Reduction reduction) {
  const T m = T(margin);
  const double g = loss_math::margin_grad_scale(reduction, N, C);
  cuda::for_each("multi_margin_loss_backward_cuda", N * C, [=] __device__(int64_t e) {
    const int64_t n = e / C, i = e % C;
    const T* x = inp + n * C;
    const int64_t y = target[n];
    const double go = double(reduction == Reduction::none ? dout[n] : dout[0]);
    const double wy = weight ? double(weight[y]) : 1.0;
    auto hinge = [&](int64_t j) {
      T z;
      if (!loss_math::margin_hinge(m, x, y, j, z)) return 0.0;
      return loss_math::margin_grad_term(double(z), p, g, wy);
    };
    if (i != y) {
      dinp[e] = T(hinge(i) * go);
      return;
    }
    double dy = 0;
    for (int64_t j = 0; j < C; ++j) dy -= hinge(j);
    dinp[e] = T(dy * go);
  });
}

int64_t first_bad_target_cuda(const int64_t* target, int64_t n, int64_t C, bool has_ignore,
                              int64_t ignore_index, int64_t* value) {
  if (n <= 0) return -1;
  cuda::Scratch scratch(sizeof(unsigned long long), "first_bad_target_cuda");
  unsigned long long* first = scratch.as<unsigned long long>();
  FC_CUDA_CHECK(cudaMemsetAsync(first, 0xff, sizeof *first, cuda::stream()));
  // integer atomicMin: the smallest bad index wins whatever the order the threads run in
  cuda::for_each("first_bad_target_cuda", n, [=] __device__(int64_t i) {
    const int64_t v = target[i];
    if ((v < 0 || v >= C) && !(has_ignore && v == ignore_index)) {
      atomicMin(first, static_cast<unsigned long long>(i));
    }
  });
  unsigned long long found = 0;
  FC_CUDA_CHECK(cudaMemcpyAsync(&found, first, sizeof found, cudaMemcpyDeviceToHost,
                                cuda::stream()));
  FC_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
  if (found == ~0ull) return -1;
  FC_CUDA_CHECK(cudaMemcpyAsync(value, target + found, sizeof *value, cudaMemcpyDeviceToHost,
                                cuda::stream()));
  FC_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
  return int64_t(found);
}

FC_LOSS_OPS(FC_INSTANTIATE_CUDA, float)
FC_LOSS_OPS(FC_INSTANTIATE_CUDA, double)

}  // namespace fc
