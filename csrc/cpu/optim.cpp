// Fused optimizer updates on the CPU. Each element's update only reads and writes that
// element, so the loops split across threads with results independent of the thread count.
// Scalars are cast to T before use and expressions keep ATen's evaluation order
// (addcdiv is self + (value * t1) / t2), so float64 results match torch.optim to rounding.
#include "optim.h"

#include <algorithm>
#include <cmath>

#include "cpu/parallel.h"

namespace fc {
namespace {

constexpr int64_t kParallelMin = 1 << 15;

// torch's lerp: exact at both ends and symmetric in rounding.
template <typename T>
inline T lerp(T self, T end, T w) {
  return w < T(0.5) ? self + w * (end - self) : end - (end - self) * (T(1) - w);
}

}  // namespace

template <typename T>
void sgd_step_cpu(T* param, T* buf, const T* grad, int64_t n, const SgdArgs& a) {
  const T lr = T(a.lr), mom = T(a.momentum), damp1 = T(1 - a.dampening), wd = T(a.weight_decay);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    T g = a.maximize ? -grad[i] : grad[i];
    if (a.weight_decay != 0) g = g + wd * param[i];
    if (buf) {
      buf[i] = a.first_step ? g : buf[i] * mom + damp1 * g;
      g = a.nesterov ? g + mom * buf[i] : buf[i];
    }
    param[i] = param[i] + (-lr) * g;
  }
}

template <typename T>
void adagrad_step_cpu(T* param, T* sum, const T* grad, int64_t n, const AdagradArgs& a) {
  const T clr = T(a.clr), wd = T(a.weight_decay), eps = T(a.eps);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    T g = a.maximize ? -grad[i] : grad[i];
    if (a.weight_decay != 0) g = g + wd * param[i];
    sum[i] = sum[i] + g * g;
    param[i] = param[i] + (-clr) * g / (std::sqrt(sum[i]) + eps);
  }
}

template <typename T>
void rmsprop_step_cpu(T* param, T* sq, T* gavg, T* buf, const T* grad, int64_t n,
                      const RmspropArgs& a) {
  const T lr = T(a.lr), alpha = T(a.alpha), one_m_alpha = T(1 - a.alpha), eps = T(a.eps);
  const T wd = T(a.weight_decay), mom = T(a.momentum);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    T g = a.maximize ? -grad[i] : grad[i];
    if (a.weight_decay != 0) g = g + wd * param[i];
    sq[i] = sq[i] * alpha + one_m_alpha * g * g;
    T avg;
    if (gavg) {
      gavg[i] = lerp(gavg[i], g, one_m_alpha);
      avg = std::sqrt(sq[i] + T(-1) * gavg[i] * gavg[i]) + eps;
    } else {
      avg = std::sqrt(sq[i]) + eps;
    }
    if (buf) {
      buf[i] = buf[i] * mom + g / avg;
      param[i] = param[i] + (-lr) * buf[i];
    } else {
      param[i] = param[i] + (-lr) * g / avg;
    }
  }
}

template <typename T>
void adam_step_cpu(T* param, T* m, T* v, T* vmax, const T* grad, int64_t n, const AdamArgs& a) {
  const T b1w = T(1 - a.beta1), b2 = T(a.beta2), one_m_b2 = T(1 - a.beta2), eps = T(a.eps);
  const T wd = T(a.weight_decay), decay = T(1 - a.lr * a.weight_decay);
  const T step_size = T(a.step_size), bc2 = T(a.bias_correction2_sqrt);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    T g = a.maximize ? -grad[i] : grad[i];
    if (a.weight_decay != 0) {
      if (a.decoupled) param[i] = param[i] * decay;
      else g = g + wd * param[i];
    }
    m[i] = lerp(m[i], g, b1w);
    v[i] = v[i] * b2 + one_m_b2 * g * g;
    T second = v[i];
    if (vmax) second = vmax[i] = std::max(vmax[i], v[i]);
    param[i] = param[i] + (-step_size) * m[i] / (std::sqrt(second) / bc2 + eps);
  }
}

#define FC_INSTANTIATE(T)                                                                    \
  template void sgd_step_cpu<T>(T*, T*, const T*, int64_t, const SgdArgs&);                 \
  template void adagrad_step_cpu<T>(T*, T*, const T*, int64_t, const AdagradArgs&);         \
  template void rmsprop_step_cpu<T>(T*, T*, T*, T*, const T*, int64_t, const RmspropArgs&); \
  template void adam_step_cpu<T>(T*, T*, T*, T*, const T*, int64_t, const AdamArgs&);
FC_INSTANTIATE(float)
FC_INSTANTIATE(double)
#undef FC_INSTANTIATE

}  // namespace fc
