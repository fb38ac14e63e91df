// The CBLAS behind blas.h. scipy-openblas32 prefixes every symbol with "scipy_"; the macro
// FC_BLAS_PREFIX (set by CMake) restores the plain CBLAS names here and nowhere else.
#include "blas.h"

#ifdef FC_BLAS_PREFIX
#define FC_CAT_(a, b) a##b
#define FC_CAT(a, b) FC_CAT_(a, b)
#define FC_SYM(name) FC_CAT(FC_BLAS_PREFIX, name)
#define cblas_sgemm FC_SYM(cblas_sgemm)
#define cblas_dgemm FC_SYM(cblas_dgemm)
#endif
#include <cblas.h>

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "cpu/parallel.h"

#ifdef FC_BLAS_PREFIX
#define FC_OPENBLAS_SET_THREADS FC_SYM(openblas_set_num_threads)
#define FC_OPENBLAS_CORENAME FC_SYM(openblas_get_corename)
#else
// A system CBLAS may or may not be OpenBLAS/MKL/BLIS: look their thread knobs up weakly.
extern "C" {
void openblas_set_num_threads(int) __attribute__((weak));
char* openblas_get_corename(void) __attribute__((weak));
void MKL_Set_Num_Threads(int) __attribute__((weak));
void bli_thread_set_num_threads(long) __attribute__((weak));
}
#endif

namespace fc::blas {
namespace {
CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr double kParallelMinWork = double(1 << 17);

template <typename T>
void gemm_split(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
                int ldb, T beta, T* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    // The BLAS rejects leading dimensions of 0; an empty sum leaves beta * C (exact zeros for
    // beta = 0, so stale NaNs in C do not survive).
    for (int m = 0; m < M; ++m) {
      T* c = C + int64_t(m) * ldc;
      for (int n = 0; n < N; ++n) c[n] = beta == T(0) ? T(0) : beta * c[n];
    }
    return;
  }
  bool nested = false;
#ifdef _OPENMP
  nested = omp_in_parallel();
#endif
  const int threads = max_threads();
  if (threads == 1 || nested || double(M) * N * K < kParallelMinWork) {
    gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // One block per thread, a multiple of 16 rows/columns so the BLAS's SIMD panels stay full;
  // the last block takes the remainder.
  const bool by_rows = M >= N;
  const int64_t len = by_rows ? M : N;
  const int64_t block = ceil_div(ceil_div(len, threads), 16) * 16;
  const int64_t blocks = ceil_div(len, block);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t i0 = b * block;
    const int n = int(std::min(block, len - i0));
    if (by_rows) {
      // C[i0:i0+n, :] = op(A)[i0:i0+n, :] · op(B); row i of op(A) is column i of A when transposed
      gemm(ta, tb, n, N, K, alpha, A + (ta ? i0 : i0 * lda), lda, B, ldb, beta, C + i0 * ldc, ldc);
    } else {
      // C[:, i0:i0+n] = op(A) · op(B)[:, i0:i0+n]; column j of op(B) is row j of B when transposed
      gemm(ta, tb, M, n, K, alpha, A, lda, B + (tb ? i0 * ldb : i0), ldb, beta, C + i0, ldc);
    }
  }
}

}  // namespace

void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
          const double* B, int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_parallel(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                   const float* B, int ldb, float beta, float* C, int ldc) {
  gemm_split(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_parallel(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
                   const double* B, int ldb, double beta, double* C, int ldc) {
  gemm_split(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void set_threads(int n) {
#ifdef FC_BLAS_PREFIX
  FC_OPENBLAS_SET_THREADS(n);
#else
  if (openblas_set_num_threads) openblas_set_num_threads(n);
  if (MKL_Set_Num_Threads) MKL_Set_Num_Threads(n);
  if (bli_thread_set_num_threads) bli_thread_set_num_threads(n);
#endif
}

std::string name() { return FC_BLAS_NAME; }

std::string core() {
#ifdef FC_BLAS_PREFIX
  return FC_OPENBLAS_CORENAME();
#else
  return openblas_get_corename ? openblas_get_corename() : "unknown";
#endif
}

bool avx512_kernels() {
  static const bool wide = [] {
    std::string c = core();
    if (c == "unknown") return true;
    std::transform(c.begin(), c.end(), c.begin(), [](unsigned char ch) { return std::tolower(ch); });
    return c == "skylakex" || c == "cooperlake" || c == "sapphirerapids";
  }();
  return wide;
}

}  // namespace fc::blas
