// linear on the CPU: one GEMM per pass, split across OpenMP threads by blas::gemm_parallel.
#include "dense.h"

#include <algorithm>

#include "blas.h"
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

FC_DENSE_OPS(FC_INSTANTIATE_CPU, float)
FC_DENSE_OPS(FC_INSTANTIATE_CPU, double)

}  // namespace fc
