// Fused optimizer updates on the CPU, the element math shared with the CUDA twins (optim.h).
// Each element's update only reads and writes that element, so the loops split across threads
// with results independent of the thread count.
#include "optim.h"

#include "cpu/parallel.h"

namespace fc {
namespace {

constexpr int64_t kParallelMin = 1 << 15;

}  // namespace

template <typename T>
void sgd_step_cpu(T* param, T* buf, const T* grad, int64_t n, const SgdArgs& a) {
  const optim_math::Sgd<T> u(a);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) u.step(param, buf, grad, i);
}

template <typename T>
void adagrad_step_cpu(T* param, T* sum, const T* grad, int64_t n, const AdagradArgs& a) {
  const optim_math::Adagrad<T> u(a);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) u.step(param, sum, grad, i);
}

template <typename T>
void rmsprop_step_cpu(T* param, T* sq, T* gavg, T* buf, const T* grad, int64_t n,
                      const RmspropArgs& a) {
  const optim_math::Rmsprop<T> u(a);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) u.step(param, sq, gavg, buf, grad, i);
}

template <typename T>
void adam_step_cpu(T* param, T* m, T* v, T* vmax, const T* grad, int64_t n, const AdamArgs& a) {
  const optim_math::Adam<T> u(a);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) u.step(param, m, v, vmax, grad, i);
}

FC_OPTIM_OPS(FC_INSTANTIATE_CPU, float)
FC_OPTIM_OPS(FC_INSTANTIATE_CPU, double)

}  // namespace fc
