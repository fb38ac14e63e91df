// linear on the CPU: one GEMM per pass, split across OpenMP threads by blas::gemm_parallel;
// the forward of a small batch through large weights has its own kernel (linear_small_batch).
#include "dense.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <type_traits>
#include <utility>

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
// L2): 24 multiply-adds per 4 vector loads and 6 broadcasts. Each output is the bias plus
// chains of multiply-adds in input-feature order, so the bits do not depend on the thread count.
#define FC_AVX512 FC_TARGET_AVX512

// Terms a register sum takes before it is added to the result and restarts from zero. One
// float32 chain over all of a long dot product lost a bit every few hundred terms: 16 x 16384 ->
// 1000 came 5e-6 of the largest output off the float64 product, ten times PyTorch's float32
// (its GEMM sums in K blocks); in chunks of 128 it is at PyTorch's. (conv_direct.cpp's tiles
// do the same, with the same measure.)
constexpr int64_t kChunk = 128;

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
  alignas(64) float y[kTileRows][NJ * 16];
  for (int64_t k0 = 0; k0 < IN; k0 += kChunk) {
    for (int64_t k = k0; k < std::min(IN, k0 + kChunk); ++k) {
      __m512 x[NJ];
      for (int j = 0; j < NJ; ++j) x[j] = _mm512_loadu_ps(xt + k * ldx + 16 * j);
      for (int i = 0; i < kTileRows; ++i) {
        const __m512 b = _mm512_set1_ps(row[i][k]);
        for (int j = 0; j < NJ; ++j) acc[i][j] = _mm512_fmadd_ps(b, x[j], acc[i][j]);
      }
    }
    // The first chunk's sums (from the bias) are stored, the others added.
    for (int i = 0; i < kTileRows; ++i) {
      for (int j = 0; j < NJ; ++j) {
        float* o = &y[i][16 * j];
        _mm512_store_ps(o, k0 == 0 ? acc[i][j] : _mm512_add_ps(_mm512_load_ps(o), acc[i][j]));
        acc[i][j] = _mm512_setzero_ps();
      }
    }
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

// The backward of a layer of few outputs (a classifier's head: fashion_cnn's 64 x 1568 -> 10),
// float32 under AVX-512. Both products are thin there: dx = dy · W sums OUT terms per element
// and dW = dy^T · x has OUT rows, shapes OpenBLAS ran at a third of the machine's rate (72 us
// on one thread, PyTorch 41). One parallel region walks blocks of 64 input features; for each,
// register tiles of dx (4 rows x 4 vectors: a chain of OUT multiply-adds per element, in
// output order) and of dW (OUT rows x 2 vectors: chains over kChunk rows of the batch each,
// in order, each added to dW). Each element is summed the same way whoever computes it: the
// bits do not depend on the thread count.
constexpr int64_t kNarrowMaxOut = 14;  // dW's tile: OUT x 2 vectors of sums in 28 registers
constexpr int64_t kNarrowCols = 64;    // input features per work item: 4 vectors
constexpr int64_t kNarrowAhead = 8;    // rows of x prefetched ahead of dW's tile

bool narrow_backward_applies(int64_t M, int64_t IN, int64_t OUT) {
  return cpu_isa() == CpuIsa::avx512 && M >= 1 && OUT >= 1 && OUT <= kNarrowMaxOut && IN >= 16;
}

// Vector v of NV at p (mask `last` on the last: the block's tail past IN).
template <int NV>
FC_AVX512 inline __m512 load_part(const float* p, int v, __mmask16 last) {
  return v == NV - 1 ? _mm512_maskz_loadu_ps(last, p + 16 * v) : _mm512_loadu_ps(p + 16 * v);
}

// dx[r, 0:16 NV) = sum over k < OUT of dy[r, k] * w[k, 0:16 NV), r < R (dx, w at the block).
template <int R, int NV>
FC_AVX512 void narrow_dx_tile(float* dx, const float* dy, const float* w, int64_t IN,
                              int64_t OUT, __mmask16 last) {
  __m512 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < OUT; ++k) {
    __m512 wv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) wv[v] = load_part<NV>(w + k * IN, v, last);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 b = _mm512_set1_ps(dy[r * OUT + k]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(b, wv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      float* o = dx + r * IN + 16 * v;
      if (v == NV - 1) {
        _mm512_mask_storeu_ps(o, last, acc[r][v]);
      } else {
        _mm512_storeu_ps(o, acc[r][v]);
      }
    }
  }
}

// dw[k, 0:16 NV) += sum over m < M of dy[m, k] * x[m, 0:16 NV), k < NK = OUT.
template <int NK, int NV>
FC_AVX512 void narrow_dw_tile(float* dw, const float* dy, const float* x, int64_t M, int64_t IN,
                              __mmask16 last) {
  __m512 acc[NK][NV];
#pragma GCC unroll 16
  for (int k = 0; k < NK; ++k) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[k][v] = _mm512_setzero_ps();
  }
  for (int64_t m0 = 0; m0 < M; m0 += kChunk) {
    for (int64_t m = m0; m < std::min(M, m0 + kChunk); ++m) {
      // x's rows are IN floats apart, each its own page when IN >= 1024: the hardware
      // prefetchers, bound to a page, do not follow (at batch 256 the tiles ran at a fifth of
      // their rate on one thread, 1.6 MB of x read a miss at a time).
      if (m + kNarrowAhead < M) {
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) {
          _mm_prefetch(reinterpret_cast<const char*>(x + (m + kNarrowAhead) * IN + 16 * v),
                       _MM_HINT_T0);
        }
      }
      __m512 xv[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) xv[v] = load_part<NV>(x + m * IN, v, last);
#pragma GCC unroll 16
      for (int k = 0; k < NK; ++k) {
        const __m512 b = _mm512_set1_ps(dy[m * NK + k]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[k][v] = _mm512_fmadd_ps(b, xv[v], acc[k][v]);
      }
    }
#pragma GCC unroll 16
    for (int k = 0; k < NK; ++k) {
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        const __mmask16 m = v == NV - 1 ? last : __mmask16(0xFFFF);
        float* o = dw + k * IN + 16 * v;
        _mm512_mask_storeu_ps(o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), acc[k][v]));
        acc[k][v] = _mm512_setzero_ps();
      }
    }
  }
}

using NarrowDx = void (*)(float*, const float*, const float*, int64_t, int64_t, __mmask16);
using NarrowDw = void (*)(float*, const float*, const float*, int64_t, int64_t, __mmask16);

template <int R, size_t... V>
constexpr std::array<NarrowDx, sizeof...(V)> dx_row(std::index_sequence<V...>) {
  return {{&narrow_dx_tile<R, int(V) + 1>...}};
}

template <int NK, size_t... V>
constexpr std::array<NarrowDw, sizeof...(V)> dw_row(std::index_sequence<V...>) {
  return {{&narrow_dw_tile<NK, int(V) + 1>...}};
}

template <size_t... K>
constexpr std::array<std::array<NarrowDw, 2>, sizeof...(K)> dw_table(std::index_sequence<K...>) {
  return {{dw_row<int(K) + 1>(std::make_index_sequence<2>{})...}};
}

void linear_narrow_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                            const float* weight, int64_t M, int64_t IN, int64_t OUT) {
  static constexpr std::array<NarrowDx, 4> dx_tiles[4] = {
      dx_row<1>(std::make_index_sequence<4>{}), dx_row<2>(std::make_index_sequence<4>{}),
      dx_row<3>(std::make_index_sequence<4>{}), dx_row<4>(std::make_index_sequence<4>{})};
  static constexpr auto dw_tiles = dw_table(std::make_index_sequence<kNarrowMaxOut>{});
  const int64_t blocks = ceil_div(IN, kNarrowCols);
#pragma omp parallel for schedule(static) num_threads(max_threads()) \
    if (M * IN * OUT >= kParallelMinElems)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t j0 = b * kNarrowCols, n = std::min(kNarrowCols, IN - j0);
    const int64_t nv = ceil_div(n, 16), tail = n - 16 * (nv - 1);
    const __mmask16 last = __mmask16((1u << tail) - 1);
    if (dinp) {
      for (int64_t r0 = 0; r0 < M; r0 += 4) {
        const int64_t R = std::min<int64_t>(4, M - r0);
        dx_tiles[R - 1][nv - 1](dinp + r0 * IN + j0, dout + r0 * OUT, weight + j0, IN, OUT, last);
      }
    }
    if (dweight) {
      for (int64_t v0 = 0; v0 < nv; v0 += 2) {
        const int64_t NV = std::min<int64_t>(2, nv - v0);
        const __mmask16 m = v0 + NV == nv ? last : __mmask16(0xFFFF);
        dw_tiles[OUT - 1][NV - 1](dweight + j0 + 16 * v0, dout, inp + j0 + 16 * v0, M, IN, m);
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
#ifdef FC_ISA_X86
  if constexpr (std::is_same_v<T, float>) {
    if ((dinp || dweight) && narrow_backward_applies(M, IN, OUT)) {
      linear_narrow_backward(dinp, dweight, dout, inp, weight, M, IN, OUT);
      if (dbias) column_sums(dbias, dout, M, OUT);
      return;
    }
  }
#endif
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
