// Emulated runtime.cu: the same symbols, host memory for "device" memory. Scratch is filled with
// a NaN pattern so reading unwritten scratch shows. Also the coverage trace: with FC_EMU_TRACE
// naming a file, the first launch from each `<<<` site and the first call of each CUDA twin per
// dtype append a line to it ("site conv.cu:431", "twin conv2d_forward float32", or "picked ..."
// for a call that launched nothing), read by check_coverage.py.
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include "common.h"
#include "cuda/cuda_common.cuh"
#include "runtime.h"

#if defined(EMU_FAST_SWITCH)
// void emu_switch(void** save_sp, void* to_sp): saves the callee-saved registers on the current
// stack and its stack pointer in *save_sp, then resumes the stack at to_sp (saved the same way,
// or laid out by emu::init_fiber). The FP control words are left alone: every fiber is the same
// OS thread, and the kernels never change them.
asm(R"(
  .text
  .globl emu_switch
  .type emu_switch, @function
  .p2align 4
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch, .-emu_switch
)");
#endif

namespace {

// Appends `line` to $FC_EMU_TRACE the first time it is seen by this process; lines are written
// (and flushed) at once, so a crash later still leaves what ran.
void trace_once(const std::string& line) {
  static const char* path = std::getenv("FC_EMU_TRACE");
  if (!path || !*path) return;
  static std::mutex mu;
  static std::set<std::string> seen;
  std::lock_guard<std::mutex> lock(mu);
  if (!seen.insert(line).second) return;
  if (FILE* f = std::fopen(path, "a")) {
    std::fprintf(f, "%s\n", line.c_str());
    std::fclose(f);
  }
}

}  // namespace

void emu::trace_site(const char* site) { trace_once(std::string("site ") + site); }

namespace fc::bind {
long trace_launches() { return emu::launches(); }
void trace_twin(const char* name, DType dtype, long launches_before) {
  const bool launched = emu::launches() != launches_before;
  trace_once(str(launched ? "twin " : "picked ", name, ' ', dtype_name(dtype)));
}
}  // namespace fc::bind

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
bool sync_launches() {  // as runtime.cu's: the launches here are synchronous anyway
  static const bool sync = [] {
    const char* v = std::getenv("FASTCONV_CUDA_SYNC");
    return v != nullptr && std::string(v) == "1";
  }();
  return sync;
}
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
