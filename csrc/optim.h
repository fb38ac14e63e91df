// Fused optimizer updates: one pass over a parameter reads its gradient and state and writes
// the new parameter and state, with torch.optim's math and order of operations (single-tensor
// path). Step-dependent scalars (bias corrections, decayed learning rates) come from Python.
#pragma once

#include <cstdint>

#include "common.h"

namespace fc {

struct SgdArgs {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize, first_step;  // first_step: the momentum buffer starts as the gradient
};
// param[n] -= lr * update; momentum_buf[n] (null when momentum == 0) updated in place.
FC_KERNEL(sgd_step, T* param, T* momentum_buf, const T* grad, int64_t n, const SgdArgs& a);

struct AdagradArgs {
  double clr, weight_decay, eps;  // clr = lr / (1 + (step - 1) * lr_decay)
  bool maximize;
};
FC_KERNEL(adagrad_step, T* param, T* state_sum, const T* grad, int64_t n, const AdagradArgs& a);

struct RmspropArgs {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
};
// grad_avg is null unless centered; momentum_buf is null unless momentum > 0.
FC_KERNEL(rmsprop_step, T* param, T* square_avg, T* grad_avg, T* momentum_buf, const T* grad,
          int64_t n, const RmspropArgs& a);

struct AdamArgs {
  double lr, beta1, beta2, eps, weight_decay;
  double step_size, bias_correction2_sqrt;  // lr / (1 - beta1^t), sqrt(1 - beta2^t)
  bool amsgrad, maximize, decoupled;        // decoupled: AdamW's weight decay
};
// max_exp_avg_sq is null unless amsgrad.
FC_KERNEL(adam_step, T* param, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, const T* grad,
          int64_t n, const AdamArgs& a);

}  // namespace fc
