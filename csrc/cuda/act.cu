// Activations and softmax on the GPU: the CPU twins' formulas, NaN behaviour and kink
// conventions (see act.h), elementwise by a grid-stride loop, softmax reductions in double in
// a fixed order so results do not depend on the launch shape.
#include "act.h"
#include "cuda/cuda_common.cuh"

#include <math_constants.h>

namespace fc {
namespace {

__device__ inline float exp_of(float x) { return expf(x); }
__device__ inline double exp_of(double x) { return exp(x); }

}  // namespace

// Named, not anonymous: the extended __device__ lambdas below live in these functions.
namespace act_cuda {

// The device's math for the formulas in act.h (act::<op><DeviceMath, T>): CUDA's float and
// double functions, and a plain select.
struct DeviceMath {
  template <typename T> FC_HOST_DEVICE static T select(bool c, T a, T b) { return c ? a : b; }
  FC_HOST_DEVICE static float exp(float x) { return expf(x); }
  FC_HOST_DEVICE static double exp(double x) { return ::exp(x); }
  FC_HOST_DEVICE static float expm1(float x) { return expm1f(x); }
  FC_HOST_DEVICE static double expm1(double x) { return ::expm1(x); }
  FC_HOST_DEVICE static float tanh(float x) { return tanhf(x); }
  FC_HOST_DEVICE static double tanh(double x) { return ::tanh(x); }
  FC_HOST_DEVICE static float erf(float x) { return erff(x); }
  FC_HOST_DEVICE static double erf(double x) { return ::erf(x); }
  FC_HOST_DEVICE static float log1p_exp(float x) { return log1pf(expf(x)); }
  FC_HOST_DEVICE static double log1p_exp(double x) { return ::log1p(::exp(x)); }
};

// The elementwise twins' kernels: f an act::<op><DeviceMath, T>, captured by value.
template <typename T, typename F>
void map_forward(const char* name, T* out, const T* inp, int64_t n, F f) {
  cuda::for_each(name, n, [=] __device__(int64_t i) { out[i] = f.forward(inp[i]); });
}

template <typename T, typename F>
void map_backward(const char* name, T* dinp, const T* dout, const T* inp, int64_t n, F f) {
  cuda::for_each(name, n, [=] __device__(int64_t i) { dinp[i] = f.backward(dout[i], inp[i]); });
}

template <typename T, typename F>
void map_backward_from_output(const char* name, T* dinp, const T* dout, const T* out,
                              const T* inp, int64_t n, F f) {
  cuda::for_each(name, n, [=] __device__(int64_t i) {
    const T y = out ? out[i] : f.forward(inp[i]);
    dinp[i] = f.grad(dout[i], y);
  });
}

}  // namespace act_cuda

namespace {

__device__ inline double block_max_ignoring_nan(double v, double* shared) {
  for (int o = 16; o > 0; o >>= 1) {
    const double u = __shfl_down_sync(0xffffffffu, v, o);
    v = u > v ? u : v;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = threadIdx.x < (blockDim.x >> 5) ? shared[threadIdx.x] : -CUDART_INF;
    for (int o = 16; o > 0; o >>= 1) {
      const double u = __shfl_down_sync(0xffffffffu, v, o);
      v = u > v ? u : v;
    }
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  return shared[0];
}

constexpr int kRowThreads = 256;

// One block per row (inner == 1). The max skips NaN (as `x > m ? x : m` does on the CPU); a NaN,
// +inf or all -inf row then gives NaN through x - m, as PyTorch.
template <typename T, bool Log>
__global__ void softmax_rows_kernel(T* y, const T* x, int64_t rows, int64_t D) {
  __shared__ double shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    double m = -CUDART_INF;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) m = double(xr[d]) > m ? double(xr[d]) : m;
    const T mt = T(block_max_ignoring_nan(m, shared));
    double s = 0;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) s += double(exp_of(T(xr[d] - mt)));
    s = cuda::block_sum(s, shared);
    if (Log) {
      const double ls = log(s);
      for (int64_t d = threadIdx.x; d < D; d += blockDim.x) yr[d] = T(double(xr[d] - mt) - ls);
    } else {
      const double inv = 1.0 / s;
      for (int64_t d = threadIdx.x; d < D; d += blockDim.x) yr[d] = T(double(exp_of(T(xr[d] - mt))) * inv);
    }
  }
}

// One thread per (outer, inner) lane, walking D with stride inner: neighbouring threads read
// neighbouring addresses.
template <typename T, bool Log>
__global__ void softmax_lanes_kernel(T* y, const T* x, int64_t outer, int64_t D, int64_t inner) {
  const int64_t lanes = outer * inner, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < lanes; l += step) {
    const int64_t off = (l / inner) * D * inner + l % inner;
    T m = -CUDART_INF;
    for (int64_t d = 0; d < D; ++d) m = x[off + d * inner] > m ? x[off + d * inner] : m;
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += double(exp_of(T(x[off + d * inner] - m)));
    const double t = Log ? log(s) : 1.0 / s;
    for (int64_t d = 0; d < D; ++d) {
      const T v = T(x[off + d * inner] - m);
      y[off + d * inner] = Log ? T(double(v) - t) : T(double(exp_of(v)) * t);
    }
  }
}

// softmax: dx = y * (g - sum(g * y)); log_softmax: dx = g - exp(y) * sum(g).
template <typename T, bool Log>
__global__ void softmax_backward_rows_kernel(T* dx, const T* g, const T* y, int64_t rows,
                                             int64_t D) {
  __shared__ double shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t o = r * D;
    double s = 0;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
      s += Log ? double(g[o + d]) : double(g[o + d]) * double(y[o + d]);
    }
    const T st = T(cuda::block_sum(s, shared));
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
      dx[o + d] = Log ? T(g[o + d] - exp_of(y[o + d]) * st) : T(y[o + d] * (g[o + d] - st));
    }
  }
}

template <typename T, bool Log>
__global__ void softmax_backward_lanes_kernel(T* dx, const T* g, const T* y, int64_t outer,
                                              int64_t D, int64_t inner) {
  const int64_t lanes = outer * inner, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < lanes; l += step) {
    const int64_t off = (l / inner) * D * inner + l % inner;
    double s = 0;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t i = off + d * inner;
      s += Log ? double(g[i]) : double(g[i]) * double(y[i]);
    }
    const T st = T(s);
    for (int64_t d = 0; d < D; ++d) {
      const int64_t i = off + d * inner;
      dx[i] = Log ? T(g[i] - exp_of(y[i]) * st) : T(y[i] * (g[i] - st));
    }
  }
}

unsigned row_grid(int64_t rows) {
  const int64_t cap = int64_t(cuda::sm_count()) * 16;
  return unsigned(rows < cap ? rows : cap);
}

template <typename T, bool Log>
void softmax_forward(T* out, const T* inp, int64_t outer, int64_t D, int64_t inner) {
  if (outer * D * inner == 0) return;
  if (inner == 1) {
    softmax_rows_kernel<T, Log><<<row_grid(outer), kRowThreads, 0, cuda::stream()>>>(out, inp, outer, D);
  } else {
    softmax_lanes_kernel<T, Log><<<cuda::grid_for(outer * inner, 256), 256, 0, cuda::stream()>>>(
        out, inp, outer, D, inner);
  }
  FC_CUDA_LAUNCHED(Log ? "log_softmax_forward_cuda" : "softmax_forward_cuda");
}

template <typename T, bool Log>
void softmax_backward(T* dinp, const T* dout, const T* out, int64_t outer, int64_t D,
                      int64_t inner) {
  if (outer * D * inner == 0) return;
  if (inner == 1) {
    softmax_backward_rows_kernel<T, Log><<<row_grid(outer), kRowThreads, 0, cuda::stream()>>>(
        dinp, dout, out, outer, D);
  } else {
    softmax_backward_lanes_kernel<T, Log><<<cuda::grid_for(outer * inner, 256), 256, 0,
                                            cuda::stream()>>>(dinp, dout, out, outer, D, inner);
  }
  FC_CUDA_LAUNCHED(Log ? "log_softmax_backward_cuda" : "softmax_backward_cuda");
}

}  // namespace

// The elementwise twins, from the list in act.h.
#define FC_ACT_CUDA_OP(op, T, names) act::op<act_cuda::DeviceMath, T>(FC_ACT_UNPAREN names)
#define FC_ACT_CUDA_TWINS(X, T, op, bkind, decls, names)                                    \
  template <typename T>                                                                     \
  void op##_forward_cuda(T* out, const T* inp, int64_t n FC_ACT_UNPAREN decls) {            \
    act_cuda::map_forward(#op "_forward_cuda", out, inp, n, FC_ACT_CUDA_OP(op, T, names));  \
  }                                                                                         \
  FC_ACT_CUDA_BACKWARD_##bkind(T, op, decls, names)
#define FC_ACT_CUDA_BACKWARD_ElementwiseGrad(T, op, decls, names)                           \
  template <typename T>                                                                     \
  void op##_backward_cuda(T* dinp, const T* dout, const T* inp,                             \
                          int64_t n FC_ACT_UNPAREN decls) {                                 \
    act_cuda::map_backward(#op "_backward_cuda", dinp, dout, inp, n,                        \
                           FC_ACT_CUDA_OP(op, T, names));                                   \
  }
#define FC_ACT_CUDA_BACKWARD_ElementwiseGradOut(T, op, decls, names)                        \
  template <typename T>                                                                     \
  void op##_backward_cuda(T* dinp, const T* dout, const T* out, const T* inp,               \
                          int64_t n FC_ACT_UNPAREN decls) {                                 \
    act_cuda::map_backward_from_output(#op "_backward_cuda", dinp, dout, out, inp, n,       \
                                       FC_ACT_CUDA_OP(op, T, names));                       \
  }
FC_ACT_ELEMENTWISE(FC_ACT_CUDA_TWINS, X, T)

FC_SOFTMAX_TWINS(cuda)

FC_ACT_OPS(FC_INSTANTIATE_CUDA, float)
FC_ACT_OPS(FC_INSTANTIATE_CUDA, double)

}  // namespace fc
