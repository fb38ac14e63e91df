// conv2d's forward along output rows (conv_rows.h). Built with -ffp-contract=fast
// (CMakeLists.txt): the tile's a * b + c must be one fused multiply-add.
#include "cpu/conv_rows.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "common.h"
#include "cpu/isa.h"
#include "cpu/lanes.h"
#include "cpu/pad.h"
#include "cpu/parallel.h"

namespace fc {

#ifdef FC_ISA_X86
namespace {

// Accumulators per tile (NV * KB): beside them, NV input vectors and a broadcast fit the
// register file (32 vector registers under AVX-512, 16 under AVX2).
template <typename V>
constexpr int kMaxAcc = sizeof(V) == 64 ? 24 : 12;

// Input buffer per thread: the padded rows of one work item, kept within a core's L2.
constexpr int64_t kBufBytes = int64_t(512) << 10;

// Row vectors per tile at most: with two, each tap's KB broadcasts feed 2 * KB multiply-adds.
constexpr int kMaxNV = 4;

// ... for the variant: AVX2's 16 registers hold 12 sums, a broadcast and three vectors (a
// fourth spilled: two threads, batch 64, 3 -> 64 channels 3x3 on 32-pixel rows 1.90 -> 1.14 ms
// with three, 4 -> 16 channels 5x5 on 28-pixel rows 1.47 against 0.89).
template <typename V>
constexpr int64_t kMaxRowNV = sizeof(V) == 64 ? kMaxNV : 3;

// One register tile: NV vectors of one output row (at columns col[v]) times KB channels.
struct RowTile {
  const float* x;       // input buffer at the tile's row: channel 0, kernel tap (0, 0)
  const int64_t* off;   // buffer offset of each (c, r, s) tap
  const int64_t* col;   // the vectors' first columns; the last may overlap the one before
  const float* w;       // packed weights: [tap][KB]
  const float* bias;    // KB starting values
  float* y;             // the block's first output channel at the tile's row
  int64_t taps;         // C * R * S
  int64_t PQ;           // floats from one output channel to the next
};

template <typename V, int NV, int KB>
inline void row_tile(const RowTile& t) {
  V acc[KB][NV];
#pragma GCC unroll 24
  for (int k = 0; k < KB; ++k) {
    // x - V{} is the broadcast of x (x + V{} is not: -0 + +0 = +0).
    const V b = t.bias[k] - V{};
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[k][v] = b;
  }
  int64_t col[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) col[v] = t.col[v];
  for (int64_t u = 0; u < t.taps; ++u) {
    const float* xu = t.x + t.off[u];
    V xv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) std::memcpy(&xv[v], xu + col[v], sizeof(V));
    const float* wu = t.w + u * KB;
#pragma GCC unroll 24
    for (int k = 0; k < KB; ++k) {
      const V b = wu[k] - V{};
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[k][v] += b * xv[v];
    }
  }
  // In column order, so that an overlapping last vector rewrites the same sums.
#pragma GCC unroll 24
  for (int k = 0; k < KB; ++k) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) std::memcpy(t.y + k * t.PQ + col[v], &acc[k][v], sizeof(V));
  }
}

using RowTileFn = void (*)(const RowTile&);

template <typename V, int NV, int KB>
void run_row_tile(const RowTile& t) {
  // Only NV * KB <= kMaxAcc is ever picked; the rest of the table is not built.
  if constexpr (NV * KB <= kMaxAcc<V>) {
    if constexpr (sizeof(V) == 64) {
      run_avx512([&] { row_tile<V, NV, KB>(t); });
    } else {
      run_avx2([&] { row_tile<V, NV, KB>(t); });
    }
  }
}

template <typename V, int NV, size_t... I>
constexpr std::array<RowTileFn, sizeof...(I)> tile_row(std::index_sequence<I...>) {
  return {{&run_row_tile<V, NV, int(I) + 1>...}};
}

template <typename V>
RowTileFn pick_row_tile(int64_t nv, int64_t kb) {
  constexpr auto seq = std::make_index_sequence<kMaxAcc<V>>{};
  static constexpr std::array<std::array<RowTileFn, kMaxAcc<V>>, kMaxNV> table{
      {tile_row<V, 1>(seq), tile_row<V, 2>(seq), tile_row<V, 3>(seq), tile_row<V, 4>(seq)}};
  return table[nv - 1][kb - 1];
}

template <typename V>
void rows_forward(float* out, const float* inp, const float* weight, const float* bias,
                  const Conv2dGeom& g, bool parallel) {
  constexpr int64_t L = kLanes<V>;
  const int64_t C = g.Cg(), K = g.Kg(), RS = g.RS(), taps = C * RS, PQ = g.PQ();
  // A row's every vector in one tile, the last overlapping the one before where the row is
  // not a whole number of them: with one of 28 pixels' two AVX-512 vectors a tile, each tap's
  // 16 channels took 17 loads for 16 multiply-adds (two threads, batch 64: Inception's
  // 8 -> 16 5x5 0.91 -> 0.78 ms, fashion_cnn conv1 0.13 -> 0.11, a 1 -> 64 3x3 0.32 -> 0.25).
  const int64_t NV = std::min<int64_t>(kMaxRowNV<V>, ceil_div(g.Q, L));
  // Channel blocks as even as the register budget allows (16 channels: two of 8, not 12 + 4).
  const int64_t blocks = ceil_div(K, kMaxAcc<V> / NV), KB = ceil_div(K, blocks);
  // The weights as [group][channel block][tap][KB] (a last block of K % KB channels keeps
  // its own width), so that a tap's broadcasts read one cache line.
  const auto wpack = alloc_uninit<float>(g.K * taps, "conv2d (rows): packed weights");
  auto bpack = alloc_vector<float>(g.K, "conv2d (rows): bias");
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    for (int64_t k0 = 0; k0 < K; k0 += KB) {
      const int64_t kb = std::min(KB, K - k0);
      float* wb = wpack.get() + (gi * K + k0) * taps;
      for (int64_t u = 0; u < taps; ++u) {
        for (int64_t k = 0; k < kb; ++k) wb[u * kb + k] = weight[(gi * K + k0 + k) * taps + u];
      }
    }
  }
  if (bias) std::copy(bias, bias + g.K, bpack.begin());
  // Work items are (image, group, block of output rows): blocks small enough for the team to
  // share a batch of one and for the padded input rows they read to stay within a core's L2.
  const int threads = max_threads();
  const int64_t planes = g.N * g.groups, reach = (g.R - 1) * g.dil_h;
  const int64_t BW = g.Q + (g.S - 1) * g.dil_w;
  const int64_t fit = kBufBytes / mul_sat(mul_sat(C, BW), sizeof(float)) - reach;
  const int64_t splits = std::clamp<int64_t>(
      std::max(ceil_div(2 * threads, planes), ceil_div(g.P, std::max<int64_t>(fit, 1))), 1, g.P);
  const int64_t rows = ceil_div(g.P, splits), items = planes * splits;
  const int64_t BH = rows + reach;
  const int64_t plane = BH * BW;
  const auto bufs = alloc_uninit<float>(mul_sat(threads, C * plane),
                                        "conv2d (rows): input buffers");
  auto offs = alloc_vector<int64_t>(taps, "conv2d (rows): tap offsets");
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t r = 0; r < g.R; ++r) {
      for (int64_t s = 0; s < g.S; ++s) {
        offs[(c * g.R + r) * g.S + s] = c * plane + r * g.dil_h * BW + s * g.dil_w;
      }
    }
  }
#pragma omp parallel num_threads(threads) if (parallel)
  {
    float* buf = bufs.get() + thread_id() * C * plane;
    int64_t col[kMaxNV];
    // Taken as threads come free (conv_direct.cpp's correlate).
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < items; ++i) {
      const int64_t pl = i / splits, p0 = (i % splits) * rows, p1 = std::min(g.P, p0 + rows);
      const int64_t n = pl / g.groups, gi = pl % g.groups;
      if (p0 >= p1) continue;
      for (int64_t c = 0; c < C; ++c) {
        pad_plane(buf + c * plane, inp + (pl * C + c) * g.HW(), g.H, g.W, p0 - g.pad_t,
                  p1 - p0 + reach, g.pad_l, BW);
      }
      RowTile t{nullptr, offs.data(), col, nullptr, nullptr, nullptr, taps, PQ};
      for (int64_t k0 = 0; k0 < K; k0 += KB) {
        const int64_t kb = std::min(KB, K - k0);
        t.w = wpack.get() + (gi * K + k0) * taps;
        t.bias = bpack.data() + gi * K + k0;
        for (int64_t p = p0; p < p1; ++p) {
          t.x = buf + (p - p0) * BW;
          float* y = out + ((n * g.K + gi * K + k0) * g.P + p) * g.Q;
          for (int64_t q0 = 0; q0 < g.Q; q0 += NV * L) {
            const int64_t nv = std::min(NV, ceil_div(g.Q - q0, L));
            for (int64_t v = 0; v < nv; ++v) col[v] = std::min(q0 + v * L, g.Q - L);
            t.y = y;
            pick_row_tile<V>(nv, kb)(t);
          }
        }
      }
    }
  }
}

}  // namespace

bool conv2d_rows_applies(const Conv2dGeom& g) {
  if (cpu_isa() != CpuIsa::avx512 && cpu_isa() != CpuIsa::avx2) return false;
  const int64_t L = cpu_isa() == CpuIsa::avx512 ? 16 : 8;
  // A 1x1 layer is one GEMM read in place.
  if (g.stride_h != 1 || g.stride_w != 1 || g.Q < L || g.P == 0 || g.direct_1x1()) return false;
  // Rows of whole vectors or nearly (28 pixels in two AVX-512 vectors: 12 % recomputed);
  // 10 pixels in two AVX2 vectors would waste more than the direct tiles' epilogue costs.
  if (4 * g.Q < 3 * ceil_div(g.Q, L) * L) return false;
  // Measured on 2 cores against the direct tiles (im2col + GEMM where they do not apply, under
  // 32 taps: 0.3-0.5x the time); from about 100 taps the direct tiles are faster (Zen 5, batch
  // 64 at 28x28, AVX-512 and AVX2: 4 x 5x5 into 16 channels 1.09 and 1.13x, 8 x 5x5 into 16
  // 1.17 and 1.26x, 16 x 3x3 1.10 and 1.11x, 8 x 5x5 into 32 1.19 and 1.31x; at 72 taps even,
  // 3 x 5x5 into 64 0.77x); with fewer output channels than a vector the direct tiles run
  // partly empty (0.54x at 32 x 3x3 into 8 channels).
  return g.Cg() * g.RS() <= 96 || g.Kg() < L;
}

void conv2d_rows_forward(float* out, const float* inp, const float* weight, const float* bias,
                         const Conv2dGeom& g, bool parallel) {
  if (cpu_isa() == CpuIsa::avx512) {
    rows_forward<V16>(out, inp, weight, bias, g, parallel);
  } else {
    rows_forward<V8>(out, inp, weight, bias, g, parallel);
  }
}

#else

bool conv2d_rows_applies(const Conv2dGeom&) { return false; }
// Never called: conv2d_rows_applies says no.
void conv2d_rows_forward(float*, const float*, const float*, const float*, const Conv2dGeom&,
                         bool) {}

#endif

}  // namespace fc
