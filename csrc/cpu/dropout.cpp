// Dropout on the CPU: the per-element draw and scaling are dropout.h's, shared with the CUDA
// twins; the mask depends on (seed, index) only, so not on the thread count.
#include "dropout.h"

#include "cpu/parallel.h"

namespace fc {
namespace {

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = int64_t(1) << 15;

}  // namespace

template <typename T>
void dropout_forward_cpu(T* out, uint8_t* mask, const T* inp, int64_t n, double p, uint64_t seed) {
  const DropoutDraw draw(seed, p);
  const T scale = dropout_scale<T>(p);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) dropout_apply(out, mask, inp, i, draw, scale);
}

template <typename T>
void dropout_backward_cpu(T* dinp, const T* dout, const uint8_t* mask, int64_t n, double p) {
  const T scale = dropout_scale<T>(p);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) dinp[i] = dropout_grad(dout[i], mask[i], scale);
}

FC_DROPOUT_OPS(FC_INSTANTIATE_CPU, float)
FC_DROPOUT_OPS(FC_INSTANTIATE_CPU, double)

}  // namespace fc
