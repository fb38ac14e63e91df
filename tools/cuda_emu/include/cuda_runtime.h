// CPU emulation of the parts of the CUDA runtime and device language fastconv's kernels use.
// Every block runs its threads as cooperative fibers on one OS thread, in a fixed order;
// __syncthreads and warp shuffles are barriers (all threads of the block / all 32 lanes of the
// warp must arrive, otherwise the emulator reports a deadlock = divergent barrier).
// Under AddressSanitizer every switch between the scheduler's stack and a fiber's is announced
// (__sanitizer_start/finish_switch_fiber), so ASan knows which stack is live and reports on
// fiber stacks name the right frames.
#pragma once
#include <ucontext.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>
#include <math.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct uint3 { unsigned x = 0, y = 0, z = 0; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) double2 { double x, y; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline double2 make_double2(double x, double y) { return {x, y}; }
inline unsigned __umulhi(unsigned a, unsigned b) { return unsigned((uint64_t(a) * b) >> 32); }
template <class T> inline T __ldg(const T* p) { return *p; }
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

typedef int cudaError_t;
typedef void* cudaStream_t;
enum { cudaSuccess = 0, cudaErrorInvalidDeviceFunction = 98, cudaErrorNoKernelImageForDevice = 209,
       cudaErrorMemoryAllocation = 2, cudaErrorInvalidValue = 1 };
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                      cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };

namespace emu {

struct Barrier {
  int arrived = 0;
  unsigned gen = 0;
};

// A fiber's saved machine state. On x86-64 a switch is emu_switch (emu_runtime.cpp): it pushes
// the callee-saved registers and swaps stack pointers, with no system call (swapcontext saves
// the signal mask with one, and costs more than the kernels themselves); elsewhere, ucontext.
#if defined(__x86_64__)
#define EMU_FAST_SWITCH 1
}  // namespace emu
extern "C" void emu_switch(void** save_sp, void* to_sp);
namespace emu {
struct Context { void* sp = nullptr; };
inline void switch_to(Context& from, Context& to) { emu_switch(&from.sp, to.sp); }
#else
struct Context { ucontext_t uc; };
inline void switch_to(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

constexpr size_t kStackBytes = size_t(1) << 18;

struct Fiber {
  Context ctx;
  std::unique_ptr<char[]> stack;  // kStackBytes, left uninitialised (untouched pages cost nothing)
  bool done = false;
  Barrier* waiting = nullptr;
  unsigned wait_gen = 0;
  uint3 tid;
};

struct Block {
  uint3 bid;
  dim3 bdim, gdim;
  Barrier bar;
  std::vector<Barrier> warp_bar;
  std::vector<unsigned long long> warp_buf;  // 32 slots per warp
  std::vector<Fiber> fibers;
  Context sched;
  int cur = -1;
  void* fn = nullptr;
  void (*call)(void*) = nullptr;
  // The scheduler's (the OS thread's) stack, as ASan reports it when a fiber first starts.
  const void* sched_bottom = nullptr;
  size_t sched_size = 0;
};

inline Block*& block() { static Block* b = nullptr; return b; }
inline Fiber& cur() { return block()->fibers[block()->cur]; }
// Kernel launches made by this OS thread (the binding's coverage trace diffs it around a call).
inline long& launches() { static thread_local long n = 0; return n; }
// Notes the first launch from each `<<<` site (file:line) in the coverage trace.
void trace_site(const char* site);

// Scheduler -> fiber f, until f reaches a barrier or ends.
inline void run_fiber(Block& B, Fiber& f) {
#ifdef EMU_ASAN
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, f.stack.get(), kStackBytes);
#endif
  switch_to(B.sched, f.ctx);
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
}

// Fiber -> scheduler, until the scheduler resumes this fiber.
inline void yield_fiber(Fiber& f) {
  Block* B = block();
#ifdef EMU_ASAN
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, B->sched_bottom, B->sched_size);
#endif
  switch_to(f.ctx, B->sched);
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, &B->sched_bottom, &B->sched_size);
#endif
}

inline void wait_at(Barrier& b, int count) {
  Fiber& f = cur();
  if (++b.arrived == count) {
    b.arrived = 0;
    ++b.gen;
    return;
  }
  f.waiting = &b;
  f.wait_gen = b.gen;
  yield_fiber(f);
}

// Every fiber starts here, runs its thread of the kernel and switches back for good.
[[noreturn]] inline void fiber_main() {
  Block* B = block();
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &B->sched_bottom, &B->sched_size);
#endif
  B->call(B->fn);
  Fiber& f = B->fibers[B->cur];
  f.done = true;
#ifdef EMU_ASAN
  // This stack is finished with: no fake stack to keep.
  __sanitizer_start_switch_fiber(nullptr, B->sched_bottom, B->sched_size);
#endif
  switch_to(f.ctx, B->sched);
  __builtin_unreachable();
}

// Makes f start at fiber_main on its own stack at the next switch to it.
inline void init_fiber(Block& B, Fiber& f) {
  if (!f.stack) f.stack.reset(new char[kStackBytes]);
#ifdef EMU_ASAN
  // The previous thread's frames all returned (and unpoisoned themselves) except fiber_main's,
  // which ended by a switch: clear the top of the stack where it lies. Not the whole stack:
  // that would be 32 KiB of shadow per GPU thread.
  ASAN_UNPOISON_MEMORY_REGION(f.stack.get() + kStackBytes - 4096, 4096);
#endif
#ifdef EMU_FAST_SWITCH
  // emu_switch pops r15 r14 r13 r12 rbx rbp, then returns into fiber_main with the stack
  // aligned as after a call (rsp = 8 mod 16), above a null return address that ends backtraces.
  auto top = (reinterpret_cast<uintptr_t>(f.stack.get()) + kStackBytes) & ~uintptr_t(15);
  auto* sp = reinterpret_cast<void**>(top - 64);
  for (int i = 0; i < 6; ++i) sp[i] = nullptr;
  sp[6] = reinterpret_cast<void*>(&fiber_main);
  sp[7] = nullptr;
  f.ctx.sp = sp;
  (void)B;
#else
  getcontext(&f.ctx.uc);
  f.ctx.uc.uc_stack.ss_sp = f.stack.get();
  f.ctx.uc.uc_stack.ss_size = kStackBytes;
  f.ctx.uc.uc_link = &B.sched.uc;
  makecontext(&f.ctx.uc, reinterpret_cast<void (*)()>(&fiber_main), 0);
#endif
}

template <class F>
void call_fn(void* p) { (*static_cast<F*>(p))(); }

inline dim3 to_dim3(dim3 d) { return d; }
template <class I> inline dim3 to_dim3(I n) { dim3 d; d.x = unsigned(n); return d; }

// `kernel<<<grid, block, smem, stream>>>(args)` at `site`, rewritten by transform.py.
template <class G, class BL, class F>
void launch(const char* site, G grid_, BL block_, int smem, cudaStream_t, F fn) {
  (void)smem;
  const dim3 gd = to_dim3(grid_), bd = to_dim3(block_);
  const int threads = int(bd.x * bd.y * bd.z);
  const unsigned grid = gd.x * gd.y * gd.z;
  ++launches();
  trace_site(site);
  if (grid == 0 || threads <= 0 || threads > 1024 || gd.y > 65535) {
    std::fprintf(stderr, "emu: invalid launch grid=%u,%u block=%d\n", gd.x, gd.y, threads);
    std::abort();
  }
  if (threads % 32) { std::fprintf(stderr, "emu: block of %d threads\n", threads); std::abort(); }
  static thread_local std::vector<Fiber> pool;
  if (pool.size() < size_t(threads)) pool.resize(threads);
  for (unsigned b = 0; b < grid; ++b) {
    Block B;
#ifndef EMU_FAST_SWITCH
    // Zeroed: ASan's swapcontext interceptor reads the target context's uc_stack.
    std::memset(&B.sched.uc, 0, sizeof B.sched.uc);
#endif
    B.bid.x = b % gd.x;
    B.bid.y = (b / gd.x) % gd.y;
    B.bid.z = b / (gd.x * gd.y);
    B.bdim = bd;
    B.gdim = gd;
    B.warp_bar.resize(threads / 32);
    B.warp_buf.assign(threads, 0);
    B.fibers.swap(pool);
    B.fn = &fn;
    B.call = &call_fn<F>;
    Block* saved = block();
    block() = &B;
    for (int t = 0; t < threads; ++t) {
      Fiber& f = B.fibers[t];
      init_fiber(B, f);
      f.done = false;
      f.waiting = nullptr;
      f.tid = uint3{unsigned(t) % bd.x, (unsigned(t) / bd.x) % bd.y, unsigned(t) / (bd.x * bd.y)};
    }
    for (;;) {
      bool all_done = true, progress = false;
      for (int t = 0; t < threads; ++t) {
        Fiber& f = B.fibers[t];
        if (f.done) continue;
        all_done = false;
        if (f.waiting && f.waiting->gen == f.wait_gen) continue;
        f.waiting = nullptr;
        B.cur = t;
        run_fiber(B, f);
        progress = true;
      }
      if (all_done) break;
      if (!progress) {
        std::fprintf(stderr, "emu: deadlock in block %u (a barrier or shuffle not reached by all)\n", b);
        std::abort();
      }
    }
    block() = saved;
    B.fibers.swap(pool);
  }
}

}  // namespace emu

#define threadIdx (::emu::cur().tid)
#define blockIdx (::emu::block()->bid)
#define blockDim (::emu::block()->bdim)
#define gridDim (::emu::block()->gdim)

inline int emu_linear_tid() {
  const auto& b = ::emu::block()->bdim;
  const auto& t = ::emu::cur().tid;
  return int(t.x + b.x * (t.y + b.y * t.z));
}
inline void __syncthreads() {
  const auto& b = ::emu::block()->bdim;
  ::emu::wait_at(::emu::block()->bar, int(b.x * b.y * b.z));
}
#define EMU_MINMAX(T) \
  inline T min(T a, T b) { return a < b ? a : b; } inline T max(T a, T b) { return a < b ? b : a; }
EMU_MINMAX(int) EMU_MINMAX(unsigned) EMU_MINMAX(long) EMU_MINMAX(unsigned long)
EMU_MINMAX(long long) EMU_MINMAX(unsigned long long) EMU_MINMAX(float) EMU_MINMAX(double)

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  if (mask != 0xffffffffu) std::abort();
  ::emu::wait_at(::emu::block()->warp_bar[emu_linear_tid() / 32], 32);
}

template <class T>
T emu_shfl(T v, int src_of_lane_xor, bool xor_mode) {
  auto* B = ::emu::block();
  const int t = emu_linear_tid(), warp = t / 32, lane = t % 32;
  unsigned long long bits = 0;
  static_assert(sizeof(T) <= 8, "shuffle of a wide type");
  std::memcpy(&bits, &v, sizeof(T));
  B->warp_buf[t] = bits;
  ::emu::wait_at(B->warp_bar[warp], 32);
  int src = xor_mode ? (lane ^ src_of_lane_xor) : lane + src_of_lane_xor;
  T r = v;
  if (src >= 0 && src < 32) {
    bits = B->warp_buf[warp * 32 + src];
    std::memcpy(&r, &bits, sizeof(T));
  }
  ::emu::wait_at(B->warp_bar[warp], 32);
  return r;
}

template <class T> T __shfl_xor_sync(unsigned mask, T v, int o) {
  if (mask != 0xffffffffu) std::abort();
  return emu_shfl(v, o, true);
}
template <class T> T __shfl_down_sync(unsigned mask, T v, unsigned o) {
  if (mask != 0xffffffffu) std::abort();
  return emu_shfl(v, int(o), false);
}

// Explicitly rounded operations: never contracted into an FMA (kept out of line).
__attribute__((noinline)) inline double __dadd_rn(double a, double b) { return a + b; }
__attribute__((noinline)) inline double __dsub_rn(double a, double b) { return a - b; }
__attribute__((noinline)) inline double __dmul_rn(double a, double b) { return a * b; }

inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
  unsigned long long old = *p;
  if (v < old) *p = v;
  return old;
}

cudaError_t cudaGetLastError();
const char* cudaGetErrorName(cudaError_t);
const char* cudaGetErrorString(cudaError_t);
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t);
cudaError_t cudaFreeAsync(void* p, cudaStream_t);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int d);

// "device" memory is host memory here; a memset/memcpy is plain.
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) {
  std::memset(p, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
