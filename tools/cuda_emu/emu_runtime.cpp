// Emulated runtime.cu: the same symbols, host memory for "device" memory. Scratch is filled with
// a NaN pattern so reading unwritten scratch shows.
#include <cuda_runtime.h>
#include <cstdlib>
#include <cstring>
#include "common.h"
#include "cuda/cuda_common.cuh"
#include "runtime.h"

cudaError_t cudaGetLastError() { return cudaSuccess; }
const char* cudaGetErrorName(cudaError_t) { return "emuError"; }
const char* cudaGetErrorString(cudaError_t) { return "emulated error"; }
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) {
  *p = std::malloc(bytes);
  std::memset(*p, 0xff, bytes);
  return cudaSuccess;
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t) { std::free(p); return cudaSuccess; }
cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  const char* e = std::getenv("EMU_SMS");
  *v = e ? std::atoi(e) : 2;
  return cudaSuccess;
}

namespace fc {
bool cuda_built() { return true; }
std::string cuda_archs() { return "emu"; }
std::string cuda_version() { return "emu"; }
std::string cuda_device() { return "EMULATED (sm_00)"; }
namespace cuda {
namespace { thread_local cudaStream_t current_stream = nullptr; }
void set_stream(std::uintptr_t s) { current_stream = reinterpret_cast<cudaStream_t>(s); }
cudaStream_t stream() { return current_stream; }
int sm_count() { int v; cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, 0); return v; }
void fail(cudaError_t err, const char* what, const char* file, int line) {
  throw std::runtime_error(str("emu CUDA error ", err, " in ", what, " at ", file, ":", line));
}
Scratch::Scratch(size_t bytes, const char* what) {
  (void)what;
  if (bytes == 0) return;
  cudaMallocAsync(&ptr_, bytes, stream());
}
Scratch::~Scratch() { if (ptr_) cudaFreeAsync(ptr_, stream()); }
}  // namespace cuda
}  // namespace fc
