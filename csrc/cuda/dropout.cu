// Dropout on the GPU: one thread per element, with the per-element draw and scaling of
// dropout.h shared with the CPU twins, so a seed gives the CPU's mask bit for bit.
#include "dropout.h"
#include "cuda/cuda_common.cuh"

namespace fc {

template <typename T>
void dropout_forward_cuda(T* out, uint8_t* mask, const T* inp, int64_t n, double p, uint64_t seed) {
  const DropoutDraw draw(seed, p);
  const T scale = dropout_scale<T>(p);
  cuda::for_each("dropout_forward_cuda", n, [=] __device__(int64_t i) {
    dropout_apply(out, mask, inp, i, draw, scale);
  });
}

template <typename T>
void dropout_backward_cuda(T* dinp, const T* dout, const uint8_t* mask, int64_t n, double p) {
  const T scale = dropout_scale<T>(p);
  cuda::for_each("dropout_backward_cuda", n, [=] __device__(int64_t i) {
    dinp[i] = dropout_grad(dout[i], mask[i], scale);
  });
}

FC_DROPOUT_OPS(FC_INSTANTIATE_CUDA, float)
FC_DROPOUT_OPS(FC_INSTANTIATE_CUDA, double)

}  // namespace fc
