// linear and conv_transpose2d on the CPU. linear is one GEMM per pass, split across OpenMP
// threads by blas::gemm_parallel. conv_transpose2d reuses the conv2d kernels on the equivalent
// conv2d (geometry.h): its forward is conv2d's data gradient, its data gradient is conv2d's
// forward and its weight gradient is conv2d's weight gradient with input and output swapped;
// only the per-channel bias terms are computed here.
#include "dense.h"

#include <algorithm>

#include "blas.h"
#include "conv.h"
#include "cpu/parallel.h"

namespace fc {
namespace {

// Below this many elements a parallel region costs more than the loop.
constexpr int64_t kParallelMinElems = int64_t(1) << 15;

// Columns of the bias-gradient sum handled by one work item: one cache line of doubles
// per 8 columns, and enough items to share out when OUT is large.
constexpr int64_t kBiasCols = 256;

// dbias[OUT] += sum over rows of dout[M, OUT], in double so float32 keeps its precision.
template <typename T>
void column_sums(T* dbias, const T* dout, int64_t M, int64_t OUT) {
  const int64_t blocks = ceil_div(OUT, kBiasCols);
#pragma omp parallel for schedule(static) num_threads(max_threads()) \
    if (M * OUT >= kParallelMinElems)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t j0 = b * kBiasCols, n = std::min(kBiasCols, OUT - j0);
    double acc[kBiasCols] = {};
    for (int64_t m = 0; m < M; ++m) {
      const T* d = dout + m * OUT + j0;
      for (int64_t j = 0; j < n; ++j) acc[j] += d[j];
    }
    for (int64_t j = 0; j < n; ++j) dbias[j0 + j] += T(acc[j]);
  }
}

// dbias[C] += sum over images and pixels of dout[N, C, HW], in double.
template <typename T>
void channel_sums(T* dbias, const T* dout, int64_t N, int64_t C, int64_t HW) {
#pragma omp parallel for schedule(static) num_threads(max_threads()) \
    if (N * C * HW >= kParallelMinElems)
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* d = dout + (n * C + c) * HW;
      for (int64_t j = 0; j < HW; ++j) s += d[j];
    }
    dbias[c] += T(s);
  }
}

}  // namespace

template <typename T>
void linear_forward_cpu(T* out, const T* inp, const T* weight, const T* bias, int64_t M,
                        int64_t IN, int64_t OUT) {
  if (bias) {
#pragma omp parallel for schedule(static) num_threads(max_threads()) \
    if (M * OUT >= kParallelMinElems)
    for (int64_t m = 0; m < M; ++m) std::copy(bias, bias + OUT, out + m * OUT);
  }
  // out[M, OUT] = x[M, IN] · W[OUT, IN]^T (+ out, preloaded with the bias); the row-major W is
  // the transpose of the [IN, OUT] operand, hence trans_b.
  blas::gemm_parallel(false, true, int(M), int(OUT), int(IN), T(1), inp, int(IN), weight, int(IN),
                      bias ? T(1) : T(0), out, int(OUT));
}

template <typename T>
void linear_backward_cpu(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                         const T* weight, int64_t M, int64_t IN, int64_t OUT) {
  if (dinp) {
    // dx[M, IN] = dy[M, OUT] · W[OUT, IN]
    blas::gemm_parallel(false, false, int(M), int(IN), int(OUT), T(1), dout, int(OUT), weight,
                        int(IN), T(0), dinp, int(IN));
  }
  if (dweight) {
    // dW[OUT, IN] += dy[M, OUT]^T · x[M, IN]: the sum over every leading index is the GEMM's K.
    blas::gemm_parallel(true, false, int(OUT), int(IN), int(M), T(1), dout, int(OUT), inp,
                        int(IN), T(1), dweight, int(IN));
  }
  if (dbias) column_sums(dbias, dout, M, OUT);
}

template <typename T>
void conv_transpose2d_forward_cpu(T* out, const T* inp, const T* weight, const T* bias,
                                  const Conv2dGeom& g) {
  // An empty batch has nothing to write (and conv2d's work split divides by N).
  if (g.N == 0) return;
  // out is the equivalent conv2d's input gradient for grad_output = inp.
  conv2d_backward_cpu<T>(out, nullptr, nullptr, inp, nullptr, weight, g);
  if (!bias) return;
  const int64_t HW = g.HW(), planes = g.N * g.C;
#pragma omp parallel for schedule(static) num_threads(max_threads()) \
    if (planes * HW >= kParallelMinElems)
  for (int64_t i = 0; i < planes; ++i) {
    T* y = out + i * HW;
    const T b = bias[i % g.C];
    for (int64_t j = 0; j < HW; ++j) y[j] += b;
  }
}

template <typename T>
void conv_transpose2d_backward_cpu(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                                   const T* weight, const Conv2dGeom& g) {
  // An empty batch adds nothing to dweight and dbias, and dx is empty.
  if (g.N == 0) return;
  // dx is the equivalent conv2d's forward of dy.
  if (dinp) conv2d_forward_cpu<T>(dinp, dout, weight, nullptr, g);
  // dW[C_in, C_out/groups, R, S] += the equivalent conv2d's weight gradient, whose input is dy
  // and whose output gradient is x.
  if (dweight) conv2d_backward_cpu<T>(nullptr, dweight, nullptr, inp, dout, weight, g);
  if (dbias) channel_sums(dbias, dout, g.N, g.C, g.HW());
}

#define FC_INSTANTIATE(T)                                                                     \
  template void linear_forward_cpu<T>(T*, const T*, const T*, const T*, int64_t, int64_t,     \
                                      int64_t);                                               \
  template void linear_backward_cpu<T>(T*, T*, T*, const T*, const T*, const T*, int64_t,     \
                                       int64_t, int64_t);                                     \
  template void conv_transpose2d_forward_cpu<T>(T*, const T*, const T*, const T*,             \
                                                const Conv2dGeom&);                           \
  template void conv_transpose2d_backward_cpu<T>(T*, T*, T*, const T*, const T*, const T*,    \
                                                 const Conv2dGeom&);
FC_INSTANTIATE(float)
FC_INSTANTIATE(double)
#undef FC_INSTANTIATE

}  // namespace fc
