// Normalisation on the GPU, twins of csrc/cpu/norm.cpp with its numerics. Batch-norm
// statistics are summed in double over fixed chunks of each channel's N*S elements, one block
// per chunk writing its partial sums to scratch, then combined per channel in chunk order: the
// result depends on the shape alone, and no floating-point atomic is used. local_response_norm
// is computed per element in double, its window sums in channel order. The per-channel
// finishing math is norm.h's, shared with the CPU twins.
#include "norm.h"
#include "cuda/cuda_common.cuh"

#include <cmath>

namespace fc {
namespace {

// A chunk is kThreads * kPer consecutive elements of one channel; the statistics pass keeps a
// thread's kPer elements in registers between its two sums, so the input is read once.
constexpr int kThreads = 256;
constexpr int kPer = 16;
constexpr int64_t kChunk = int64_t(kThreads) * kPer;
// Elements per thread loaded before their stores in the elementwise passes.
constexpr int kGroup = 8;

// The (N, C, S) array seen per channel: element j < N*S of channel c is (n, s) = (j / S, j % S),
// at offset n*C*S + c*S + s. A chunk is items q*C + c, so neighbouring blocks read neighbouring
// channels of the same images.
struct Channels {
  int64_t C, S, NS, chunks;
  // A step of kThreads elements: s += ds, offset += jump, and on s >= S a wrap to the next
  // image (s -= S, offset += wrap); only a thread's first offset needs a division.
  int64_t ds, jump, wrap;
  __host__ __device__ int64_t items() const { return C * chunks; }
};

Channels channels(int64_t N, int64_t C, int64_t S) {
  Channels g{C, S, N * S, cuda::ceil_div(N * S, kChunk), 0, 0, 0};
  if (S > 0) {
    g.ds = kThreads % S;
    g.jump = (kThreads / S) * C * S + g.ds;
    g.wrap = C * S - S;
  }
  return g;
}

// Offsets of the elements j = j0 + threadIdx.x + k*kThreads, k = 0, 1, ... of channel c.
struct Walk {
  int64_t off, s;
  __host__ __device__ Walk(const Channels& g, int64_t c, int64_t j) {
    const int64_t n = j / g.S;
    s = j - n * g.S;
    off = (n * g.C + c) * g.S + s;
  }
  __host__ __device__ void next(const Channels& g) {
    s += g.ds;
    off += g.jump;
    if (s >= g.S) {
      s -= g.S;
      off += g.wrap;
    }
  }
};

// Chunk q's element range [q*kChunk, end) of a channel.
__host__ __device__ inline int64_t chunk_end(const Channels& g, int64_t q) {
  return g.NS < (q + 1) * kChunk ? g.NS : (q + 1) * kChunk;
}

unsigned chunk_grid(int64_t items) {
  const int64_t cap = int64_t(cuda::sm_count()) * 64;
  return unsigned(items < cap ? items : cap);
}

// Per-channel coefficients of y = ((x - mh) - ml) * a + b (and g for backward), rows of C in
// `coef`. The mean is split into mh + ml (ml = 0 for double) so that float32 x - mean keeps the
// double mean's precision when the mean is large next to the spread, as on the CPU.
enum Coef { kMh, kMl, kA, kB, kG, kCoefs };

template <typename T>
__device__ void set_affine(T* coef, int64_t C, int64_t c, double mean, double scale,
                           double shift) {
  const T mh = T(mean);
  coef[kMh * C + c] = mh;
  coef[kMl * C + c] = T(mean - double(mh));
  coef[kA * C + c] = T(scale);
  coef[kB * C + c] = T(shift);
}

// Chunk sums of x and of (x - chunk mean)^2: sum[item], m2[item] for item = q*C + c.
template <typename T>
__global__ void __launch_bounds__(kThreads)
bn_stats_kernel(double* sum, double* m2, const T* inp, Channels g) {
  __shared__ double shared[32];
  for (int64_t item = blockIdx.x; item < g.items(); item += gridDim.x) {
    const int64_t c = item % g.C, q = item / g.C, j0 = q * kChunk, cnt = chunk_end(g, q) - j0;
    const int64_t left = cnt - threadIdx.x;  // this thread's elements are k*kThreads < left
    Walk w(g, c, j0 + threadIdx.x);
    T v[kPer];
    double s = 0;
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      v[k] = T(0);
      if (k * kThreads < left) {
        v[k] = inp[w.off];
        s += double(v[k]);
      }
      w.next(g);
    }
    s = cuda::block_sum(s, shared);
    const double m = s / double(cnt);
    double d2 = 0;
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      if (k * kThreads < left) {
        const double d = double(v[k]) - m;
        d2 += d * d;
      }
    }
    d2 = cuda::block_sum(d2, shared);
    if (threadIdx.x == 0) {
      sum[item] = s;
      m2[item] = d2;
    }
  }
}

// One thread per channel: the batch mean and biased variance from the chunk sums in chunk order
// (var = (sum of chunk M2 + cnt * (chunk mean - mean)^2) / NS, a sum of non-negative terms) or,
// in eval, the running statistics; then save_*, the running update and the affine coefficients.
template <typename T>
__global__ void bn_forward_finish_kernel(T* coef, T* save_mean, T* save_invstd, T* running_mean,
                                         T* running_var, const double* sum, const double* m2,
                                         const T* weight, const T* bias, Channels g,
                                         bool training, double momentum, double eps) {
  const int64_t C = g.C, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C; c += step) {
    double mean, invstd;
    if (training) {
      double s = 0;
      for (int64_t q = 0; q < g.chunks; ++q) s += sum[q * C + c];
      const double NS = double(g.NS);
      mean = s / NS;
      double v = 0;
      for (int64_t q = 0; q < g.chunks; ++q) {
        const double cnt = double(chunk_end(g, q) - q * kChunk), d = sum[q * C + c] / cnt - mean;
        v += m2[q * C + c] + cnt * d * d;
      }
      invstd = norm_math::bn_train_stats(running_mean, running_var, c, mean, v / NS, NS,
                                         momentum, eps);
    } else {
      mean = double(running_mean[c]);
      invstd = norm_math::bn_eval_invstd(double(running_var[c]), eps);
    }
    save_mean[c] = T(mean);
    save_invstd[c] = T(invstd);
    const double w = weight ? double(weight[c]) : 1.0, b = bias ? double(bias[c]) : 0.0;
    set_affine(coef, C, c, mean, w * invstd, b);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
bn_apply_kernel(T* out, const T* inp, const T* coef, Channels g) {
  for (int64_t item = blockIdx.x; item < g.items(); item += gridDim.x) {
    const int64_t c = item % g.C, q = item / g.C, j0 = q * kChunk;
    const int64_t left = chunk_end(g, q) - j0 - threadIdx.x;
    const T mh = coef[kMh * g.C + c], ml = coef[kMl * g.C + c], a = coef[kA * g.C + c],
            b = coef[kB * g.C + c];
    // kGroup loads, then their stores: loads in flight without holding a chunk's offsets.
    Walk w(g, c, j0 + threadIdx.x);
#pragma unroll
    for (int k0 = 0; k0 < kPer; k0 += kGroup) {
      T v[kGroup];
      int64_t off[kGroup];
#pragma unroll
      for (int k = 0; k < kGroup; ++k) {
        off[k] = w.off;
        v[k] = (k0 + k) * kThreads < left ? inp[w.off] : T(0);
        w.next(g);
      }
#pragma unroll
      for (int k = 0; k < kGroup; ++k) {
        if ((k0 + k) * kThreads < left) out[off[k]] = ((v[k] - mh) - ml) * a + b;
      }
    }
  }
}

// Chunk sums of dy, dy * (x - m0) and x - m0 with m0 = save_mean[c], in double: rows of
// g.items() in `part`, item = q*C + c.
template <typename T>
__global__ void __launch_bounds__(kThreads)
bn_grad_sums_kernel(double* part, const T* dout, const T* inp, const T* save_mean, Channels g) {
  __shared__ double shared[32];
  const int64_t items = g.items();
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t c = item % g.C, q = item / g.C, j0 = q * kChunk;
    const int64_t left = chunk_end(g, q) - j0 - threadIdx.x;
    const double m0 = double(save_mean[c]);
    double sdy = 0, sdyd = 0, sd = 0;
    Walk w(g, c, j0 + threadIdx.x);
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      if (k * kThreads < left) {
        const double dy = double(dout[w.off]), xm = double(inp[w.off]) - m0;
        sdy += dy;
        sdyd += dy * xm;
        sd += xm;
      }
      w.next(g);
    }
    sdy = cuda::block_sum(sdy, shared);
    sdyd = cuda::block_sum(sdyd, shared);
    sd = cuda::block_sum(sd, shared);
    if (threadIdx.x == 0) {
      part[item] = sdy;
      part[items + item] = sdyd;
      part[2 * items + item] = sd;
    }
  }
}

// One thread per channel: the chunk sums combined in chunk order (none when part is null), the
// parameter gradients accumulated and the coefficients of the dinp pass.
template <typename T>
__global__ void bn_backward_finish_kernel(T* coef, T* dweight, T* dbias, const double* part,
                                          const T* weight, const T* save_mean,
                                          const T* save_invstd, Channels g, bool training) {
  const int64_t C = g.C, items = g.items(), step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C; c += step) {
    double sdy = 0, sdyd = 0, sd = 0;
    if (part) {
      for (int64_t q = 0; q < g.chunks; ++q) {
        sdy += part[q * C + c];
        sdyd += part[items + q * C + c];
        sd += part[2 * items + q * C + c];
      }
    }
    const double invstd = double(save_invstd[c]), w = weight ? double(weight[c]) : 1.0;
    coef[kG * C + c] = T(w * invstd);
    if (!training) {
      // The running statistics are constants: dx = dy * weight * invstd.
      if (dweight) dweight[c] += T(sdyd * invstd);
      if (dbias) dbias[c] += T(sdy);
      continue;
    }
    const norm_math::BnGrad d = norm_math::bn_train_grad(sdy, sdyd, sd, double(save_mean[c]),
                                                         invstd, w, double(g.NS));
    if (dweight) dweight[c] += T(d.dweight);
    if (dbias) dbias[c] += T(sdy);
    set_affine(coef, C, c, d.mean, d.a, d.b);
  }
}

// training: dx = g dy + ((x - mh) - ml) a + b; eval: dx = g dy (x is not read).
template <typename T, bool kTraining>
__global__ void __launch_bounds__(kThreads)
bn_dinp_kernel(T* dinp, const T* dout, const T* inp, const T* coef, Channels g) {
  for (int64_t item = blockIdx.x; item < g.items(); item += gridDim.x) {
    const int64_t c = item % g.C, q = item / g.C, j0 = q * kChunk;
    const int64_t left = chunk_end(g, q) - j0 - threadIdx.x;
    const T gc = coef[kG * g.C + c];
    T mh = T(0), ml = T(0), a = T(0), b = T(0);
    if (kTraining) {
      mh = coef[kMh * g.C + c];
      ml = coef[kMl * g.C + c];
      a = coef[kA * g.C + c];
      b = coef[kB * g.C + c];
    }
    Walk w(g, c, j0 + threadIdx.x);
#pragma unroll
    for (int k0 = 0; k0 < kPer; k0 += kGroup) {
      T dy[kGroup], x[kGroup];
      int64_t off[kGroup];
#pragma unroll
      for (int k = 0; k < kGroup; ++k) {
        const bool in = (k0 + k) * kThreads < left;
        off[k] = w.off;
        dy[k] = in ? dout[w.off] : T(0);
        x[k] = kTraining && in ? inp[w.off] : T(0);
        w.next(g);
      }
#pragma unroll
      for (int k = 0; k < kGroup; ++k) {
        if ((k0 + k) * kThreads < left) {
          dinp[off[k]] = kTraining ? gc * dy[k] + (((x[k] - mh) - ml) * a + b) : gc * dy[k];
        }
      }
    }
  }
}

// den^beta; beta = 0.75 (the default, and AlexNet's) as the CPU computes it, sqrt(den) *
// sqrt(sqrt(den)).
__device__ inline double pow_beta(double den, double beta, bool three_quarters) {
  if (three_quarters) {
    const double r = sqrt(den);
    return r * sqrt(r);
  }
  return pow(den, beta);
}

// k + alpha/size * the sum of x^2 over channel c's window [c - size/2, c + (size-1)/2] within
// [0, C), in channel order; col points at channel 0 of one (n, s) column, channels S apart.
template <typename T>
__device__ inline double lrn_den(const T* col, int64_t C, int64_t S, int64_t c, int64_t size,
                                 double scale, double k) {
  const int64_t lo = c - size / 2 > 0 ? c - size / 2 : 0;
  const int64_t hi = c + (size - 1) / 2 < C - 1 ? c + (size - 1) / 2 : C - 1;
  double acc = 0;
  for (int64_t j = lo; j <= hi; ++j) {
    const double x = double(col[j * S]);
    acc += x * x;
  }
  return k + scale * acc;
}

}  // namespace

template <typename T>
void batch_norm_forward_cuda(T* out, T* save_mean, T* save_invstd, T* running_mean,
                             T* running_var, const T* inp, const T* weight, const T* bias,
                             int64_t N, int64_t C, int64_t S, bool training, double momentum,
                             double eps) {
  if (C == 0) return;
  const Channels g = channels(N, C, S);
  const int64_t items = g.items();
  cuda::Scratch stats(training ? 2 * items * sizeof(double) : 0, "batch_norm_forward_cuda");
  cuda::Scratch coef(kCoefs * C * sizeof(T), "batch_norm_forward_cuda");
  double* sum = stats.as<double>();
  double* m2 = training ? sum + items : nullptr;
  if (training && items > 0) {
    bn_stats_kernel<T><<<chunk_grid(items), kThreads, 0, cuda::stream()>>>(sum, m2, inp, g);
    FC_CUDA_LAUNCHED("batch_norm_forward_cuda (statistics)");
  }
  bn_forward_finish_kernel<T><<<cuda::grid_for(C, 128), 128, 0, cuda::stream()>>>(
      coef.as<T>(), save_mean, save_invstd, running_mean, running_var, sum, m2, weight, bias, g,
      training, momentum, eps);
  FC_CUDA_LAUNCHED("batch_norm_forward_cuda (per-channel statistics)");
  if (items > 0) {
    bn_apply_kernel<T><<<chunk_grid(items), kThreads, 0, cuda::stream()>>>(out, inp,
                                                                          coef.as<T>(), g);
    FC_CUDA_LAUNCHED("batch_norm_forward_cuda (normalise)");
  }
}

template <typename T>
void batch_norm_backward_cuda(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                              const T* weight, const T* save_mean, const T* save_invstd,
                              int64_t N, int64_t C, int64_t S, bool training) {
  // The per-channel sums are needed by dinp only in training; the affine map of eval is not.
  const bool sums = dweight || dbias || (training && dinp);
  if (C == 0 || (!sums && !dinp)) return;
  const Channels g = channels(N, C, S);
  const int64_t items = g.items();
  cuda::Scratch part(sums ? 3 * items * sizeof(double) : 0, "batch_norm_backward_cuda");
  cuda::Scratch coef(kCoefs * C * sizeof(T), "batch_norm_backward_cuda");
  if (sums && items > 0) {
    bn_grad_sums_kernel<T><<<chunk_grid(items), kThreads, 0, cuda::stream()>>>(
        part.as<double>(), dout, inp, save_mean, g);
    FC_CUDA_LAUNCHED("batch_norm_backward_cuda (sums)");
  }
  bn_backward_finish_kernel<T><<<cuda::grid_for(C, 128), 128, 0, cuda::stream()>>>(
      coef.as<T>(), dweight, dbias, sums ? part.as<double>() : nullptr, weight, save_mean,
      save_invstd, g, training);
  FC_CUDA_LAUNCHED("batch_norm_backward_cuda (per-channel sums)");
  if (dinp && items > 0) {
    if (training) {
      bn_dinp_kernel<T, true><<<chunk_grid(items), kThreads, 0, cuda::stream()>>>(
          dinp, dout, inp, coef.as<T>(), g);
    } else {
      bn_dinp_kernel<T, false><<<chunk_grid(items), kThreads, 0, cuda::stream()>>>(
          dinp, dout, inp, coef.as<T>(), g);
    }
    FC_CUDA_LAUNCHED("batch_norm_backward_cuda (grad_input)");
  }
}

// One thread per output element, its window summed in channel order from the input (L1/L2 hits
// after the first read).
template <typename T>
void local_response_norm_forward_cuda(T* out, const T* inp, int64_t N, int64_t C, int64_t S,
                                      int64_t size, double alpha, double beta, double k) {
  const double scale = alpha / double(size);
  const bool tq = beta == 0.75;
  cuda::for_each("local_response_norm_forward_cuda", N * C * S, [=] __device__(int64_t i) {
    const int64_t c = (i / S) % C;
    const double den = lrn_den(inp + (i - c * S), C, S, c, size, scale, k);
    out[i] = T(double(inp[i]) / pow_beta(den, beta, tq));
  });
}

// With out_c = x_c / den_c^beta and den_c = k + alpha/size * sum_{j in W(c)} x_j^2:
//   dx_i = dy_i / den_i^beta - 2 alpha beta / size * x_i * sum_{c : i in W(c)} t_c,
//   t_c = dy_c * x_c / (den_c^beta * den_c),
// where i in W(c) <=> c in [i - (size-1)/2, i + size/2]. One thread per element recomputes the
// t_c it needs (a window of windows, O(size^2) reads, all cached), so nothing is stored between
// passes and the sums keep the CPU's channel order.
template <typename T>
void local_response_norm_backward_cuda(T* dinp, const T* dout, const T* inp, int64_t N, int64_t C,
                                       int64_t S, int64_t size, double alpha, double beta,
                                       double k) {
  const double scale = alpha / double(size), coef = 2.0 * alpha * beta / double(size);
  const bool tq = beta == 0.75;
  cuda::for_each("local_response_norm_backward_cuda", N * C * S, [=] __device__(int64_t i) {
    const int64_t c = (i / S) % C, base = i - c * S;  // channel 0 of i's (n, s) column
    const T* xcol = inp + base;
    const T* dycol = dout + base;
    const int64_t lo = c - (size - 1) / 2 > 0 ? c - (size - 1) / 2 : 0;
    const int64_t hi = c + size / 2 < C - 1 ? c + size / 2 : C - 1;
    double acc = 0;
    for (int64_t j = lo; j <= hi; ++j) {
      const double den = lrn_den(xcol, C, S, j, size, scale, k);
      acc += double(dycol[j * S]) * double(xcol[j * S]) / (pow_beta(den, beta, tq) * den);
    }
    const double p = pow_beta(lrn_den(xcol, C, S, c, size, scale, k), beta, tq);
    // beta 0: the cross term is 0 * x_i, not 0 times an acc that may be inf or NaN (the CPU's)
    const double cross = beta == 0 ? 0.0 * double(inp[i]) : -coef * double(inp[i]) * acc;
    dinp[i] = T(double(dout[i]) / p + cross);
  });
}

FC_NORM_OPS(FC_INSTANTIATE_CUDA, float)
FC_NORM_OPS(FC_INSTANTIATE_CUDA, double)

}  // namespace fc
