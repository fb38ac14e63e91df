// CUDA build facts, the device fastconv runs on, the per-thread launch stream and the error
// path every CUDA twin shares. The runtime is linked statically, so only the NVIDIA driver is
// needed; without one these calls report why instead of failing.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "common.h"
#include "cuda/cuda_common.cuh"
#include "runtime.h"

namespace fc {

bool cuda_built() { return true; }
std::string cuda_archs() { return FC_CUDA_ARCHS; }
std::string cuda_version() { return FC_CUDA_VERSION; }

std::string cuda_device() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the error so later calls start clean
    return str("none (", cudaGetErrorString(err), ")");
  }
  if (count == 0) return "none (no CUDA device visible)";
  int dev = 0, driver = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    cudaGetLastError();  // as above: not to be blamed on the next kernel
    return "unknown (cudaGetDeviceProperties failed)";
  }
  if (cudaDriverGetVersion(&driver) != cudaSuccess) cudaGetLastError();
  return str(prop.name, " (sm_", prop.major, prop.minor, "), driver ", driver / 1000, '.',
             (driver % 1000) / 10, ", ", count, " device", count > 1 ? "s" : "");
}

namespace cuda {
namespace {

thread_local cudaStream_t current_stream = nullptr;

std::string device_name() {
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    cudaGetLastError();
    return "an unknown device";
  }
  return str("device ", dev, " (", prop.name, ", sm_", prop.major, prop.minor, ")");
}

}  // namespace

// CAI stream values 1 and 2 are cudaStreamLegacy and cudaStreamPerThread, which the runtime
// defines as those same handle values, so the integer converts directly.
void set_stream(std::uintptr_t s) { current_stream = reinterpret_cast<cudaStream_t>(s); }

cudaStream_t stream() { return current_stream; }

bool sync_launches() {
  static const bool sync = [] {
    const char* v = std::getenv("FASTCONV_CUDA_SYNC");
    return v != nullptr && std::string(v) == "1";
  }();
  return sync;
}

int sm_count() {
  static std::mutex mu;
  static std::vector<int> counts;
  int dev = 0;
  FC_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  if (int(counts.size()) <= dev) counts.resize(dev + 1, 0);
  if (counts[dev] == 0) {
    FC_CUDA_CHECK(cudaDeviceGetAttribute(&counts[dev], cudaDevAttrMultiProcessorCount, dev));
  }
  return counts[dev];
}

void fail(cudaError_t err, const char* what, const char* file, int line) {
  cudaGetLastError();  // a non-sticky error must not resurface in the next, unrelated call
  std::string hint;
  if (err == cudaErrorInvalidDeviceFunction || err == cudaErrorNoKernelImageForDevice) {
    hint = str("; this fastconv holds device code for ", FC_CUDA_ARCHS,
               " only: rebuild with -C cmake.define.CMAKE_CUDA_ARCHITECTURES=<your sm>");
  } else if (err == cudaErrorMemoryAllocation) {
    hint = "; free GPU memory (e.g. cupy.get_default_memory_pool().free_all_blocks()) or use a "
           "smaller batch";
  }
  throw std::runtime_error(str("fastconv CUDA error in ", what, " on ", device_name(), ": ",
                               cudaGetErrorName(err), " (", cudaGetErrorString(err), ") at ",
                               file, ":", line, hint));
}

namespace {

// The device's default memory pool hands its free memory back to the driver at every
// synchronisation (release threshold 0), so each training step's scratch would be mapped
// again after the step's host reads; it is kept for reuse instead, once per device.
void retain_pool_memory() {
  static std::mutex mu;
  static std::vector<char> done;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();  // Scratch's allocation reports the problem, named
    return;
  }
  std::lock_guard<std::mutex> lock(mu);
  if (int(done.size()) <= dev) done.resize(dev + 1, 0);
  if (done[dev]) return;
  done[dev] = 1;
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) {
    std::uint64_t keep = UINT64_MAX;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
  }
  cudaGetLastError();  // a device without memory pools: cudaMallocAsync says so, named
}

}  // namespace

Scratch::Scratch(size_t bytes, const char* what) {
  if (bytes == 0) return;
  retain_pool_memory();
  cudaError_t err = cudaMallocAsync(&ptr_, bytes, stream());
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: the next call must not see it
    ptr_ = nullptr;
    throw OutOfMemory(str(what, ": cannot allocate ", bytes_str(int64_t(bytes)),
                          " of GPU scratch memory on ", device_name(),
                          "; free GPU memory (e.g. cupy.get_default_memory_pool()."
                          "free_all_blocks()) or use a smaller batch"));
  }
  if (err != cudaSuccess) fail(err, what, __FILE__, __LINE__);
}

Scratch::~Scratch() {
  // A destructor cannot throw; a failed free must not be reported as the next kernel's error.
  if (ptr_ && cudaFreeAsync(ptr_, stream()) != cudaSuccess) cudaGetLastError();
}

}  // namespace cuda
}  // namespace fc
