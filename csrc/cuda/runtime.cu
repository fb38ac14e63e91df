// CUDA build facts and the device fastconv would run on. The runtime is linked statically, so
// only the NVIDIA driver is needed; without one these calls report why instead of failing.
#include <cuda_runtime.h>

#include "common.h"
#include "runtime.h"

namespace fc {

bool cuda_built() { return true; }
std::string cuda_archs() { return FC_CUDA_ARCHS; }
std::string cuda_version() { return FC_CUDA_VERSION; }

std::string cuda_device() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return str("none (", cudaGetErrorString(err), ")");
  }
  if (count == 0) return "none (no CUDA device visible)";
  int dev = 0, driver = 0;
  cudaGetDevice(&dev);
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, dev) != cudaSuccess) return "unknown (cudaGetDeviceProperties failed)";
  cudaDriverGetVersion(&driver);
  return str(prop.name, " (sm_", prop.major, prop.minor, "), driver ", driver / 1000, '.',
             (driver % 1000) / 10, ", ", count, " device", count > 1 ? "s" : "");
}

}  // namespace fc
