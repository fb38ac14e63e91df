// The tiled implicit GEMM behind the convolution and dense CUDA twins (conv.cu, dense.cu):
// C[M, Ncols] = A[M, Kred] · B[Kred, Ncols] per group, whose operands never exist in memory.
// A Problem gathers each element from where it lives (an im2col window of the input, a weight,
// a strided matrix; zero in padding and past every edge) and writes each result where it
// belongs. Reductions are deterministic: a long reduction is split into chunks whose number
// depends only on the shapes, each written to scratch and summed in chunk order.
#pragma once

#include <mma.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "cuda/cuda_common.cuh"
#include "geometry.h"

namespace fc::cuda {

// n / d and n % d for 0 <= n < 2^31 by a multiply-high and a shift (Granlund-Montgomery with
// CUTLASS's constants): a hardware integer division costs ~20 instructions, too many for an
// index decoded once per loaded element.
struct FastDiv {
  int d = 1;
  unsigned mul = 0, shr = 0;

  FastDiv() = default;
  explicit FastDiv(int64_t divisor) : d(int(divisor)) {
    if (d == 1) return;
    int l = 0;
    while ((int64_t(1) << l) < d) ++l;  // ceil(log2 d), so 2^(l-1) < d <= 2^l
    const int p = 31 + l;
    mul = unsigned(((uint64_t(1) << p) + uint64_t(d) - 1) / uint64_t(d));
    shr = unsigned(p - 32);
  }
  __device__ __forceinline__ int div(int n) const {
    return d == 1 ? n : int(__umulhi(unsigned(n), mul) >> shr);
  }
  __device__ __forceinline__ void divmod(int n, int& q, int& r) const {
    q = div(n);
    r = n - q * d;
  }
};

// Reduction elements per k-step of a tile.
constexpr int kBK = 8;

// A block computes a BM x BN tile with 256 threads; with FMAs each thread holds a TM x TN
// register tile of it (FmaTile), with TF32 tensor cores each warp a set of fragments (MmaTile).
template <int BM, int BN, int TM, int TN>
struct Tile {
  static constexpr int kBM = BM, kBN = BN, kTM = TM, kTN = TN;
  static constexpr int kThreads = (BM / TM) * (BN / TN);
  static_assert(kThreads == 256 && TM % 4 == 0 && TN % 2 == 0, "tile shape");
};

// The narrowest tile that covers Ncols columns (the output channels), so small layers do not
// compute padding; double keeps to 64 columns, whose register tile fits without spilling.
template <typename T, typename F>
void with_tile(int64_t Ncols, F&& f) {
  if constexpr (std::is_same_v<T, float>) {
    if (Ncols > 64) return f(Tile<128, 128, 8, 8>{});
  }
  if (Ncols > 32) return f(Tile<128, 64, 8, 4>{});
  if (Ncols > 16) return f(Tile<128, 32, 4, 4>{});
  return f(Tile<128, 16, 4, 2>{});
}

// Reads N consecutive elements of shared memory with 16-byte (or 8-byte) loads; the address is
// aligned to the load's width by construction of the tile layout.
template <int N>
__device__ __forceinline__ void lds(float* d, const float* s) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int v = 0; v < N / 4; ++v) {
      const float4 x = reinterpret_cast<const float4*>(s)[v];
      d[4 * v] = x.x;
      d[4 * v + 1] = x.y;
      d[4 * v + 2] = x.z;
      d[4 * v + 3] = x.w;
    }
  } else {
    static_assert(N == 2, "2 or a multiple of 4 floats");
    const float2 x = *reinterpret_cast<const float2*>(s);
    d[0] = x.x;
    d[1] = x.y;
  }
}

template <int N>
__device__ __forceinline__ void lds(double* d, const double* s) {
  static_assert(N % 2 == 0, "an even number of doubles");
#pragma unroll
  for (int v = 0; v < N / 2; ++v) {
    const double2 x = reinterpret_cast<const double2*>(s)[v];
    d[2 * v] = x.x;
    d[2 * v + 1] = x.y;
  }
}

// The products of one block in FMAs: each thread a TM x TN register tile, rows tm*TM/2 + i and
// BM/2 + tm*TM/2 + i (so a warp's shared-memory reads are conflict-free), columns tn*TN + j.
template <typename T, class Cfg>
struct FmaTile {
  static constexpr int BM = Cfg::kBM, BN = Cfg::kBN, TM = Cfg::kTM, TN = Cfg::kTN, HM = TM / 2;
  T acc[TM][TN] = {};
  int tm, tn;

  __device__ explicit FmaTile(int t) : tm(t % (BM / TM)), tn(t / (BM / TM)) {}

  __device__ void step(const T (&As)[kBK][BM + 4], const T (&Bs)[kBK][BN + 4]) {
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      T a[TM], b[TN];
      lds<HM>(a, &As[kk][tm * HM]);
      lds<HM>(a + HM, &As[kk][BM / 2 + tm * HM]);
      lds<TN>(b, &Bs[kk][tn * TN]);
#pragma unroll
      for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
      }
    }
  }

  template <class Pb>
  __device__ void store(const Pb& pb, int grp, int split, int m0, int n0, T*) const {
    typename Pb::OCol ocol[TN];
#pragma unroll
    for (int j = 0; j < TN; ++j) ocol[j] = pb.out_col(grp, n0 + tn * TN + j);
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int m = m0 + (i < HM ? tm * HM + i : BM / 2 + tm * HM + i - HM);
      if (m >= pb.M) continue;
      const auto orow = pb.out_row(grp, split, m);
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        if (n0 + tn * TN + j < pb.Ncols) pb.out(orow, ocol[j], acc[i][j]);
      }
    }
  }
};

// TF32 tensor cores (sm_80 and later; older architectures compute TF32 requests in FP32):
// operands are rounded to TF32 when staged in shared memory, products accumulate in FP32. The
// 8 warps tile the block as WARPS_M x WARPS_N, each warp FM x FN fragments of 16 x 16 (k = 8,
// one per step).
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define FC_HAVE_TF32 1

__device__ __forceinline__ float round_tf32(float v) { return nvcuda::wmma::__float_to_tf32(v); }

template <class Cfg>
struct MmaTile {
  static constexpr int BM = Cfg::kBM, BN = Cfg::kBN;
  static constexpr int WARPS_N = BN >= 128 ? 4 : BN >= 64 ? 2 : 1, WARPS_M = 8 / WARPS_N;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N, FM = WM / 16, FN = WN / 16;
  static_assert(Cfg::kThreads == 256 && FM * 16 == WM && FN * 16 == WN, "warp tiling");
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 8, float> acc[FM][FN];
  int warp, lane;

  __device__ explicit MmaTile(int t) : warp(t / 32), lane(t % 32) {
#pragma unroll
    for (int i = 0; i < FM; ++i) {
#pragma unroll
      for (int j = 0; j < FN; ++j) nvcuda::wmma::fill_fragment(acc[i][j], 0.0f);
    }
  }

  // As[k][m] is A column-major and Bs[k][n] is B row-major, with leading dimensions BM + 4 and
  // BN + 4 (multiples of 4 floats); fragment origins are 32-byte aligned as wmma requires.
  __device__ void step(const float (&As)[kBK][BM + 4], const float (&Bs)[kBK][BN + 4]) {
    using namespace nvcuda;
    const int wm = warp % WARPS_M, wn = warp / WARPS_M;
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> a[FM];
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b[FN];
#pragma unroll
    for (int i = 0; i < FM; ++i) wmma::load_matrix_sync(a[i], &As[0][wm * WM + i * 16], BM + 4);
#pragma unroll
    for (int j = 0; j < FN; ++j) wmma::load_matrix_sync(b[j], &Bs[0][wn * WN + j * 16], BN + 4);
#pragma unroll
    for (int i = 0; i < FM; ++i) {
#pragma unroll
      for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
  }

  // Each fragment goes through a 16 x 16 column-major staging area of this warp (the fragment's
  // layout in registers is opaque), whose consecutive elements are consecutive rows.
  template <class Pb>
  __device__ void store(const Pb& pb, int grp, int split, int m0, int n0, float* stage) {
    using namespace nvcuda;
    const int wm = warp % WARPS_M, wn = warp / WARPS_M;
    float* mine = stage + warp * 256;
#pragma unroll
    for (int i = 0; i < FM; ++i) {
#pragma unroll
      for (int j = 0; j < FN; ++j) {
        __syncwarp();  // the previous fragment's reads are done
        wmma::store_matrix_sync(mine, acc[i][j], 16, wmma::mem_col_major);
        __syncwarp();
        for (int e = lane; e < 256; e += 32) {
          const int m = m0 + wm * WM + i * 16 + e % 16, n = n0 + wn * WN + j * 16 + e / 16;
          if (m < pb.M && n < pb.Ncols) {
            pb.out(pb.out_row(grp, split, m), pb.out_col(grp, n), mine[e]);
          }
        }
      }
    }
  }
};

#else
#define FC_HAVE_TF32 0
#endif

// A Problem, passed by value, provides
//   int M, Ncols, Kred, groups: one group's GEMM (rows, columns, reduction length);
//   int chunk: reduction elements per split (blockIdx.y), a multiple of kBK unless one split;
//   int mtiles, ntiles: set by launch_igemm;
//   kAMFast / kBNFast: consecutive threads load consecutive rows of A (columns of B), for an
//     operand contiguous along them; else consecutive reduction indices;
//   a_row(grp, m) -> ARow, ak(k) -> AKey, a(ARow, AKey) -> A[m, k] (0 outside the operand);
//     when kAMFast, also ak_step(key, k, step): ak(k) given key = ak(k - step), which a
//     Problem can do without dividing;
//   b_col(grp, n) -> BCol, bk(k) -> BKey, b(BCol, BKey) -> B[k, n] (0 outside);
//   out_row(grp, split, m) -> ORow, out_col(grp, n) -> OCol, out(ORow, OCol, v): the epilogue;
//   int64_t total, T* partial, finish(e, sum): with splits, out() stores result e of split s at
//     partial[s * total + e] and finish(e, sum) writes the sum of its splits (see run_igemm).
// a_row, b_col, ak, bk, out_row and out_col get any index (rows past M, columns past Ncols) and
// must not read memory for one out of range; a, b are called only for k < Kred and out only
// for m < M, n < Ncols.
template <typename T, class Cfg, class Pb, bool Tf32>
__global__ void __launch_bounds__(256) igemm_kernel(const Pb pb) {
  constexpr int BM = Cfg::kBM, BN = Cfg::kBN, BK = kBK, NT = Cfg::kThreads;
  constexpr bool kMma = Tf32 && FC_HAVE_TF32;
  static_assert(!Tf32 || std::is_same_v<T, float>, "TF32 is for float32");
  constexpr int kA = (BM * BK + NT - 1) / NT, kB = (BN * BK + NT - 1) / NT;
  static_assert(Pb::kAMFast ? NT % BM == 0 : NT % BK == 0, "A: a fixed row or k per thread");
  static_assert(Pb::kBNFast ? NT % BN == 0 : NT % BK == 0, "B: a fixed column or k per thread");
  constexpr int kARows = Pb::kAMFast ? 1 : kA, kBCols = Pb::kBNFast ? 1 : kB;

  // Two stages; rows padded by 4 so k-fast stores spread over the banks, keeping 16-byte rows
  // (32-byte stage origins for wmma). After the loop As stages the MMA tile's results.
  __shared__ __align__(32) T As[2][BK][BM + 4];
  __shared__ __align__(32) T Bs[2][BK][BN + 4];
  static_assert(!kMma || sizeof(As) >= 8 * 256 * sizeof(float), "MMA staging fits in As");

  const int t = int(threadIdx.x);
  int64_t id = blockIdx.x;  // (group, row tile, column tile), column tiles fastest: blocks that
  const int nt = int(id % pb.ntiles);  // run together share the A tile (the input) in L2
  id /= pb.ntiles;
  const int mt = int(id % pb.mtiles);
  const int grp = int(id / pb.mtiles);
  const int m0 = mt * BM, n0 = nt * BN, split = int(blockIdx.y);
  const int k_begin = split * pb.chunk;
  const int k_end = min(pb.Kred, k_begin + pb.chunk);

  // Element e = t + i*NT of a tile is (k, row) = (e / BM, e % BM) when m-fast, else
  // (e % BK, e / BK); likewise for B. Rows (columns) past the tile belong to no element.
  typename Pb::ARow arow[kARows];
#pragma unroll
  for (int i = 0; i < kARows; ++i) {
    const int e = t + i * NT;
    arow[i] = pb.a_row(grp, m0 + (Pb::kAMFast ? e % BM : e / BK));
  }
  typename Pb::BCol bcol[kBCols];
#pragma unroll
  for (int i = 0; i < kBCols; ++i) {
    const int e = t + i * NT;
    bcol[i] = pb.b_col(grp, n0 + (Pb::kBNFast ? e % BN : e / BK));
  }

  T ra[kA] = {}, rb[kB] = {};
  auto fetch = [&](int k0) {
    if constexpr (Pb::kAMFast) {
      // This thread's k are k0 + t/BM + i*(NT/BM): each key is stepped from the previous one.
      auto key = pb.ak(k0 + t / BM);
#pragma unroll
      for (int i = 0; i < kA; ++i) {
        const int e = t + i * NT, k = k0 + e / BM;
        if (i > 0) key = pb.ak_step(key, k, NT / BM);
        if (e < BM * BK) ra[i] = k < k_end ? pb.a(arow[0], key) : T(0);
      }
    } else {
      const int k = k0 + t % BK;
      const auto key = pb.ak(k);
#pragma unroll
      for (int i = 0; i < kA; ++i) {
        if (t + i * NT < BM * BK) ra[i] = k < k_end ? pb.a(arow[i], key) : T(0);
      }
    }
    if constexpr (Pb::kBNFast) {
#pragma unroll
      for (int i = 0; i < kB; ++i) {
        const int e = t + i * NT, k = k0 + e / BN;
        if (e < BN * BK) rb[i] = k < k_end ? pb.b(bcol[0], pb.bk(k)) : T(0);
      }
    } else {
      const int k = k0 + t % BK;
      const auto key = pb.bk(k);
#pragma unroll
      for (int i = 0; i < kB; ++i) {
        if (t + i * NT < BN * BK) rb[i] = k < k_end ? pb.b(bcol[i], key) : T(0);
      }
    }
  };
  auto staged = [](T v) {
#if FC_HAVE_TF32
    if constexpr (kMma) return round_tf32(v);
#endif
    return v;
  };
  auto stash = [&](int st) {
#pragma unroll
    for (int i = 0; i < kA; ++i) {
      const int e = t + i * NT;
      if (e < BM * BK) {
        if constexpr (Pb::kAMFast) As[st][e / BM][e % BM] = staged(ra[i]);
        else As[st][e % BK][e / BK] = staged(ra[i]);
      }
    }
#pragma unroll
    for (int i = 0; i < kB; ++i) {
      const int e = t + i * NT;
      if (e < BN * BK) {
        if constexpr (Pb::kBNFast) Bs[st][e / BN][e % BN] = staged(rb[i]);
        else Bs[st][e % BK][e / BK] = staged(rb[i]);
      }
    }
  };

#if FC_HAVE_TF32
  std::conditional_t<kMma, MmaTile<Cfg>, FmaTile<T, Cfg>> tile(t);
#else
  FmaTile<T, Cfg> tile(t);
#endif
  // Uniform over the block, so every thread meets every barrier.
  const int ktiles = k_end > k_begin ? (k_end - k_begin + BK - 1) / BK : 0;
  if (ktiles > 0) {
    fetch(k_begin);
    stash(0);
    __syncthreads();
    // One barrier per step: the next step's operands are loaded into registers before this
    // step's products and stored into the other stage after them; that stage was last read a
    // step ago, before the previous barrier.
    for (int kt = 0; kt < ktiles; ++kt) {
      const int cur = kt & 1;
      const bool more = kt + 1 < ktiles;
      if (more) fetch(k_begin + (kt + 1) * BK);
      tile.step(As[cur], Bs[cur]);
      if (more) stash(cur ^ 1);
      __syncthreads();
    }
  }
  tile.store(pb, grp, split, m0, n0, &As[0][0][0]);
}

template <typename T, class Cfg, bool Tf32, class Pb>
void launch_igemm(Pb pb, int splits, const char* name) {
  if (pb.M <= 0 || pb.Ncols <= 0 || pb.groups <= 0) return;
  pb.mtiles = int(ceil_div(pb.M, Cfg::kBM));
  pb.ntiles = int(ceil_div(pb.Ncols, Cfg::kBN));
  const int64_t blocks = int64_t(pb.groups) * pb.mtiles * pb.ntiles;
  FC_CHECK(blocks <= INT_MAX && splits >= 1 && splits <= 65535, name, ": ", blocks,
           " tiles in ", splits, " splits exceed a CUDA grid");
  igemm_kernel<T, Cfg, Pb, Tf32><<<dim3(unsigned(blocks), unsigned(splits)), Cfg::kThreads, 0,
                                   stream()>>>(pb);
  FC_CUDA_LAUNCHED(name);
}

// How to split a reduction of Kred elements: `splits` chunks of `chunk` elements (a multiple of
// kBK), from the shapes alone so that the summation order never changes. A grid of fewer than
// kTargetBlocks tiles is split until it has about that many blocks, each reducing at least
// kMinChunk elements, with at most kMaxScratch bytes of partial results.
struct Split {
  int splits = 1, chunk = 0;
};

constexpr int64_t kTargetBlocks = 512, kMinChunk = 256, kMaxSplits = 256;
constexpr int64_t kMaxScratch = int64_t(256) << 20;

inline Split plan_split(int64_t tiles, int64_t Kred, int64_t out_elems, size_t elem_bytes) {
  Split s;
  s.chunk = int(Kred);
  if (tiles <= 0 || Kred <= 0) return s;
  int64_t n = ceil_div(kTargetBlocks, tiles);
  n = std::min(n, Kred / kMinChunk);
  n = std::min(n, kMaxSplits);
  n = std::min(n, kMaxScratch / std::max<int64_t>(1, out_elems * int64_t(elem_bytes)));
  if (n <= 1) return s;
  const int64_t chunk = ceil_div(ceil_div(Kred, n), kBK) * kBK;
  s.chunk = int(chunk);
  s.splits = int(ceil_div(Kred, chunk));
  return s;
}

// Finishes a split GEMM: pb.finish(e, sum) for each of the pb.total results, the sum of its
// partials in split order, in double.
template <typename T, class Pb>
__global__ void sum_splits_kernel(const Pb pb, const T* partial, int splits) {
  const int64_t n = pb.total, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += step) {
    double s = 0;
    for (int i = 0; i < splits; ++i) s += double(partial[i * n + e]);
    pb.finish(e, s);
  }
}

// Runs a Problem on tile Cfg, split when plan_split says so: partials go to stream-ordered
// scratch (the Problem's out() writes pb.partial[split * pb.total + its result's index] when
// pb.partial is set), then sum_splits_kernel hands each sum to pb.finish. Tf32 (float only)
// multiplies on tensor cores.
template <typename T, class Cfg, bool Tf32 = false, class Pb>
void run_igemm(Pb pb, const char* name) {
  if (pb.M <= 0 || pb.Ncols <= 0 || pb.groups <= 0) return;
  const int64_t tiles =
      int64_t(pb.groups) * ceil_div(pb.M, Cfg::kBM) * ceil_div(pb.Ncols, Cfg::kBN);
  const Split sp = plan_split(tiles, pb.Kred, pb.total, sizeof(T));
  pb.chunk = sp.chunk;
  Scratch scratch(sp.splits > 1 ? size_t(sp.splits) * size_t(pb.total) * sizeof(T) : 0, name);
  pb.partial = scratch.as<T>();
  launch_igemm<T, Cfg, Tf32>(pb, sp.splits, name);
  if (sp.splits > 1) {
    constexpr int threads = 256;
    sum_splits_kernel<T, Pb><<<grid_for(pb.total, threads), threads, 0, stream()>>>(
        pb, pb.partial, sp.splits);
    FC_CUDA_LAUNCHED(name);
  }
}

// The largest images per launch that keep every row index of one launch's GEMM below 2^30
// (the kernels index rows and pixels in 32 bits; batch offsets are 64-bit).
inline int64_t images_per_launch(const Conv2dGeom& g) {
  return std::max<int64_t>(1, (int64_t(1) << 30) / std::max(g.PQ(), g.HW()));
}

}  // namespace fc::cuda
