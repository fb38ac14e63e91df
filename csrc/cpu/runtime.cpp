// Thread control and the build/CPU facts behind fastconv.info().
#include "runtime.h"

#include <algorithm>
#include <atomic>

#include "common.h"
#include "cpu/parallel.h"

namespace fc {

namespace {
// libgomp keeps a team's per-thread data on the starting thread's stack: some tens of
// thousands of threads overflow it and crash the process at the next parallel kernel.
constexpr int kMaxThreads = 4096;

// OpenMP's default when the library loads: OMP_NUM_THREADS, else the cores this process may
// run on (read on the importing thread, before anyone could have changed its ICV), within
// kMaxThreads.
int default_threads() {
#ifdef _OPENMP
  return std::min(omp_get_max_threads(), kMaxThreads);
#else
  return 1;
#endif
}

// The process-wide thread count (see parallel.h). Relaxed is enough: each kernel reads it once
// and needs no other memory ordered with it; a count set in one thread reaches the kernels
// other threads start afterwards.
std::atomic<int> num_threads{default_threads()};
}  // namespace

void set_num_threads(int64_t n) {
  FC_CHECK(n >= 1, "set_num_threads: n must be a positive integer, got ", n);
  FC_CHECK(n <= kMaxThreads, "set_num_threads: n must be at most ", kMaxThreads, ", got ", n);
#ifdef _OPENMP
  num_threads.store(n, std::memory_order_relaxed);
#endif
}

int get_num_threads() { return num_threads.load(std::memory_order_relaxed); }

std::string openmp_version() {
#ifdef _OPENMP
  return std::to_string(_OPENMP);
#else
  return "";
#endif
}

std::string simd_compiled() {
  std::string s;
  auto add = [&s](const char* f) { s += s.empty() ? f : std::string(" ") + f; };
#if defined(__AVX512F__)
  add("AVX512F");
#endif
#if defined(__AVX2__)
  add("AVX2");
#endif
#if defined(__FMA__)
  add("FMA");
#endif
#if defined(__AVX__)
  add("AVX");
#endif
#if defined(__SSE4_2__)
  add("SSE4.2");
#endif
#if defined(__SSE2__)
  add("SSE2");
#endif
#if defined(__ARM_NEON)
  add("NEON");
#endif
  return s.empty() ? "none" : s;
}

std::string simd_cpu() {
#if defined(__x86_64__) || defined(__i386__)
  std::string s;
  __builtin_cpu_init();
  auto add = [&s](const char* f) { s += s.empty() ? f : std::string(" ") + f; };
  if (__builtin_cpu_supports("avx512f")) add("AVX512F");
  if (__builtin_cpu_supports("avx2")) add("AVX2");
  if (__builtin_cpu_supports("fma")) add("FMA");
  if (__builtin_cpu_supports("avx")) add("AVX");
  if (__builtin_cpu_supports("sse4.2")) add("SSE4.2");
  return s.empty() ? "SSE2" : s;
#else
  return simd_compiled();
#endif
}

std::string compiler() {
#if defined(__clang__)
  return str("clang ", __clang_major__, '.', __clang_minor__, '.', __clang_patchlevel__);
#elif defined(__GNUC__)
  return str("gcc ", __GNUC__, '.', __GNUC_MINOR__, '.', __GNUC_PATCHLEVEL__);
#else
  return "unknown";
#endif
}

CpuIsa cpu_isa_best() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2")) {
    return CpuIsa::avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c")) {
    return CpuIsa::avx2;
  }
#endif
  return CpuIsa::baseline;
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::avx512: return "avx512";
    case CpuIsa::avx2: return "avx2";
    default: return "baseline";
  }
}

namespace {
std::atomic<CpuIsa> isa_in_use{cpu_isa_best()};
std::atomic<bool> tf32_allowed{false};
}  // namespace

CpuIsa cpu_isa() { return isa_in_use.load(std::memory_order_relaxed); }

void set_cpu_isa(const std::string& name) {
  constexpr int kCount = int(CpuIsa::avx512) + 1;
  const int best = int(cpu_isa_best());
  auto names = [](int hi) {
    std::string s;
    for (int i = hi; i >= 0; --i) s += str(s.empty() ? "" : ", ", cpu_isa_name(CpuIsa(i)));
    return s;
  };
  int i = 0;
  while (i < kCount && name != cpu_isa_name(CpuIsa(i))) ++i;
  FC_CHECK(i < kCount, "set_cpu_isa: isa must be one of ", names(kCount - 1), ", got '", name,
           "'");
  FC_CHECK(i <= best, "set_cpu_isa: this CPU cannot run '", name, "'; it supports ",
           names(best));
  isa_in_use.store(CpuIsa(i), std::memory_order_relaxed);
}

void set_allow_tf32(bool allow) { tf32_allowed.store(allow, std::memory_order_relaxed); }
bool allow_tf32() { return tf32_allowed.load(std::memory_order_relaxed); }

#ifndef FC_CUDA
bool cuda_built() { return false; }
std::string cuda_archs() { return ""; }
std::string cuda_version() { return ""; }
std::string cuda_device() { return "none (built without CUDA)"; }
#endif

}  // namespace fc
