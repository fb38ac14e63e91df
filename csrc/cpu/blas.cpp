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
}  // namespace

void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
          const double* B, int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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

}  // namespace fc::blas
