// Shared by the CUDA twins (csrc/cuda/*.cu): the stream to launch on, error checks that name the
// kernel, the device and the architectures built, launch-size helpers and a stream-ordered
// scratch buffer. Kernels never allocate array memory; scratch is for reductions only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common.h"

namespace fc::cuda {

// CuPy's current stream for this call, taken by the binding from the arrays' CUDA array
// interface (thread-local, so concurrent Python threads keep their own streams).
cudaStream_t stream();

// The current device's multiprocessor count (cached per device).
int sm_count();

// Throws std::runtime_error naming `what` (a kernel or a runtime call), the device and the
// architectures this build holds; "invalid device function" and out-of-memory get a hint.
[[noreturn]] void fail(cudaError_t err, const char* what, const char* file, int line);

#define FC_CUDA_CHECK(call)                                             \
  do {                                                                  \
    cudaError_t fc_err_ = (call);                                       \
    if (fc_err_ != cudaSuccess) ::fc::cuda::fail(fc_err_, #call, __FILE__, __LINE__); \
  } while (0)

// FASTCONV_CUDA_SYNC=1: every launch waits for its kernel, so a fault in it (an illegal
// address) is reported with that kernel's name instead of at a later, unrelated call. For
// diagnosis only: it serialises the host with the GPU.
bool sync_launches();

// After a launch: configuration errors and missing device code surface here, named.
#define FC_CUDA_LAUNCHED(kernel_name)                                   \
  do {                                                                  \
    cudaError_t fc_err_ = cudaGetLastError();                           \
    if (fc_err_ == cudaSuccess && ::fc::cuda::sync_launches())          \
      fc_err_ = cudaStreamSynchronize(::fc::cuda::stream());            \
    if (fc_err_ != cudaSuccess) ::fc::cuda::fail(fc_err_, kernel_name, __FILE__, __LINE__); \
  } while (0)

// Blocks for a grid-stride loop over n items: enough to fill the device, never zero (callers
// return early for n == 0, as a zero-sized grid is a launch error). Any n >= 0 (a count of
// threads may be a saturated product, mul_sat).
inline unsigned grid_for(int64_t n, int threads) {
  const int64_t want = n / threads + (n % threads != 0);
  const int64_t cap = int64_t(sm_count()) * 32;
  return unsigned(want < cap ? (want > 0 ? want : 1) : cap);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Stream-ordered scratch memory (cudaMallocAsync / cudaFreeAsync on the call's stream), for
// partial sums that make reductions deterministic without floating-point atomics.
class Scratch {
 public:
  Scratch(size_t bytes, const char* what);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

// f(i) for every i in [0, n) on the call's stream, by a grid-stride loop; f is a __device__
// lambda (nvcc --extended-lambda) or functor captured by value. `name` appears in errors.
template <typename F>
__global__ void for_each_kernel(int64_t n, F f) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) f(i);
}

template <typename F>
void for_each(const char* name, int64_t n, F f) {
  if (n <= 0) return;
  constexpr int threads = 256;
  for_each_kernel<<<grid_for(n, threads), threads, 0, stream()>>>(n, f);
  FC_CUDA_LAUNCHED(name);
}

// Sum of v over the block in double, in a fixed tree order (deterministic); every thread gets
// the result. blockDim.x must be a multiple of 32 and at most 1024; `shared` holds 32 doubles.
__device__ inline double block_sum(double v, double* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = threadIdx.x < warps ? shared[threadIdx.x] : 0.0;
  if (warp == 0) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  return shared[0];
}

}  // namespace fc::cuda
