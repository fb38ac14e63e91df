// Loss family: cross_entropy (class-index and class-probability targets), mse_loss,
// multi_margin_loss, forward and backward, with torch.nn.functional's semantics.
// Contract: outputs and input gradients are written. Logits are laid out [N, C, S] (S = the
// product of the spatial sizes, 1 for (N, C) input); targets and per-element losses [N, S].
// Reductions accumulate in double over fixed blocks summed in order, so results do not depend
// on the thread count or on timing. Values are validated by the binding, not here.
#pragma once

#include "common.h"

namespace fc {

// Same numbering as torch's at::Reduction.
enum class Reduction { none = 0, mean = 1, sum = 2 };

// The op list (see FC_DECLARE in common.h). Kinds, for the binding: CrossEntropyLoss (out,
// logits, class-index targets, class weights or null, sizes and options) and its Grad (dinp,
// dout, then the forward's inputs and options), which also serve the class-probability twins
// (kind ProbTarget: bound under cross_entropy's name, picked for a float target); MarginLoss
// and its Grad, laid out as cross_entropy's; PairLoss (out, inp, target of inp's shape, n,
// reduction) and PairLossGrad (dinp, dout, inp, target, n, reduction).
#define FC_LOSS_OPS(X, T)                                                                      \
  /* out[N, S] (none) or out[] (mean, sum) = cross entropy of logits inp[N, C, S] against      \
     class indices target[N, S] in [0, C) or == ignore_index; weight[C] may be null (all       \
     ones). */                                                                                 \
  X(cross_entropy_forward, CrossEntropyLoss, T* out, const T* inp, const int64_t* target,      \
    const T* weight, int64_t N, int64_t C, int64_t S, int64_t ignore_index,                    \
    double label_smoothing, Reduction reduction)                                               \
  /* dinp[N, C, S] written from dout[N, S] (none) or dout[] (mean, sum). */                    \
  X(cross_entropy_backward, CrossEntropyLossGrad, T* dinp, const T* dout, const T* inp,        \
    const int64_t* target, const T* weight, int64_t N, int64_t C, int64_t S,                   \
    int64_t ignore_index, double label_smoothing, Reduction reduction)                         \
  /* out[N, S] or out[] = cross entropy of inp[N, C, S] against class probabilities            \
     target[N, C, S]. */                                                                       \
  X(cross_entropy_prob_forward, ProbTarget, T* out, const T* inp, const T* target,             \
    const T* weight, int64_t N, int64_t C, int64_t S, double label_smoothing,                  \
    Reduction reduction)                                                                       \
  /* dinp[N, C, S] written (the gradient with respect to the logits only). */                  \
  X(cross_entropy_prob_backward, ProbTarget, T* dinp, const T* dout, const T* inp,             \
    const T* target, const T* weight, int64_t N, int64_t C, int64_t S, double label_smoothing, \
    Reduction reduction)                                                                       \
  /* out[n] (none) or out[] = (inp[n] - target[n])^2 over n elements, reduced. */              \
  X(mse_loss_forward, PairLoss, T* out, const T* inp, const T* target, int64_t n,              \
    Reduction reduction)                                                                       \
  /* dinp[n] = 2 (inp - target) dout (/ n for mean); the target gradient is its negative. */   \
  X(mse_loss_backward, PairLossGrad, T* dinp, const T* dout, const T* inp, const T* target,    \
    int64_t n, Reduction reduction)                                                            \
  /* out[N] (none) or out[] = sum_{i != y} max(0, margin - inp[y] + inp[i])^p * weight[y] / C  \
     per row of inp[N, C], y = target[N]; weight[C] may be null; p is 1 or 2. */               \
  X(multi_margin_loss_forward, MarginLoss, T* out, const T* inp, const int64_t* target,        \
    const T* weight, int64_t N, int64_t C, int p, double margin, Reduction reduction)          \
  /* dinp[N, C] written from dout[N] (none) or dout[] (mean, sum). */                          \
  X(multi_margin_loss_backward, MarginLossGrad, T* dinp, const T* dout, const T* inp,          \
    const int64_t* target, const T* weight, int64_t N, int64_t C, int p, double margin,        \
    Reduction reduction)

FC_LOSS_OPS(FC_DECLARE, T)

// Per-element terms both twins use, in double unless said; the reductions around them are
// each twin's own (fixed orders, so results do not depend on timing).
namespace loss_math {

// torch's smoothed cross entropy from its separately reduced terms: torch reduces each before
// combining them, loss = (1 - eps) nll + eps / C smooth ('mean': each divided by the weight
// sum), nll = sum w_t (lse - x_t) and smooth = sum_c w_c (lse - x_c).
FC_HOST_DEVICE inline double ce_loss(double nll, double smooth, double eps, int64_t C,
                                     double divisor) {
  return eps > 0 ? (1 - eps) * (nll / divisor) + smooth / divisor * (eps / double(C))
                 : nll / divisor;
}

// The smoothed target probability y' = (1 - eps) y + eps / C.
FC_HOST_DEVICE inline double smoothed(double y, double eps, int64_t C) {
  return eps > 0 ? y * (1 - eps) + eps / double(C) : y;
}

// The class-index backward's coefficients for an item of upstream gradient s and target
// weight wt: d loss / d logp_c = -q [c == t] - k w_c.
FC_HOST_DEVICE inline void ce_grad_coef(double s, double wt, double eps, int64_t C, double& q,
                                        double& k) {
  q = (1 - eps) * wt * s;
  k = eps / double(C) * s;
}

// (a - b)^2 in U: T for 'none', double in the reductions.
template <typename U>
FC_HOST_DEVICE inline U sq_diff(U a, U b) {
  const U d = a - b;
  return d * d;
}

// mse's elementwise gradient for 'none'.
template <typename T>
FC_HOST_DEVICE inline T mse_grad(T x, T t, T dy) {
  return T(2) * (x - t) * dy;
}

// Row element i's hinge z = margin - x_y + x_i, in T as torch, so the hinge switches at the
// same inputs; true when it counts: i != y and z > 0 (false for NaN, which torch ignores).
template <typename T>
FC_HOST_DEVICE inline bool margin_hinge(T m, const T* x, int64_t y, int64_t i, T& z) {
  z = m - x[y] + x[i];
  return i != y && z > 0;
}
// The backward's scale of every hinge term: 1 / C, and 1 / N more for 'mean'.
FC_HOST_DEVICE inline double margin_grad_scale(Reduction reduction, int64_t N, int64_t C) {
  return reduction == Reduction::mean ? 1.0 / (double(N) * double(C)) : 1.0 / double(C);
}
// A counting hinge's loss term z^p w_y and its gradient term d/dx_i (g the reduction's scale).
FC_HOST_DEVICE inline double margin_loss_term(double z, int p, double wy) {
  return (p == 1 ? z : z * z) * wy;
}
FC_HOST_DEVICE inline double margin_grad_term(double z, int p, double g, double wy) {
  return (p == 1 ? g : 2 * g * z) * wy;
}

}  // namespace loss_math

// The flat index of the first of target[n] (int64, on the GPU) outside [0, C) and, when
// has_ignore, not ignore_index; its value in *value; -1 when all are valid. Blocks until known:
// the binding validates GPU targets as it does CPU ones. CUDA builds only.
int64_t first_bad_target_cuda(const int64_t* target, int64_t n, int64_t C, bool has_ignore,
                              int64_t ignore_index, int64_t* value);

}  // namespace fc
