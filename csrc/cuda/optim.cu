// Fused optimizer updates on the GPU: one thread per element by a grid-stride loop, with the CPU
// twins' expressions and evaluation order (cpu/optim.cpp: scalars cast to T first, addcdiv as
// self + (value * t1) / t2). nvcc may fuse a multiply and an add into one FMA, so float results
// can differ from the CPU's in the last bit; each element's update depends on that element only.
#include "optim.h"
#include "cuda/cuda_common.cuh"

namespace fc {
namespace {

__device__ inline float sqrt_of(float x) { return sqrtf(x); }
__device__ inline double sqrt_of(double x) { return sqrt(x); }

// torch's lerp: exact at both ends and symmetric in rounding.
template <typename T>
__device__ inline T lerp(T self, T end, T w) {
  return w < T(0.5) ? self + w * (end - self) : end - (end - self) * (T(1) - w);
}

}  // namespace

template <typename T>
void sgd_step_cuda(T* param, T* buf, const T* grad, int64_t n, const SgdArgs& a) {
  const T lr = T(a.lr), mom = T(a.momentum), damp1 = T(1 - a.dampening), wd = T(a.weight_decay);
  const bool decay = a.weight_decay != 0, nesterov = a.nesterov, maximize = a.maximize,
             first = a.first_step;
  cuda::for_each("sgd_step_cuda", n, [=] __device__(int64_t i) {
    T g = maximize ? -grad[i] : grad[i];
    if (decay) g = g + wd * param[i];
    if (buf) {
      const T b = first ? g : buf[i] * mom + damp1 * g;
      buf[i] = b;
      g = nesterov ? g + mom * b : b;
    }
    param[i] = param[i] + (-lr) * g;
  });
}

template <typename T>
void adagrad_step_cuda(T* param, T* sum, const T* grad, int64_t n, const AdagradArgs& a) {
  const T clr = T(a.clr), wd = T(a.weight_decay), eps = T(a.eps);
  const bool decay = a.weight_decay != 0, maximize = a.maximize;
  cuda::for_each("adagrad_step_cuda", n, [=] __device__(int64_t i) {
    T g = maximize ? -grad[i] : grad[i];
    if (decay) g = g + wd * param[i];
    const T s = sum[i] + g * g;
    sum[i] = s;
    param[i] = param[i] + (-clr) * g / (sqrt_of(s) + eps);
  });
}

template <typename T>
void rmsprop_step_cuda(T* param, T* sq, T* gavg, T* buf, const T* grad, int64_t n,
                       const RmspropArgs& a) {
  const T lr = T(a.lr), alpha = T(a.alpha), one_m_alpha = T(1 - a.alpha), eps = T(a.eps);
  const T wd = T(a.weight_decay), mom = T(a.momentum);
  const bool decay = a.weight_decay != 0, maximize = a.maximize;
  cuda::for_each("rmsprop_step_cuda", n, [=] __device__(int64_t i) {
    T g = maximize ? -grad[i] : grad[i];
    if (decay) g = g + wd * param[i];
    const T s = sq[i] * alpha + one_m_alpha * g * g;
    sq[i] = s;
    T avg;
    if (gavg) {
      const T ga = lerp(gavg[i], g, one_m_alpha);
      gavg[i] = ga;
      avg = sqrt_of(s + T(-1) * ga * ga) + eps;
    } else {
      avg = sqrt_of(s) + eps;
    }
    if (buf) {
      const T b = buf[i] * mom + g / avg;
      buf[i] = b;
      param[i] = param[i] + (-lr) * b;
    } else {
      param[i] = param[i] + (-lr) * g / avg;
    }
  });
}

template <typename T>
void adam_step_cuda(T* param, T* m, T* v, T* vmax, const T* grad, int64_t n, const AdamArgs& a) {
  const T b1w = T(1 - a.beta1), b2 = T(a.beta2), one_m_b2 = T(1 - a.beta2), eps = T(a.eps);
  const T wd = T(a.weight_decay), decay = T(1 - a.lr * a.weight_decay);
  const T step_size = T(a.step_size), bc2 = T(a.bias_correction2_sqrt);
  const bool has_decay = a.weight_decay != 0, decoupled = a.decoupled, maximize = a.maximize;
  cuda::for_each("adam_step_cuda", n, [=] __device__(int64_t i) {
    T g = maximize ? -grad[i] : grad[i];
    T p = param[i];
    if (has_decay) {
      if (decoupled) p = p * decay;
      else g = g + wd * p;
    }
    const T mi = lerp(m[i], g, b1w);
    m[i] = mi;
    const T vi = v[i] * b2 + one_m_b2 * g * g;
    v[i] = vi;
    T second = vi;
    if (vmax) {
      second = vmax[i] < vi ? vi : vmax[i];  // std::max(vmax, v), NaN handling included
      vmax[i] = second;
    }
    param[i] = p + (-step_size) * mi / (sqrt_of(second) / bc2 + eps);
  });
}

#define FC_INSTANTIATE(T)                                                                     \
  template void sgd_step_cuda<T>(T*, T*, const T*, int64_t, const SgdArgs&);                 \
  template void adagrad_step_cuda<T>(T*, T*, const T*, int64_t, const AdagradArgs&);         \
  template void rmsprop_step_cuda<T>(T*, T*, T*, T*, const T*, int64_t, const RmspropArgs&); \
  template void adam_step_cuda<T>(T*, T*, T*, T*, const T*, int64_t, const AdamArgs&);
FC_INSTANTIATE(float)
FC_INSTANTIATE(double)
#undef FC_INSTANTIATE

}  // namespace fc
