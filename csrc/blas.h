// Row-major GEMM over the CBLAS; the BLAS's symbol prefix and threading knobs live behind this.
// fastconv runs one threading layer, OpenMP: the BLAS is kept single-threaded and every GEMM is
// called from inside fastconv's parallel regions, so the two never oversubscribe the cores.
#pragma once

#include <string>

namespace fc::blas {

// C[M, N] = alpha * op(A)[M, K] · op(B)[K, N] + beta * C, all row-major.
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);
void gemm(bool trans_a, bool trans_b, int M, int N, int K, double alpha, const double* A,
          int lda, const double* B, int ldb, double beta, double* C, int ldc);

// The same product split across fastconv's OpenMP threads, for a GEMM called from outside any
// parallel region: row blocks of C, or column blocks when C has more columns than rows. Small
// products and calls from inside a parallel region run as one gemm. Empty sizes are allowed
// (K = 0 gives C = beta * C). Each element of C is computed by one call, so results depend on
// the thread count but never on timing.
void gemm_parallel(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                   int lda, const float* B, int ldb, float beta, float* C, int ldc);
void gemm_parallel(bool trans_a, bool trans_b, int M, int N, int K, double alpha,
                   const double* A, int lda, const double* B, int ldb, double beta, double* C,
                   int ldc);

void set_threads(int n);
std::string name();
std::string core();
// Whether the BLAS runs AVX-512 kernels: OpenBLAS's SkylakeX, Cooperlake and SapphireRapids
// cores. Another core (Haswell, Zen, ...: what OPENBLAS_CORETYPE or its CPU detection chose)
// runs narrower ones; a BLAS that does not say (MKL, BLIS) is taken to run the widest.
bool avx512_kernels();

}  // namespace fc::blas
