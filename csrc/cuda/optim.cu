// Fused optimizer updates on the GPU: one thread per element by a grid-stride loop, each
// calling the element step shared with the CPU twins (optim.h).
#include "optim.h"
#include "cuda/cuda_common.cuh"

namespace fc {

template <typename T>
void sgd_step_cuda(T* param, T* buf, const T* grad, int64_t n, const SgdArgs& a) {
  const optim_math::Sgd<T> u(a);
  cuda::for_each("sgd_step_cuda", n,
                 [=] __device__(int64_t i) { u.step(param, buf, grad, i); });
}

template <typename T>
void adagrad_step_cuda(T* param, T* sum, const T* grad, int64_t n, const AdagradArgs& a) {
  const optim_math::Adagrad<T> u(a);
  cuda::for_each("adagrad_step_cuda", n,
                 [=] __device__(int64_t i) { u.step(param, sum, grad, i); });
}

template <typename T>
void rmsprop_step_cuda(T* param, T* sq, T* gavg, T* buf, const T* grad, int64_t n,
                       const RmspropArgs& a) {
  const optim_math::Rmsprop<T> u(a);
  cuda::for_each("rmsprop_step_cuda", n,
                 [=] __device__(int64_t i) { u.step(param, sq, gavg, buf, grad, i); });
}

template <typename T>
void adam_step_cuda(T* param, T* m, T* v, T* vmax, const T* grad, int64_t n, const AdamArgs& a) {
  const optim_math::Adam<T> u(a);
  cuda::for_each("adam_step_cuda", n,
                 [=] __device__(int64_t i) { u.step(param, m, v, vmax, grad, i); });
}

FC_OPTIM_OPS(FC_INSTANTIATE_CUDA, float)
FC_OPTIM_OPS(FC_INSTANTIATE_CUDA, double)

}  // namespace fc
