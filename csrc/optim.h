// Fused optimizer updates: one pass over a parameter reads its gradient and state and writes
// the new parameter and state, with torch.optim's math and order of operations (single-tensor
// path). Step-dependent scalars (bias corrections, decayed learning rates) come from Python.
// Each update's per-element math is written once, below, as an FC_HOST_DEVICE step that both
// twins call for element i: scalars are cast to T first and expressions keep ATen's evaluation
// order (addcdiv is self + (value * t1) / t2), so float64 results match torch.optim to
// rounding. nvcc may fuse a multiply and an add into one FMA, so float results on a GPU can
// differ from the CPU's in the last bit.
#pragma once

#include <cmath>
#include <cstdint>

#include "common.h"

namespace fc {

struct SgdArgs {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize, first_step;  // first_step: the momentum buffer starts as the gradient
};

struct AdagradArgs {
  double clr, weight_decay, eps;  // clr = lr / (1 + (step - 1) * lr_decay)
  bool maximize;
};

struct RmspropArgs {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
};

struct AdamArgs {
  double lr, beta1, beta2, eps, weight_decay;
  double step_size, bias_correction2_sqrt;  // lr / (1 - beta1^t), sqrt(1 - beta2^t)
  bool amsgrad, maximize, decoupled;        // decoupled: AdamW's weight decay
};

// The op list (see FC_DECLARE in common.h). One kind per optimizer (its scalars are its own):
// the parameter and its state buffers (updated in place; an optional buffer is null when not
// used), the gradient, n, and the optimizer's scalars.
#define FC_OPTIM_OPS(X, T)                                                                  \
  /* param[n] -= lr * update; momentum_buf[n] (null when momentum == 0) updated in place. */\
  X(sgd_step, SgdStep, T* param, T* momentum_buf, const T* grad, int64_t n,                 \
    const SgdArgs& a)                                                                       \
  X(adagrad_step, AdagradStep, T* param, T* state_sum, const T* grad, int64_t n,            \
    const AdagradArgs& a)                                                                   \
  /* grad_avg is null unless centered; momentum_buf is null unless momentum > 0. */         \
  X(rmsprop_step, RmspropStep, T* param, T* square_avg, T* grad_avg, T* momentum_buf,       \
    const T* grad, int64_t n, const RmspropArgs& a)                                         \
  /* max_exp_avg_sq is null unless amsgrad. */                                              \
  X(adam_step, AdamStep, T* param, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq,            \
    const T* grad, int64_t n, const AdamArgs& a)

FC_OPTIM_OPS(FC_DECLARE, T)

namespace optim_math {

FC_HOST_DEVICE inline float sqrt_of(float x) { return sqrtf(x); }
FC_HOST_DEVICE inline double sqrt_of(double x) { return sqrt(x); }

// torch's lerp: exact at both ends and symmetric in rounding.
template <typename T>
FC_HOST_DEVICE inline T lerp(T self, T end, T w) {
  return w < T(0.5) ? self + w * (end - self) : end - (end - self) * (T(1) - w);
}

// Each update holds its scalars in T and the flags it branches on (a plain struct, captured by
// value by the CUDA twin's lambda); step(..., i) updates element i.
template <typename T>
struct Sgd {
  T lr, mom, damp1, wd;
  bool decay, nesterov, maximize, first;
  explicit Sgd(const SgdArgs& a)
      : lr(T(a.lr)), mom(T(a.momentum)), damp1(T(1 - a.dampening)), wd(T(a.weight_decay)),
        decay(a.weight_decay != 0), nesterov(a.nesterov), maximize(a.maximize),
        first(a.first_step) {}
  FC_HOST_DEVICE void step(T* param, T* buf, const T* grad, int64_t i) const {
    T g = maximize ? -grad[i] : grad[i];
    if (decay) g = g + wd * param[i];
    if (buf) {
      const T b = first ? g : buf[i] * mom + damp1 * g;
      buf[i] = b;
      g = nesterov ? g + mom * b : b;
    }
    param[i] = param[i] + (-lr) * g;
  }
};

template <typename T>
struct Adagrad {
  T clr, wd, eps;
  bool decay, maximize;
  explicit Adagrad(const AdagradArgs& a)
      : clr(T(a.clr)), wd(T(a.weight_decay)), eps(T(a.eps)), decay(a.weight_decay != 0),
        maximize(a.maximize) {}
  FC_HOST_DEVICE void step(T* param, T* sum, const T* grad, int64_t i) const {
    T g = maximize ? -grad[i] : grad[i];
    if (decay) g = g + wd * param[i];
    const T s = sum[i] + g * g;
    sum[i] = s;
    param[i] = param[i] + (-clr) * g / (sqrt_of(s) + eps);
  }
};

template <typename T>
struct Rmsprop {
  T lr, alpha, one_m_alpha, eps, wd, mom;
  bool decay, maximize;
  explicit Rmsprop(const RmspropArgs& a)
      : lr(T(a.lr)), alpha(T(a.alpha)), one_m_alpha(T(1 - a.alpha)), eps(T(a.eps)),
        wd(T(a.weight_decay)), mom(T(a.momentum)), decay(a.weight_decay != 0),
        maximize(a.maximize) {}
  FC_HOST_DEVICE void step(T* param, T* sq, T* gavg, T* buf, const T* grad, int64_t i) const {
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
  }
};

template <typename T>
struct Adam {
  T b1w, b2, one_m_b2, eps, wd, decay, step_size, bc2;
  bool has_decay, decoupled, maximize;
  explicit Adam(const AdamArgs& a)
      : b1w(T(1 - a.beta1)), b2(T(a.beta2)), one_m_b2(T(1 - a.beta2)), eps(T(a.eps)),
        wd(T(a.weight_decay)), decay(T(1 - a.lr * a.weight_decay)), step_size(T(a.step_size)),
        bc2(T(a.bias_correction2_sqrt)), has_decay(a.weight_decay != 0),
        decoupled(a.decoupled), maximize(a.maximize) {}
  FC_HOST_DEVICE void step(T* param, T* m, T* v, T* vmax, const T* grad, int64_t i) const {
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
  }
};

}  // namespace optim_math
}  // namespace fc
