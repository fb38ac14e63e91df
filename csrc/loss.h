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

// out[N, S] (none) or out[] (mean, sum) = cross entropy of logits inp[N, C, S] against class
// indices target[N, S] in [0, C) or == ignore_index; weight[C] may be null (all ones).
FC_KERNEL(cross_entropy_forward, T* out, const T* inp, const int64_t* target, const T* weight,
          int64_t N, int64_t C, int64_t S, int64_t ignore_index, double label_smoothing,
          Reduction reduction);
// dinp[N, C, S] written from dout[N, S] (none) or dout[] (mean, sum).
FC_KERNEL(cross_entropy_backward, T* dinp, const T* dout, const T* inp, const int64_t* target,
          const T* weight, int64_t N, int64_t C, int64_t S, int64_t ignore_index,
          double label_smoothing, Reduction reduction);

// out[N, S] or out[] = cross entropy of inp[N, C, S] against class probabilities target[N, C, S].
FC_KERNEL(cross_entropy_prob_forward, T* out, const T* inp, const T* target, const T* weight,
          int64_t N, int64_t C, int64_t S, double label_smoothing, Reduction reduction);
// dinp[N, C, S] written (the gradient with respect to the logits only).
FC_KERNEL(cross_entropy_prob_backward, T* dinp, const T* dout, const T* inp, const T* target,
          const T* weight, int64_t N, int64_t C, int64_t S, double label_smoothing,
          Reduction reduction);

// out[n] (none) or out[] = (inp[n] - target[n])^2 over n elements, reduced.
FC_KERNEL(mse_loss_forward, T* out, const T* inp, const T* target, int64_t n, Reduction reduction);
// dinp[n] = 2 (inp - target) dout (/ n for mean); the target gradient is its negative.
FC_KERNEL(mse_loss_backward, T* dinp, const T* dout, const T* inp, const T* target, int64_t n,
          Reduction reduction);

// out[N] (none) or out[] = sum_{i != y} max(0, margin - inp[y] + inp[i])^p * weight[y] / C per
// row of inp[N, C], y = target[N]; weight[C] may be null; p is 1 or 2.
FC_KERNEL(multi_margin_loss_forward, T* out, const T* inp, const int64_t* target, const T* weight,
          int64_t N, int64_t C, int p, double margin, Reduction reduction);
// dinp[N, C] written from dout[N] (none) or dout[] (mean, sum).
FC_KERNEL(multi_margin_loss_backward, T* dinp, const T* dout, const T* inp, const int64_t* target,
          const T* weight, int64_t N, int64_t C, int p, double margin, Reduction reduction);

// The flat index of the first of target[n] (int64, on the GPU) outside [0, C) and, when
// has_ignore, not ignore_index; its value in *value; -1 when all are valid. Blocks until known:
// the binding validates GPU targets as it does CPU ones. CUDA builds only.
int64_t first_bad_target_cuda(const int64_t* target, int64_t n, int64_t C, bool has_ignore,
                              int64_t ignore_index, int64_t* value);

}  // namespace fc
