// CPU emulation of the parts of the CUDA runtime and device language fastconv's kernels use.
// Every block runs its threads as cooperative fibers on one OS thread, in a fixed order;
// __syncthreads and warp shuffles are barriers (all threads of the block / all 32 lanes of the
// warp must arrive, otherwise the emulator reports a deadlock = divergent barrier).
#pragma once
#include <ucontext.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <math.h>

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

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
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
  ucontext_t sched;
  int cur = -1;
  void* fn = nullptr;
  void (*call)(void*) = nullptr;
};

inline Block*& block() { static Block* b = nullptr; return b; }
inline Fiber& cur() { return block()->fibers[block()->cur]; }
inline long& launches() { static long n = 0; return n; }

inline void wait_at(Barrier& b, int count) {
  Fiber& f = cur();
  if (++b.arrived == count) {
    b.arrived = 0;
    ++b.gen;
    return;
  }
  f.waiting = &b;
  f.wait_gen = b.gen;
  swapcontext(&f.ctx, &block()->sched);
}

inline void trampoline() {
  Block* B = block();
  B->call(B->fn);
  B->fibers[B->cur].done = true;
  // returning switches to uc_link (the scheduler)
}

template <class F>
void call_fn(void* p) { (*static_cast<F*>(p))(); }

inline dim3 to_dim3(dim3 d) { return d; }
template <class I> inline dim3 to_dim3(I n) { dim3 d; d.x = unsigned(n); return d; }

template <class G, class BL, class F>
void launch(G grid_, BL block_, int smem, cudaStream_t, F fn) {
  (void)smem;
  const dim3 gd = to_dim3(grid_), bd = to_dim3(block_);
  const int threads = int(bd.x * bd.y * bd.z);
  const unsigned grid = gd.x * gd.y * gd.z;
  ++launches();
  if (grid == 0 || threads <= 0 || threads > 1024 || gd.y > 65535) {
    std::fprintf(stderr, "emu: invalid launch grid=%u,%u block=%d\n", gd.x, gd.y, threads);
    std::abort();
  }
  if (threads % 32) { std::fprintf(stderr, "emu: block of %d threads\n", threads); std::abort(); }
  static thread_local std::vector<Fiber> pool;
  if (pool.size() < size_t(threads)) pool.resize(threads);
  for (unsigned b = 0; b < grid; ++b) {
    Block B;
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
      if (f.stack.empty()) f.stack.resize(1 << 18);
      f.done = false;
      f.waiting = nullptr;
      f.tid = uint3{unsigned(t) % bd.x, (unsigned(t) / bd.x) % bd.y, unsigned(t) / (bd.x * bd.y)};
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = f.stack.data();
      f.ctx.uc_stack.ss_size = f.stack.size();
      f.ctx.uc_link = &B.sched;
      makecontext(&f.ctx, trampoline, 0);
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
        swapcontext(&B.sched, &f.ctx);
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
