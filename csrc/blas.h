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

void set_threads(int n);
std::string name();
std::string core();

}  // namespace fc::blas
