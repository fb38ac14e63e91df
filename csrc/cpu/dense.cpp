// linear on the CPU: one GEMM per pass, split across OpenMP threads by blas::gemm_parallel;
// the forward of a small batch through large weights has its own kernel (linear_small_batch).
#include "dense.h"

#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "blas.h"
#include "cpu/isa.h"
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

#ifdef FC_ISA_X86
// A small batch through large weights (AlexNet's classifier: 64 x 4096 -> 4096), float32 under
// AVX-512. The BLAS packs the weights, all of them, on every call, for only M <= 64 rows to
// reuse them: OpenBLAS ran 64 x 4096 x 4096 at 1.06x MKL's time, 16 rows at 1.11x. Here a
// register tile holds 6 output features times the whole batch (up to 4 vectors of 16 rows) and
// walks the input features, broadcasting 6 weights (one from each feature's row, read straight
// from W, which streams through once) against the batch's column of the transposed input (in
// L2): 24 multiply-adds per 4 vector loads and 6 broadcasts. Each output is the bias plus one
// chain of multiply-adds in input-feature order, so the bits do not depend on the thread count.
#define FC_AVX512 FC_TARGET_AVX512

constexpr int64_t kTileRows = 6;   // output features per register tile
constexpr int64_t kMaxBatch = 64;  // rows of the input a tile takes: 4 vectors

// The transposed input every tile reads: kept within half a core's L2.
constexpr int64_t kMaxInputBytes = int64_t(1) << 20;

bool small_batch_applies(int64_t M, int64_t IN, int64_t OUT) {
  // Measured on the CI-class machine, alternating with torch: 16-64 rows at 1024 x 1024 and
  // beyond; 128 rows would stream the weights twice (the BLAS then reuses them better), 10
  // outputs make two tiles, too few to share.
  return cpu_isa() == CpuIsa::avx512 && M >= 1 && M <= kMaxBatch && IN >= 256 && OUT >= 256 &&
         IN * OUT >= (int64_t(1) << 20) &&
         IN * ceil_div(M, 16) * 16 * int64_t(sizeof(float)) <= kMaxInputBytes;
}

// out[m, o0 + i] = bias + sum over k of w[i * IN + k] * xt[k * ldx + m] for i < nr, m < M.
template <int NJ>
FC_AVX512 void linear_tile(float* out, int64_t OUT, int64_t o0, int64_t nr, const float* w,
                           int64_t IN, const float* xt, int64_t ldx, const float* bias,
                           int64_t M) {
  __m512 acc[kTileRows][NJ];
  const float* row[kTileRows];
  for (int i = 0; i < kTileRows; ++i) {
    // Past OUT the tile repeats its last row: computed, not stored.
    const int64_t r = std::min<int64_t>(i, nr - 1);
    row[i] = w + r * IN;
    const __m512 b = _mm512_set1_ps(bias ? bias[o0 + r] : 0.0f);
    for (int j = 0; j < NJ; ++j) acc[i][j] = b;
  }
  for (int64_t k = 0; k < IN; ++k) {
    __m512 x[NJ];
    for (int j = 0; j < NJ; ++j) x[j] = _mm512_loadu_ps(xt + k * ldx + 16 * j);
    for (int i = 0; i < kTileRows; ++i) {
      const __m512 b = _mm512_set1_ps(row[i][k]);
      for (int j = 0; j < NJ; ++j) acc[i][j] = _mm512_fmadd_ps(b, x[j], acc[i][j]);
    }
  }
  alignas(64) float y[kTileRows][NJ * 16];
  for (int i = 0; i < kTileRows; ++i) {
    for (int j = 0; j < NJ; ++j) _mm512_store_ps(&y[i][16 * j], acc[i][j]);
  }
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t i = 0; i < nr; ++i) out[m * OUT + o0 + i] = y[i][m];
  }
}

void linear_small_batch(float* out, const float* inp, const float* weight, const float* bias,
                        int64_t M, int64_t IN, int64_t OUT) {
  const int64_t nj = ceil_div(M, 16), ldx = nj * 16, tiles = ceil_div(OUT, kTileRows);
  // xt[k, m] = inp[m, k], rows past M zero.
  const auto xt = alloc_uninit<float>(IN * ldx, "linear (small batch): transposed input");
#pragma omp parallel num_threads(max_threads())
  {
#pragma omp for schedule(static)
    for (int64_t k = 0; k < IN; ++k) {
      for (int64_t m = 0; m < ldx; ++m) xt[k * ldx + m] = m < M ? inp[m * IN + k] : 0.0f;
    }
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t o0 = t * kTileRows, nr = std::min(kTileRows, OUT - o0);
      const float* w = weight + o0 * IN;
      switch (nj) {
        case 4: linear_tile<4>(out, OUT, o0, nr, w, IN, xt.get(), ldx, bias, M); break;
        case 3: linear_tile<3>(out, OUT, o0, nr, w, IN, xt.get(), ldx, bias, M); break;
        case 2: linear_tile<2>(out, OUT, o0, nr, w, IN, xt.get(), ldx, bias, M); break;
        default: linear_tile<1>(out, OUT, o0, nr, w, IN, xt.get(), ldx, bias, M); break;
      }
    }
  }
}
#endif

}  // namespace

template <typename T>
void linear_forward_cpu(T* out, const T* inp, const T* weight, const T* bias, int64_t M,
                        int64_t IN, int64_t OUT) {
#ifdef FC_ISA_X86
  if constexpr (std::is_same_v<T, float>) {
    if (small_batch_applies(M, IN, OUT)) {
      return linear_small_batch(out, inp, weight, bias, M, IN, OUT);
    }
  }
#endif
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
