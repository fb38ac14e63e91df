// linear on the GPU: its three passes are the tiled GEMM of gemm.cuh on strided matrices, each
// computed as the transpose whose rows are contiguous in the output (so a warp's stores are
// coalesced).
#include "cuda/gemm.cuh"
#include "dense.h"

namespace fc {
namespace cuda {
namespace {

// C[m, n] = sum over k of amat[m*a_m + k*a_k] · bmat[k*b_k + n*b_n], stored at
// cmat[m*c_m + n*c_n]: written (plus bias[m] when given), or added when accumulate. C is dense
// (total = M*Ncols), so split partials use its offsets.
template <typename T, bool AMFast, bool BNFast>
struct MatGemm {
  static constexpr bool kAMFast = AMFast, kBNFast = BNFast;
  int M = 0, Ncols = 0, Kred = 0, groups = 1, chunk = 0, mtiles = 0, ntiles = 0;
  int64_t total = 0;
  const T* amat = nullptr;
  int64_t a_m = 0, a_k = 0;
  const T* bmat = nullptr;
  int64_t b_k = 0, b_n = 0;
  T* cmat = nullptr;
  int64_t c_m = 0, c_n = 0;
  const T* bias = nullptr;
  bool accumulate = false;
  T* partial = nullptr;

  struct ARow { int64_t off; bool valid; };
  struct BCol { int64_t off; bool valid; };
  struct ORow { int64_t off; T bias; };
  struct OCol { int64_t off; };

  __device__ ARow a_row(int, int m) const { return {m * a_m, m < M}; }
  __device__ int64_t ak(int k) const { return k * a_k; }
  __device__ int64_t ak_step(int64_t key, int, int step) const { return key + step * a_k; }
  __device__ T a(const ARow& row, int64_t key) const {
    return row.valid ? __ldg(amat + row.off + key) : T(0);
  }
  __device__ BCol b_col(int, int n) const { return {n * b_n, n < Ncols}; }
  __device__ int64_t bk(int k) const { return k * b_k; }
  __device__ T b(const BCol& col, int64_t key) const {
    return col.valid ? __ldg(bmat + col.off + key) : T(0);
  }
  __device__ ORow out_row(int, int split, int m) const {
    return {(partial ? split * total : 0) + m * c_m, bias && m < M ? __ldg(bias + m) : T(0)};
  }
  __device__ OCol out_col(int, int n) const { return {n * c_n}; }
  __device__ void out(const ORow& r, const OCol& col, T v) const {
    if (partial) partial[r.off + col.off] = v;
    else if (accumulate) cmat[r.off + col.off] += v;
    else cmat[r.off + col.off] = bias ? v + r.bias : v;
  }
  // e is an offset in cmat; a bias goes with c_m = 1, so its row is e % M.
  __device__ void finish(int64_t e, double s) const {
    if (accumulate) cmat[e] = T(double(cmat[e]) + s);
    else cmat[e] = bias ? T(s) + __ldg(bias + e % M) : T(s);
  }
};

template <typename T, bool AMFast, bool BNFast>
void run_mat(MatGemm<T, AMFast, BNFast> pb, const char* name) {
  pb.total = int64_t(pb.M) * pb.Ncols;
  with_tile<T>(pb.Ncols, [&](auto tile) { run_igemm<T, decltype(tile)>(pb, name); });
}

constexpr int kColThreadsX = 32, kColThreadsY = 16;

// dbias[j] += sum over rows of dout[M, OUT] column j, in double: threadIdx.y takes every
// kColThreadsY-th row, then thread row 0 adds the partial sums in a fixed order.
template <typename T>
__global__ void column_sums_kernel(T* dbias, const T* dout, int64_t M, int64_t OUT) {
  __shared__ double part[kColThreadsY][kColThreadsX];
  const int64_t j = int64_t(blockIdx.x) * kColThreadsX + threadIdx.x;
  double s = 0;
  if (j < OUT) {
    for (int64_t m = threadIdx.y; m < M; m += kColThreadsY) s += double(dout[m * OUT + j]);
  }
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < OUT) {
    double total = 0;
    for (int y = 0; y < kColThreadsY; ++y) total += part[y][threadIdx.x];
    dbias[j] += T(total);
  }
}

}  // namespace
}  // namespace cuda

template <typename T>
void linear_forward_cuda(T* out, const T* inp, const T* weight, const T* bias, int64_t M,
                         int64_t IN, int64_t OUT) {
  if (M == 0 || OUT == 0) return;
  check_linear_limits("linear", {M, IN}, {OUT, IN}, M, IN, OUT, Device::cuda);
  // out^T[OUT, M] = W[OUT, IN] · x^T[IN, M] (+ bias per row): out's rows are contiguous in o.
  cuda::MatGemm<T, false, false> pb;
  pb.M = int(OUT);
  pb.Ncols = int(M);
  pb.Kred = int(IN);
  pb.amat = weight; pb.a_m = IN; pb.a_k = 1;
  pb.bmat = inp; pb.b_k = 1; pb.b_n = IN;
  pb.cmat = out; pb.c_m = 1; pb.c_n = OUT;
  pb.bias = bias;
  cuda::run_mat(pb, "linear_forward_cuda");
}

template <typename T>
void linear_backward_cuda(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                          const T* weight, int64_t M, int64_t IN, int64_t OUT) {
  check_linear_limits("linear_backward", {M, IN}, {OUT, IN}, M, IN, OUT,
                      Device::cuda);
  if (dinp && M > 0 && IN > 0) {
    // dx^T[IN, M] = W^T[IN, OUT] · dy^T[OUT, M]
    cuda::MatGemm<T, true, false> pb;
    pb.M = int(IN);
    pb.Ncols = int(M);
    pb.Kred = int(OUT);
    pb.amat = weight; pb.a_m = 1; pb.a_k = IN;
    pb.bmat = dout; pb.b_k = 1; pb.b_n = OUT;
    pb.cmat = dinp; pb.c_m = 1; pb.c_n = IN;
    cuda::run_mat(pb, "linear_backward_cuda (grad_input)");
  }
  if (dweight && M > 0 && IN > 0 && OUT > 0) {
    // dW^T[IN, OUT] += x^T[IN, M] · dy[M, OUT]: the reduction runs over every row.
    cuda::MatGemm<T, true, true> pb;
    pb.M = int(IN);
    pb.Ncols = int(OUT);
    pb.Kred = int(M);
    pb.amat = inp; pb.a_m = 1; pb.a_k = IN;
    pb.bmat = dout; pb.b_k = OUT; pb.b_n = 1;
    pb.cmat = dweight; pb.c_m = 1; pb.c_n = IN;
    pb.accumulate = true;
    cuda::run_mat(pb, "linear_backward_cuda (grad_weight)");
  }
  if (dbias && M > 0 && OUT > 0) {
    const dim3 threads(cuda::kColThreadsX, cuda::kColThreadsY);
    cuda::column_sums_kernel<T><<<unsigned(cuda::ceil_div(OUT, cuda::kColThreadsX)), threads, 0,
                                  cuda::stream()>>>(dbias, dout, M, OUT);
    FC_CUDA_LAUNCHED("linear_backward_cuda (grad_bias)");
  }
}

FC_DENSE_OPS(FC_INSTANTIATE_CUDA, float)
FC_DENSE_OPS(FC_INSTANTIATE_CUDA, double)

}  // namespace fc
