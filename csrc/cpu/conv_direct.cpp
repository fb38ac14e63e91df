// The direct convolution (conv_direct.h). Built with -ffp-contract=fast (CMakeLists.txt): the
// tile's a * b + c must be one fused multiply-add, and this file has no expression whose
// rounding another variant or a reference relies on.
#include "cpu/conv_direct.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <numeric>
#include <utility>
#include <vector>

#include "blas.h"
#include "common.h"
#include "cpu/isa.h"
#include "cpu/lanes.h"
#include "cpu/pad.h"
#include "cpu/parallel.h"
#include "cpu/run_sum.h"
#include "cpu/transpose.h"

namespace fc {

#ifdef FC_ISA_X86
namespace {

// Output pixels per tile: RR * J accumulators, J weights and one broadcast fit the register
// file (32 vector registers under AVX-512, 16 under AVX2) with J = 2.
template <typename V>
constexpr int kMaxRR = sizeof(V) == 64 ? 14 : 6;

// The same with J = 1 (a layer of at most `lanes` output channels: the 16-channel input
// gradient of a 5x5 layer): twice the pixels, so a tap's weight load is shared by twice as many
// broadcast multiply-adds (the tile is bound by its loads: one per multiply-add plus the
// weight's): fashion_cnn conv2's input gradient ran 10-15 % faster (2.98 -> 2.53 ms on one
// thread, 1.44 -> 1.29 ms on two).
template <typename V>
constexpr int kMaxRR1 = 2 * kMaxRR<V>;

// tile_body unrolls its pixel loops 32 deep: a loop left rolled keeps the accumulators in
// memory (a 28-pixel tile ran at 60 % of the speed of two of 14).
static_assert(kMaxRR1<V16> <= 32 && kMaxRR1<V8> <= 32, "tile_body's unroll pragmas");

// The most output pixels a tile of J channel blocks takes.
template <typename V>
constexpr int64_t max_rr(int64_t J) {
  return J == 1 ? kMaxRR1<V> : kMaxRR<V>;
}

// Input buffer per work item: the padded rows one block of output rows reads, kept within a
// core's L2 beside the packed weights.
constexpr int64_t kBufBytes = int64_t(512) << 10;

// Rows per register tile at most: a plane narrower than the tile puts G whole rows (of this
// image or the next ones) side by side, so that G * RR accumulators still fill the registers.
constexpr int kMaxGroups = 4;

// One register tile: G groups of RR consecutive output pixels of one row each, J blocks of
// `lanes` channels.
struct Tile {
  const float* x;      // buffer at the first group's first window: channel 0, first row, column
  const float* xg[kMaxGroups];  // the same for each group (xg[0] == x)
  const int64_t* off;  // buffer offset of each (c, r, s) tap, in the packed weights' order
  const float* w;      // packed weights of the tile's first channel block
  const float* bias;   // J * lanes starting values
  float* res;          // [RR][J * lanes] results
  int64_t sw;          // column stride
  int64_t block;       // floats from one channel block's packed weights to the next
  // The taps summed: `runs` runs of `len` taps of the flattened (c, r, s), run i from tap
  // first + i * stride. One run of all C * R * S, or per channel the kernel rows that read
  // inside the source (inside_rows).
  int64_t runs, len, stride, first;
  int64_t chunk;  // taps summed from zero before their sum joins res (chunk_taps)
};

// One float32 running sum over all C * R * S taps loses a bit of accuracy every few hundred
// terms: 512 -> 512 3x3 at 7x7 was 3.3e-6 of the largest output off the float64 sum, 1024
// channels 5e-6, ten times PyTorch's float32 (2-4e-7, its GEMM's K blocks). Sums of about 128
// taps, from zero, added into the results one after the other, stay at PyTorch's: 3.3e-7. A
// chunk is whole kernel rows, so that the row and edge tiles, which take a row's S taps at
// once, flush where tile_body does and give its bits. The flush costs a load, an addition and
// a store per accumulator every 128 multiply-adds of it (under 1 % of the tile's time).
constexpr int64_t chunk_taps(int64_t S) {
  return S * std::max<int64_t>(1, 128 / S);
}

// A chunk's sums into res (stored, for the first chunk; added, for the others), restarted at
// zero. acc[i] goes to res + i * lanes, the tiles' result layout.
template <typename V, int N>
inline void flush_chunk(V (&acc)[N], float* res, bool first) {
  constexpr int64_t L = kLanes<V>;
#pragma GCC unroll 64
  for (int i = 0; i < N; ++i) {
    V sum = acc[i];
    if (!first) {
      V old;
      std::memcpy(&old, res + i * L, sizeof(V));
      sum = old + sum;
    }
    std::memcpy(res + i * L, &sum, sizeof(V));
    acc[i] = V{};
  }
}

// Column strides with tiles of their own (kStrides[i], i > 0; 0: any, read from the tile).
// A stride known when compiled is a displacement of each broadcast's address; else each
// pixel's address is one more addition, which competes with the multiply-adds for their ports:
// ResNet's 3x3 stride-2 forward ran 7 % faster so (16 x 128 x 28x28 -> 256, one thread),
// AlexNet conv1's 11x11/4 forward 1-2 %.
constexpr std::array<int, 4> kStrides = {0, 1, 2, 4};

constexpr int stride_slot(int64_t sw) {
  for (size_t i = 1; i < kStrides.size(); ++i) {
    if (kStrides[i] == sw) return int(i);
  }
  return 0;
}

// One loop over the (c, r, s) taps, through a table of their offsets, rather than three
// nested ones: with 3x3 kernels the inner loops would run three steps each.
template <typename V, int G, int RR, int J, int SW>
inline void tile_body(const Tile& t) {
  constexpr int64_t L = kLanes<V>;
  const int64_t sw = SW ? SW : t.sw;
  const float* xg[G];
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) xg[g] = t.xg[g];
  V acc[G * RR][J];
#pragma GCC unroll 2
  for (int j = 0; j < J; ++j) {
    V b;
    std::memcpy(&b, t.bias + j * L, sizeof(V));
#pragma GCC unroll 32
    for (int r = 0; r < G * RR; ++r) acc[r][j] = b;
  }
  auto& sums = reinterpret_cast<V(&)[G * RR * J]>(acc);
  int64_t left = t.chunk;
  bool first = true;
  for (int64_t i = 0; i < t.runs; ++i) {
    const int64_t* off = t.off + t.first + i * t.stride;
    const float* w = t.w + (t.first + i * t.stride) * L;
    for (int64_t u0 = 0; u0 < t.len;) {
      const int64_t u1 = std::min(t.len, u0 + left);
      for (int64_t u = u0; u < u1; ++u) {
        V wv[J];
#pragma GCC unroll 2
        for (int j = 0; j < J; ++j) std::memcpy(&wv[j], w + u * L + j * t.block, sizeof(V));
        const int64_t o = off[u];
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g) {
          const float* xk = xg[g] + o;
#pragma GCC unroll 32
          for (int r = 0; r < RR; ++r) {
            // x - V{} is the broadcast of x (x + V{} is not: -0 + +0 = +0).
            const V b = xk[r * sw] - V{};
#pragma GCC unroll 2
            for (int j = 0; j < J; ++j) acc[g * RR + r][j] += b * wv[j];
          }
        }
      }
      left -= u1 - u0;
      u0 = u1;
      if (left == 0) {
        flush_chunk(sums, t.res, first);
        first = false;
        left = t.chunk;
      }
    }
  }
  if (first || left != t.chunk) flush_chunk(sums, t.res, first);
}

// A layer of one channel block (J = 1), unit column stride and dilation: a tile of one
// broadcast per weight vector is bound by its loads (a broadcast and a third of a weight per
// multiply-add: 30 loads to 28 of them), where the tiles of two blocks run at the multiply-add
// ports' rate. This one holds a kernel row's S weight vectors in registers and broadcasts each
// input pixel of the row once, into the S outputs it reaches: RR + S - 1 broadcasts and S
// weights for S * RR multiply-adds. Each output still sums its (c, r, s) taps in tile_body's
// order, so both give the same bits.
template <typename V, int S>
constexpr int kMaxRowRR = (sizeof(V) == 64 ? 32 : 16) - S - 1;

// Kernel widths with a row tile.
constexpr bool row_tile_width(int64_t S) { return S == 3 || S == 5; }

// EL and ER: the tile's first EL and last ER window columns are padding, whose
// broadcasts it skips (run_edge_tile); 0 for tiles of several rows.
template <typename V, int G, int RR, int S, int EL = 0, int ER = 0>
inline void row_tile_body(const Tile& t) {
  constexpr int64_t L = kLanes<V>;
  const float* xg[G];
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) xg[g] = t.xg[g];
  V acc[G * RR];
  V b0;
  std::memcpy(&b0, t.bias, sizeof(V));
#pragma GCC unroll 32
  for (int r = 0; r < G * RR; ++r) acc[r] = b0;
  const int64_t rows = t.len / S, chunk_rows = t.chunk / S;
  int64_t left = chunk_rows;  // kernel rows to the next flush, where tile_body's falls
  bool first = true;
  for (int64_t run = 0; run < t.runs; ++run) {
    const int64_t* off = t.off + t.first + run * t.stride;
    const float* w = t.w + (t.first + run * t.stride) * L;
    for (int64_t u0 = 0; u0 < rows;) {
      const int64_t u1 = std::min(rows, u0 + left);
      for (int64_t u = u0; u < u1; ++u) {
        V wv[S];
#pragma GCC unroll 8
        for (int s = 0; s < S; ++s) std::memcpy(&wv[s], w + (u * S + s) * L, sizeof(V));
        const int64_t o = off[u * S];
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g) {
          const float* xk = xg[g] + o;
#pragma GCC unroll 40
          for (int i = 0; i < RR + S - 1; ++i) {
            if (i < EL || i >= RR + S - 1 - ER) continue;
            const V b = xk[i] - V{};
#pragma GCC unroll 8
            for (int s = 0; s < S; ++s) {
              if (i - s >= 0 && i - s < RR) acc[g * RR + i - s] += b * wv[s];
            }
          }
        }
      }
      left -= u1 - u0;
      u0 = u1;
      if (left == 0) {
        flush_chunk(acc, t.res, first);
        first = false;
        left = chunk_rows;
      }
    }
  }
  if (first || left != chunk_rows) flush_chunk(acc, t.res, first);
}

// tile_body's tile at unit dilation for a kernel S wide, G groups of RR pixels SW columns
// apart, whose windows' first EL and last ER columns are padding: each kernel row's S taps are
// unrolled, and the products of a tap with those columns are left out (pixel r of tap s reads
// window column r * SW + s). Each output sums its other taps in tile_body's order.
template <typename V, int G, int RR, int J, int S, int SW, int EL, int ER>
inline void edge_tile_body(const Tile& t) {
  constexpr int64_t L = kLanes<V>;
  constexpr int kEnd = (RR - 1) * SW + S - ER;  // the window's first right padding column
  int64_t dg[G];  // group g's window from the first group's
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) dg[g] = t.xg[g] - t.x;
  V acc[G * RR][J];
#pragma GCC unroll 2
  for (int j = 0; j < J; ++j) {
    V b;
    std::memcpy(&b, t.bias + j * L, sizeof(V));
#pragma GCC unroll 32
    for (int r = 0; r < G * RR; ++r) acc[r][j] = b;
  }
  auto& sums = reinterpret_cast<V(&)[G * RR * J]>(acc);
  int64_t left = t.chunk;  // taps to the next flush, where tile_body's falls
  bool first = true;
  for (int64_t i = 0; i < t.runs; ++i) {
    const int64_t* off = t.off + t.first + i * t.stride;
    const float* w = t.w + (t.first + i * t.stride) * L;
    for (int64_t u = 0; u < t.len; u += S) {
      const float* xk = t.x + off[u];
      const float* wu = w + u * L;
#pragma GCC unroll 8
      for (int s = 0; s < S; ++s) {
        V wv[J];
#pragma GCC unroll 2
        for (int j = 0; j < J; ++j) std::memcpy(&wv[j], wu + s * L + j * t.block, sizeof(V));
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g) {
#pragma GCC unroll 32
          for (int r = 0; r < RR; ++r) {
            if (r * SW + s < EL || r * SW + s >= kEnd) continue;
            const V b = xk[dg[g] + r * SW + s] - V{};
#pragma GCC unroll 2
            for (int j = 0; j < J; ++j) acc[g * RR + r][j] += b * wv[j];
          }
        }
        // Opaque pointers hold the next tap's loads after this tap's multiply-adds: GCC
        // otherwise schedules them across taps, holds ten weight vectors beside the 28 sums
        // and spills these to the stack (the tile then ran 1.4x tile_body's time).
        __asm__("" : "+r"(wu), "+r"(xk));
      }
      left -= S;
      if (left == 0) {
        flush_chunk(sums, t.res, first);
        first = false;
        left = t.chunk;
      }
    }
  }
  if (first || left != t.chunk) flush_chunk(sums, t.res, first);
}

// f() compiled for the instruction set whose vectors V is (isa.h's runners).
template <typename V, typename F>
void run_for(const F& f) {
  if constexpr (sizeof(V) == 64) {
    run_avx512(f);
  } else {
    run_avx2(f);
  }
}

using TileFn = void (*)(const Tile&);

template <typename V, int G, int RR, int J, int SW>
void run_tile(const Tile& t) {
  // Only G * RR <= max_rr(J) is ever picked; the rest of the table is not built.
  if constexpr (G * RR <= max_rr<V>(J)) run_for<V>([&] { tile_body<V, G, RR, J, SW>(t); });
}

template <typename V, int G, int J, int SW, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> tile_row(std::index_sequence<I...>) {
  return {{&run_tile<V, G, int(I) + 1, J, SW>...}};
}

using TileGroups = std::array<std::array<TileFn, kMaxRR1<V16>>, kMaxGroups>;
static_assert(kMaxRR1<V16> >= kMaxRR1<V8>, "one table shape for both vector widths");

template <typename V, int J, int SW>
constexpr TileGroups tile_groups() {
  constexpr auto seq = std::make_index_sequence<kMaxRR1<V>>{};
  TileGroups g{};
  const std::array<std::array<TileFn, kMaxRR1<V>>, kMaxGroups> rows = {
      {tile_row<V, 1, J, SW>(seq), tile_row<V, 2, J, SW>(seq), tile_row<V, 3, J, SW>(seq),
       tile_row<V, 4, J, SW>(seq)}};
  for (int i = 0; i < kMaxGroups; ++i) {
    for (int r = 0; r < kMaxRR1<V>; ++r) g[i][r] = rows[i][r];
  }
  return g;
}

template <typename V, int J, size_t... I>
constexpr std::array<TileGroups, sizeof...(I)> stride_tables(std::index_sequence<I...>) {
  return {{tile_groups<V, J, kStrides[I]>()...}};
}

// The tile for G groups (1..kMaxGroups) of RR pixels (G * RR <= max_rr(J)), J blocks (1 or 2),
// column stride sw.
template <typename V>
TileFn pick_tile(int64_t g, int64_t rr, int64_t j, int64_t sw) {
  constexpr auto seq = std::make_index_sequence<kStrides.size()>{};
  static constexpr std::array<TileGroups, kStrides.size()> table[2] = {
      stride_tables<V, 1>(seq), stride_tables<V, 2>(seq)};
  return table[j - 1][stride_slot(sw)][g - 1][rr - 1];
}

template <typename V, int G, int RR, int S>
void run_row_tile(const Tile& t) {
  if constexpr (G * RR <= kMaxRowRR<V, S>) run_for<V>([&] { row_tile_body<V, G, RR, S>(t); });
}

template <typename V, int G, int S, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> row_tile_row(std::index_sequence<I...>) {
  return {{&run_row_tile<V, G, int(I) + 1, S>...}};
}

template <typename V, int S>
constexpr std::array<std::array<TileFn, kMaxRR1<V>>, kMaxGroups> row_tile_groups() {
  constexpr auto seq = std::make_index_sequence<kMaxRR1<V>>{};
  return {{row_tile_row<V, 1, S>(seq), row_tile_row<V, 2, S>(seq), row_tile_row<V, 3, S>(seq),
           row_tile_row<V, 4, S>(seq)}};
}

static_assert(kMaxRowRR<V16, 3> <= kMaxRR1<V16> && kMaxRowRR<V8, 3> <= kMaxRR1<V8>,
              "row tiles fit tile tables");

// A one-row tile whose window starts (E & 1) or ends (E & 2) in P = (S - 1) / 2 columns of
// padding, the reach of a kernel centred on its pixel ('same' padding: fashion_cnn conv2,
// Inception's 5x5, the 5x5 first layers): a row tile (Row) or a tap tile of two blocks.
template <typename V, int RR, bool Row, int S, int E>
void run_edge_tile(const Tile& t) {
  constexpr int P = (S - 1) / 2, EL = E & 1 ? P : 0, ER = E & 2 ? P : 0;
  if constexpr (Row) {
    if constexpr (RR <= kMaxRowRR<V, S>) {
      run_for<V>([&] { row_tile_body<V, 1, RR, S, EL, ER>(t); });
    }
  } else if constexpr (RR <= kMaxRR<V>) {
    run_for<V>([&] { edge_tile_body<V, 1, RR, 2, S, 1, EL, ER>(t); });
  }
}

template <typename V, bool Row, int S, int E, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> edge_tile_row(std::index_sequence<I...>) {
  return {{&run_edge_tile<V, int(I) + 1, Row, S, E>...}};
}

template <typename V, bool Row, int S>
constexpr std::array<std::array<TileFn, kMaxRR1<V>>, 3> edge_tile_patterns() {
  constexpr auto seq = std::make_index_sequence<kMaxRR1<V>>{};
  return {{edge_tile_row<V, Row, S, 1>(seq), edge_tile_row<V, Row, S, 2>(seq),
           edge_tile_row<V, Row, S, 3>(seq)}};
}

// A tile of G whole rows of RR pixels at column stride SW (1 or 2) of a 3-wide kernel whose
// windows start (E & 1) or end (E & 2) in a column of padding: ResNet's 3x3 layers on small
// planes, where a row's first and last pixels each skip a tap of three (7x7 to 4x4 at stride
// 2 skips 2 of each row's 12 products: ResNet-18's 256 -> 512 at batch 64, two threads,
// 4.6 -> 4.0-4.3 ms, PyTorch's oneDNN 4.0-4.5, which skips them too).
template <typename V, int G, int RR, int SW, int E>
void run_rows_edge_tile(const Tile& t) {
  if constexpr (G * RR <= kMaxRR<V>) {
    run_for<V>([&] { edge_tile_body<V, G, RR, 2, 3, SW, E & 1, (E & 2) / 2>(t); });
  }
}

constexpr int kMaxEdgeRowRR = 7;  // row length of edge tiles of several rows, at most

template <typename V, int G, int SW, int E, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> rows_edge_row(std::index_sequence<I...>) {
  return {{(G * (int(I) + 1) <= kMaxRR<V> ? &run_rows_edge_tile<V, G, int(I) + 1, SW, E>
                                          : nullptr)...}};
}

template <typename V, int SW, int E>
constexpr std::array<std::array<TileFn, kMaxEdgeRowRR>, kMaxGroups> rows_edge_groups() {
  constexpr auto seq = std::make_index_sequence<kMaxEdgeRowRR>{};
  return {{rows_edge_row<V, 1, SW, E>(seq), rows_edge_row<V, 2, SW, E>(seq),
           rows_edge_row<V, 3, SW, E>(seq), rows_edge_row<V, 4, SW, E>(seq)}};
}

// How a correlation's tiles are picked (S: the kernel's width, 3 or 5, at unit column stride
// and dilation, else 0; rows_edge: a 3-wide kernel at column stride 1 or 2, unit dilation).
// One channel block (a layer of one, or an odd count's lone last block) takes row tiles where
// S is set: each pixel's broadcast feeds the S outputs it reaches, where a tap tile's feeds one
// (Inception's 16 -> 48 5x5 forward, whose third block took tap tiles, 4.17 -> 3.82 ms, two
// threads, batch 64 at 28x28). Two blocks take tap tiles. For a row at the plane's edge, an
// edge tile where one applies.
template <typename V>
struct TilePick {
  int64_t S = 0;
  bool rows_edge = false;
  // The edge tile of g whole rows of rr pixels, J blocks, column stride sw, whose windows start
  // in el columns of padding and end in er; nullptr where none applies.
  TileFn rows(int64_t g, int64_t rr, int64_t j, int64_t sw, int64_t el, int64_t er) const {
    using Table = std::array<std::array<TileFn, kMaxEdgeRowRR>, kMaxGroups>;
    static constexpr Table tables[2][3] = {
        {rows_edge_groups<V, 1, 1>(), rows_edge_groups<V, 1, 2>(), rows_edge_groups<V, 1, 3>()},
        {rows_edge_groups<V, 2, 1>(), rows_edge_groups<V, 2, 2>(), rows_edge_groups<V, 2, 3>()}};
    if (!rows_edge || j != 2 || el > 1 || er > 1 || el + er == 0 || rr > kMaxEdgeRowRR) {
      return nullptr;
    }
    return tables[sw - 1][el + 2 * er - 1][g - 1][rr - 1];
  }
  // The edge tile of rr pixels, J blocks (1 or 2), whose window starts in el columns of padding
  // and ends in er; nullptr where none applies (no padding in reach, a reach other than the
  // kernel's half width).
  TileFn edge(int64_t rr, int64_t j, int64_t el, int64_t er) const {
    static constexpr std::array<std::array<TileFn, kMaxRR1<V>>, 3> tables[2][2] = {
        {edge_tile_patterns<V, false, 3>(), edge_tile_patterns<V, false, 5>()},
        {edge_tile_patterns<V, true, 3>(), edge_tile_patterns<V, true, 5>()}};
    const int64_t P = (S - 1) / 2;
    if (!S || (el == 0 && er == 0) || (el != 0 && el != P) || (er != 0 && er != P)) {
      return nullptr;
    }
    return tables[j == 1][S == 5][(el ? 1 : 0) + (er ? 2 : 0) - 1][rr - 1];
  }
  // The most pixels a tile of J blocks takes.
  int64_t max_rr(int64_t J) const {
    if (J == 1 && S == 3) return kMaxRowRR<V, 3>;
    if (J == 1 && S == 5) return kMaxRowRR<V, 5>;
    return fc::max_rr<V>(J);
  }
  TileFn operator()(int64_t g, int64_t rr, int64_t j, int64_t sw) const {
    static constexpr std::array<std::array<TileFn, kMaxRR1<V>>, kMaxGroups> rows[2] = {
        row_tile_groups<V, 3>(), row_tile_groups<V, 5>()};
    if (j == 1 && S) return rows[S == 5][g - 1][rr - 1];
    return pick_tile<V>(g, rr, j, sw);
  }
};

// Weight-gradient tile: T kernel taps times J blocks of `lanes` output channels, summed over
// the output pixels [p0, p1) x [q0, q1) of an item's rows (where one of the taps reads inside
// the source; elsewhere all read padding, zeros). Each pixel loads J dy vectors and broadcasts
// T input pixels.
struct GradTile {
  const float* x;      // the item's buffer
  const int64_t* off;  // buffer offset of each tap's pixel for output pixel (0, 0)
  const float* dy;     // the item's dy, pixel-major: [rows * Q][ldy], at the first block
  float* sum;          // packed sums at the first tap of the first block; added to
  int64_t images;      // whole planes side by side in the buffer, xplane floats apart
  int64_t xplane;
  int64_t rows, Q, Wb, sh, sw;
  int64_t p0, p1, q0, q1;
  int64_t ldy;    // floats per dy pixel
  int64_t block;  // floats from one block's packed sums to the next
};

// Taps per weight-gradient tile, J = 2: 2 * T accumulators, two dy vectors and a broadcast,
// 31 of AVX-512's 32 registers and 15 of AVX2's 16 (12 taps under AVX-512 ran fashion_cnn
// conv2's weight gradient 11 % slower: a dy vector feeds 24 multiply-adds, not 28).
template <typename V>
constexpr int kMaxTaps = sizeof(V) == 64 ? 14 : 6;

// Taps per tile of J blocks: 14 and 6 for one or two; three blocks (an odd count's last three)
// take 9 under AVX-512 (27 sums, three dy vectors and a broadcast) and 3 under AVX2. A lone
// block's tile broadcasts an input pixel per multiply-add, bound by its loads: Inception's
// 16 -> 48 5x5 weight gradient spent 36 % of its time on its one lone block of three.
template <typename V>
constexpr int grad_taps(int64_t J) {
  return J == 3 ? (sizeof(V) == 64 ? 9 : 3) : kMaxTaps<V>;
}

template <typename V, int T, int J>
inline void grad_tile_body(const GradTile& t) {
  constexpr int64_t L = kLanes<V>;
  V acc[T][J];
  const float* xt[T];
#pragma GCC unroll 16
  for (int u = 0; u < T; ++u) {
    xt[u] = t.x + t.off[u];
#pragma GCC unroll 3
    for (int j = 0; j < J; ++j) acc[u][j] = V{};
  }
  // One output pixel: its J dy vectors (at d) times each tap's input pixel (xo past xt[u]).
  const auto pixel = [&](const float* d, int64_t xo) __attribute__((always_inline)) {
    V dv[J];
#pragma GCC unroll 3
    for (int j = 0; j < J; ++j) std::memcpy(&dv[j], d + j * L, sizeof(V));
#pragma GCC unroll 16
    for (int u = 0; u < T; ++u) {
      const V b = xt[u][xo] - V{};
#pragma GCC unroll 3
      for (int j = 0; j < J; ++j) acc[u][j] += b * dv[j];
    }
  };
  // Every pixel of the item in one loop over its rows where the run reads inside the source
  // at all of them: nested loops over images and rows took 4 % longer (ResNet-18's 256 -> 512
  // stride-2 layer at batch 4, two threads).
  if (t.p0 == 0 && t.p1 == t.rows && t.q0 == 0 && t.q1 == t.Q) {
    for (int64_t ip = 0; ip < t.images * t.rows; ++ip) {
      const float* d = t.dy + ip * t.Q * t.ldy;
      const int64_t xrow = ip / t.rows * t.xplane + ip % t.rows * t.sh * t.Wb;
      for (int64_t q = 0; q < t.Q; ++q) pixel(d + q * t.ldy, xrow + q * t.sw);
    }
  } else {
    for (int64_t n = 0; n < t.images; ++n) {
      for (int64_t p = t.p0; p < t.p1; ++p) {
        const float* d = t.dy + (n * t.rows + p) * t.Q * t.ldy;
        const int64_t xrow = n * t.xplane + p * t.sh * t.Wb;
        for (int64_t q = t.q0; q < t.q1; ++q) pixel(d + q * t.ldy, xrow + q * t.sw);
      }
    }
  }
#pragma GCC unroll 16
  for (int u = 0; u < T; ++u) {
#pragma GCC unroll 3
    for (int j = 0; j < J; ++j) {
      V s;
      float* at = t.sum + j * t.block + u * L;
      std::memcpy(&s, at, sizeof(V));
      s += acc[u][j];
      std::memcpy(at, &s, sizeof(V));
    }
  }
}

using GradTileFn = void (*)(const GradTile&);

template <typename V, int T, int J>
void run_grad_tile(const GradTile& t) {
  run_for<V>([&] { grad_tile_body<V, T, J>(t); });
}

template <typename V, int J, size_t... I>
constexpr std::array<GradTileFn, sizeof...(I)> grad_tile_row(std::index_sequence<I...>) {
  return {{&run_grad_tile<V, int(I) + 1, J>...}};
}

// The weight-gradient tile for T taps (1..grad_taps(J)) and J blocks (1 to 3).
template <typename V>
GradTileFn pick_grad_tile(int64_t taps, int64_t j) {
  constexpr auto seq = std::make_index_sequence<kMaxTaps<V>>{};
  constexpr auto seq3 = std::make_index_sequence<grad_taps<V>(3)>{};
  static constexpr std::array<GradTileFn, kMaxTaps<V>> table[2] = {grad_tile_row<V, 1>(seq),
                                                                    grad_tile_row<V, 2>(seq)};
  static constexpr std::array<GradTileFn, grad_taps<V>(3)> three = grad_tile_row<V, 3>(seq3);
  return j == 3 ? three[taps - 1] : table[j - 1][taps - 1];
}

// One correlation of a batch, weights packed: out[n, gi*K + k, p, q] = bias + the sum over
// (c, r, s) of src[n, gi*C + c, p*sh + r*dh - oh, q*sw + s*dw - ow] (zero outside src) times
// the weight packed for (gi, k, c, r, s).
struct Corr {
  int64_t N, groups, C, K;  // per group: C channels read, K written
  int64_t H, W, P, Q;       // source and output planes
  int64_t R, S, sh, sw, dh, dw;
  int64_t oh, ow;  // source pixel (h, w) is buffer pixel (h + oh, w + ow) of the full frame
  bool parallel;
  // Output channel planes yc apart, rows yr, pixels ycol (0: packed, P * Q and Q).
  int64_t yc = 0, yr = 0, ycol = 1;
  int64_t plane() const { return yc ? yc : P * Q; }
  int64_t row() const { return yr ? yr : Q; }
};

template <typename V>
TilePick<V> tile_pick(const Corr& d) {
  const bool unit = d.sw == 1 && d.dw == 1 && row_tile_width(d.S);
  return TilePick<V>{unit ? d.S : 0, (d.sw == 1 || d.sw == 2) && d.dw == 1 && d.S == 3};
}

// Where the weight of group gi, output channel k, input channel c and tap (r, s) of a
// correlation sits: w + gi * sg + k * sk + c * sc + r * sr + s * ss (sr = -S, ss = -1 for a
// flipped kernel, w then at its last tap; a strided input gradient's phases take every sh-th
// row and sw-th column of one).
struct WeightMap {
  const float* w;
  int64_t sg, sk, sc, sr, ss;
  const float* row(int64_t gi, int64_t k, int64_t c) const { return w + gi * sg + k * sk + c * sc; }
  int64_t tap(int64_t rs, int64_t S) const { return rs / S * sr + rs % S * ss; }
};

// rows[l][j0 + jj] into dst[jj * ld + l] for l, jj < L.
template <typename V>
inline void transpose_block(const float* const* rows, int64_t j0, float* dst, int64_t ld) {
  constexpr int L = int(kLanes<V>);
  V r[L];
#pragma GCC unroll 16
  for (int l = 0; l < L; ++l) std::memcpy(&r[l], rows[l] + j0, sizeof(V));
  transpose_rounds<V>(r);
#pragma GCC unroll 16
  for (int l = 0; l < L; ++l) std::memcpy(dst + l * ld, &r[l], sizeof(V));
}

// r[l][i] = res[i * stride + l] for i < n, zero for n <= i < L: the first n of L rows of a
// tile's results, channel-major (a pixel's L channels are a row of res).
template <typename V>
inline void load_transposed(V* r, const float* res, int64_t stride, int64_t n) {
  constexpr int L = int(kLanes<V>);
#pragma GCC unroll 16
  for (int i = 0; i < L; ++i) {
    r[i] = V{};
    if (i < n) std::memcpy(&r[i], res + i * stride, sizeof(V));
  }
  transpose_rounds<V>(r);
}

// o[rs * 16 + l] = p[l * sk + taps[rs]] for rs < RS, l < 16; zero for l >= lanes.
__attribute__((target("avx512f"))) void pack_taps_avx512(float* o, const float* p, int64_t sk,
                                                          const int64_t* taps, int64_t lanes,
                                                          int64_t RS) {
  const __m512i idx = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32(int(sk)));
  const __mmask16 k = lanes >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << lanes) - 1);
  for (int64_t rs = 0; rs < RS; ++rs) {
    _mm512_storeu_ps(o + rs * 16,
                     _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, p + taps[rs], 4));
  }
}

// pack_taps_avx512's result where the taps are consecutive floats, ascending or descending (a
// kernel read as stored, or flipped): each run of up to 16 taps is 16 masked row loads and a
// transposition in registers. Zen 5 took about 70 cycles per 16-lane gather here: 30 % of
// ResNet-18's 512 x 512 4x4 input gradient on the direct tiles went to the packing.
__attribute__((target("avx512f"), flatten)) void pack_tap_rows_avx512(
    float* o, const float* p, int64_t sk, const int64_t* taps, int64_t lanes, int64_t RS) {
  for (int64_t t0 = 0; t0 < RS; t0 += 16) {
    const int64_t n = std::min<int64_t>(16, RS - t0);
    const int64_t base = std::min(taps[t0], taps[t0 + n - 1]);
    const __mmask16 cols = __mmask16((1u << n) - 1);
    V16 r[16];
    for (int64_t l = 0; l < 16; ++l) {
      r[l] = l < lanes ? V16(_mm512_maskz_loadu_ps(cols, p + l * sk + base)) : V16{};
    }
    transpose_rounds<V16>(r);
    for (int64_t rs = t0; rs < t0 + n; ++rs) std::memcpy(o + rs * 16, &r[taps[rs] - base], 64);
  }
}

// Packed weights: [groups][K blocks][C][R*S][lanes], lanes past K zero.
template <typename V>
std::unique_ptr<float[]> pack_weights(const Corr& d, const WeightMap& m) {
  constexpr int64_t L = kLanes<V>;
  const int64_t KB = ceil_div(d.K, L), RS = d.R * d.S, items = d.groups * KB * d.C;
  auto w = alloc_uninit<float>(items * RS * L, "conv2d (direct): packed weights");
  const bool threaded = items * RS * L >= (int64_t(1) << 16);
  if (m.ss == 1 && m.sr == d.S && m.sc == RS) {
    // A block's (c, rs) run along each weight row: the packed block is the transposition of
    // its L rows, L columns at a time (a scalar gather cost more than a batch of 4 images'
    // tiles of a wide layer: 512 x 512 x 3x3).
    const int64_t CRS = d.C * RS, blocks = d.groups * KB;
    const auto zeros = alloc_vector<float>(CRS, "conv2d (direct): packed weights");
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (threaded)
    for (int64_t i = 0; i < blocks; ++i) {
      const int64_t gi = i / KB, kb = i % KB;
      const float* rows[L];
      for (int64_t l = 0; l < L; ++l) {
        rows[l] = kb * L + l < d.K ? m.row(gi, kb * L + l, 0) : zeros.data();
      }
      float* o = w.get() + i * CRS * L;
      int64_t j = 0;
      run_for<V>([&] {
        for (; j + L <= CRS; j += L) transpose_block<V>(rows, j, o + j * L, L);
      });
      for (; j < CRS; ++j) {
        for (int64_t l = 0; l < L; ++l) o[j * L + l] = rows[l][j];
      }
    }
    return w;
  }
  // One item per (group, channel, block), blocks innermost: the input gradient's flipped
  // kernel reads a weight row of all blocks' lanes in turn (blocks outermost, each item read
  // 576 bytes 18 KB past the last one's on ResNet-18's 512 x 512 3x3 layer, a miss the
  // prefetcher does not foresee). Under AVX-512 an item whose taps are consecutive floats is
  // transposed in registers (pack_tap_rows_avx512), else a tap's 16 lanes are one gather (the
  // scalar copy took a twentieth of a 256 x 256 3x3 input gradient on Ice Lake); under AVX2,
  // lanes outer, taps inner.
  std::vector<int64_t> taps(RS);
  for (int64_t rs = 0; rs < RS; ++rs) taps[rs] = m.tap(rs, d.S);
  const int64_t step = RS > 1 ? taps[1] - taps[0] : 1;
  bool consecutive = step == 1 || step == -1;
  for (int64_t rs = 2; rs < RS; ++rs) consecutive = consecutive && taps[rs] - taps[rs - 1] == step;
  const bool rows = sizeof(V) == 64 && consecutive;
  const bool gather = sizeof(V) == 64 && (L - 1) * m.sk < (int64_t(1) << 29);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (threaded)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t gi = item / (KB * d.C), c = item / KB % d.C, kb = item % KB;
    float* o = w.get() + ((gi * KB + kb) * d.C + c) * RS * L;
    const int64_t lanes = std::min(L, d.K - kb * L);
    if (rows) {
      pack_tap_rows_avx512(o, m.row(gi, kb * L, c), m.sk, taps.data(), lanes, RS);
      continue;
    }
    if (gather) {
      pack_taps_avx512(o, m.row(gi, kb * L, c), m.sk, taps.data(), lanes, RS);
      continue;
    }
    for (int64_t l = 0; l < L; ++l) {
      const int64_t k = kb * L + l;
      if (k >= d.K) {
        for (int64_t rs = 0; rs < RS; ++rs) o[rs * L + l] = 0.0f;
        continue;
      }
      const float* p = m.row(gi, k, c);
      for (int64_t rs = 0; rs < RS; ++rs) o[rs * L + l] = p[taps[rs]];
    }
  }
  return w;
}

// buf[c, i, j] = src[c, top + i, j - ow] (zero outside src) for c < C, i < hb, j < Wb;
// pixels_only as pad_plane's. A thread's buffer keeps its zeros from one item to the next when
// the items' windows match (whole images: fashion_cnn conv2's every item), and the padding
// then costs nothing: filling took 4 % of that layer's forward, most of it the zeros.
void fill_buffer(float* buf, const float* src, const Corr& d, int64_t top, int64_t hb,
                 int64_t Wb, bool pixels_only = false) {
  for (int64_t c = 0; c < d.C; ++c) {
    pad_plane(buf + c * hb * Wb, src + c * d.H * d.W, d.H, d.W, top, hb, d.ow, Wb, pixels_only);
  }
}

// off[i] = the buffer offset of tap i of the flattened (c, r, s), for i < n: where the pixel
// that tap reads for output pixel (0, 0) sits in a buffer of hb rows of Wb. Walked as (c, r, s)
// counters: a division per tap would cost as much as a small layer's tiles.
void tap_offsets(int64_t* off, int64_t n, const Corr& d, int64_t hb, int64_t Wb) {
  int64_t c = 0, r = 0, s = 0;
  for (int64_t i = 0; i < n; ++i) {
    off[i] = (c * hb + r * d.dh) * Wb + s * d.dw;
    if (++s == d.S) {
      s = 0;
      if (++r == d.R) r = 0, ++c;
    }
  }
}

// Work items: (image, group, block of output rows). A block's input buffer stays within
// kBufBytes (one row at least), and there are items enough for every thread even at batch 1.
struct RowPlan {
  int64_t rows, chunks, items;
  int64_t Wb;         // buffer row length
  int64_t workspace;  // buffer floats per thread
  int64_t buffer_rows(int64_t r, const Corr& d) const { return (r - 1) * d.sh + (d.R - 1) * d.dh + 1; }
};

RowPlan plan_rows(const Corr& d, int threads) {
  RowPlan b{d.P, 0, 0, (d.Q - 1) * d.sw + (d.S - 1) * d.dw + 1, 0};
  const int64_t row_bytes = mul_sat(d.C * b.Wb, sizeof(float));
  while (b.rows > 1 && mul_sat(b.buffer_rows(b.rows, d), row_bytes) > kBufBytes) {
    b.rows = ceil_div(b.rows, 2);
  }
  if (d.N * d.groups * ceil_div(d.P, b.rows) < threads) {
    b.rows = std::min(b.rows, ceil_div(d.P, ceil_div(threads, d.N * d.groups)));
  }
  b.chunks = ceil_div(d.P, b.rows);
  b.items = d.N * d.groups * b.chunks;
  b.workspace = d.C * b.buffer_rows(b.rows, d) * b.Wb;
  return b;
}

// Item i of plan b: image n, group gi, output rows [p0, p1), its buffer filled (hb rows).
struct Item {
  int64_t n, gi, p0, p1, hb;
};

// The window a thread's buffer was last filled for (first row, rows): -1 rows before any.
struct Filled {
  int64_t top = 0, hb = -1;
};

Item load_item(int64_t i, const RowPlan& b, float* buf, const float* src, const Corr& d,
               Filled& filled) {
  Item it{i / (d.groups * b.chunks), (i / b.chunks) % d.groups, (i % b.chunks) * b.rows, 0, 0};
  it.p1 = std::min(d.P, it.p0 + b.rows);
  it.hb = b.buffer_rows(it.p1 - it.p0, d);
  const int64_t top = it.p0 * d.sh - d.oh;
  fill_buffer(buf, src + (it.n * d.groups + it.gi) * d.C * d.H * d.W, d, top, it.hb, b.Wb,
              filled.top == top && filled.hb == it.hb);
  filled = {top, it.hb};
  return it;
}

// y[l * ld + r] = res[r * stride + l] for l < k1, r < RR: a tile's results, pixel-major, into
// k1 output channels. Under AVX-512, 16 pixels at a time are transposed in registers (rows past
// RR read zeros) and each channel's are one masked store: a masked gather per channel took a
// twentieth of fashion_cnn conv2's forward (its 16 loads each, beside the tile's 17 per 28
// multiply-adds), and the scalar copy before it a ninth (448 moves per tile).
// Pixels ycol apart (a strided input gradient's phases) go out through a scatter.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), flatten)) void store_channels_avx512(
    float* y, int64_t ld, const float* res, int64_t RR, int64_t stride, int64_t k1,
    int64_t ycol) {
  const __m512i idx = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32(int(ycol)));
  for (int64_t r0 = 0; r0 < RR; r0 += 16) {
    const int64_t n = std::min<int64_t>(16, RR - r0);
    V16 r[16];
    load_transposed(r, res + r0 * stride, stride, n);
    const __mmask16 m = n == 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
#pragma GCC unroll 16
    for (int l = 0; l < 16; ++l) {
      if (l >= k1) continue;
      if (ycol == 1) {
        _mm512_mask_storeu_ps(y + l * ld + r0, m, __m512(r[l]));
      } else {
        _mm512_mask_i32scatter_ps(y + l * ld + r0 * ycol, m, idx, __m512(r[l]), 4);
      }
    }
  }
}

// The same in 8 x 8 blocks under AVX2 (a scalar copy with a stride of a channel row per
// element was 8 % of fashion_cnn conv2's forward there).
FC_TARGET_AVX2 __attribute__((flatten)) void store_channels_avx2(
    float* y, int64_t ld, const float* res, int64_t RR, int64_t stride, int64_t k1) {
  for (int64_t r0 = 0; r0 < RR; r0 += 8) {
    const int n = int(std::min<int64_t>(8, RR - r0));
    V8 r[8];
    load_transposed(r, res + r0 * stride, stride, n);
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#pragma GCC unroll 8
    for (int l = 0; l < 8; ++l) {
      if (l < k1) _mm256_maskstore_ps(y + l * ld + r0, m, __m256(r[l]));
    }
  }
}

// Pixels ycol apart under AVX2 (no scatter): one by one. A branch for them inside
// store_channels_avx2 made fashion_cnn conv2's forward 4-11 % slower there.
void store_channels_strided(float* y, int64_t ld, const float* res, int64_t RR, int64_t stride,
                            int64_t k1, int64_t ycol) {
  for (int64_t r = 0; r < RR; ++r) {
    for (int64_t l = 0; l < k1; ++l) y[l * ld + r * ycol] = res[r * stride + l];
  }
}

template <typename V>
void store_channels(float* y, int64_t ld, const float* res, int64_t RR, int64_t stride,
                    int64_t k1, int64_t ycol) {
  if constexpr (sizeof(V) == 64) {
    store_channels_avx512(y, ld, res, RR, stride, k1, ycol);
  } else if (ycol == 1) {
    store_channels_avx2(y, ld, res, RR, stride, k1);
  } else {
    store_channels_strided(y, ld, res, RR, stride, k1, ycol);
  }
}

// Shuffle masks that interleave two vectors of L lanes: lo takes lanes [0, L/2) of each, a's
// first, hi lanes [L/2, L).
template <typename M, int L, typename E = std::make_index_sequence<L>>
struct Zip;

template <typename M, int L, size_t... E>
struct Zip<M, L, std::index_sequence<E...>> {
  static constexpr M lo = {(int(E) / 2 + (int(E) % 2) * L)...};
  static constexpr M hi = {(L / 2 + int(E) / 2 + (int(E) % 2) * L)...};
};

// The two column phases of a stride-2 input gradient, ra's pixels at even columns and rb's at
// odd ones: y[l * ld + 2 * r + b] = (b ? rb : ra)[r * stride + l] for l < k1, r < RR, b < 2.
// Each channel's runs go out interleaved in contiguous stores, where each phase alone took a
// scatter (AVX-512) or a store per pixel (AVX2).
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), flatten)) void store_pairs_avx512(
    float* y, int64_t ld, const float* ra, const float* rb, int64_t RR, int64_t stride,
    int64_t k1) {
  using M = decltype(V16{} < V16{});
  using Masks = Zip<M, 16>;
  for (int64_t r0 = 0; r0 < RR; r0 += 16) {
    const int64_t n = std::min<int64_t>(16, RR - r0);
    V16 a[16], b[16];
    load_transposed(a, ra + r0 * stride, stride, n);
    load_transposed(b, rb + r0 * stride, stride, n);
    const __mmask16 m0 = n >= 8 ? __mmask16(0xFFFF) : __mmask16((1u << (2 * n)) - 1);
    const __mmask16 m1 = n >= 16 ? __mmask16(0xFFFF)
                         : n > 8 ? __mmask16((1u << (2 * n - 16)) - 1)
                                 : __mmask16(0);
#pragma GCC unroll 16
    for (int l = 0; l < 16; ++l) {
      if (l >= k1) continue;
      float* to = y + l * ld + 2 * r0;
      _mm512_mask_storeu_ps(to, m0, __m512(__builtin_shuffle(a[l], b[l], Masks::lo)));
      if (n > 8) {
        _mm512_mask_storeu_ps(to + 16, m1, __m512(__builtin_shuffle(a[l], b[l], Masks::hi)));
      }
    }
  }
}

FC_TARGET_AVX2 __attribute__((flatten)) void store_pairs_avx2(float* y, int64_t ld,
                                                               const float* ra, const float* rb,
                                                               int64_t RR, int64_t stride,
                                                               int64_t k1) {
  using M = decltype(V8{} < V8{});
  using Masks = Zip<M, 8>;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t r0 = 0; r0 < RR; r0 += 8) {
    const int n = int(std::min<int64_t>(8, RR - r0));
    V8 a[8], b[8];
    load_transposed(a, ra + r0 * stride, stride, n);
    load_transposed(b, rb + r0 * stride, stride, n);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n - 8), lane);
#pragma GCC unroll 8
    for (int l = 0; l < 8; ++l) {
      if (l >= k1) continue;
      float* to = y + l * ld + 2 * r0;
      _mm256_maskstore_ps(to, m0, __m256(__builtin_shuffle(a[l], b[l], Masks::lo)));
      if (n > 4) _mm256_maskstore_ps(to + 8, m1, __m256(__builtin_shuffle(a[l], b[l], Masks::hi)));
    }
  }
}

template <typename V>
void store_pairs(float* y, int64_t ld, const float* ra, const float* rb, int64_t RR,
                 int64_t stride, int64_t k1) {
  if constexpr (sizeof(V) == 64) {
    store_pairs_avx512(y, ld, ra, rb, RR, stride, k1);
  } else {
    store_pairs_avx2(y, ld, ra, rb, RR, stride, k1);
  }
}

// The kernel rows [first, second) that read a source row for output row p.
std::pair<int64_t, int64_t> kernel_rows_inside(const Corr& d, int64_t p) {
  const int64_t top = p * d.sh - d.oh;  // the source row kernel row 0 reads
  const int64_t r0 = top >= 0 ? 0 : std::min(d.R, ceil_div(-top, d.dh));
  const int64_t last = d.H - 1 - top;  // kernel row r reads a source row while r * dh <= last
  return {r0, last < 0 ? 0 : std::min(d.R, last / d.dh + 1)};
}

// The taps output row p sums: per channel, the kernel rows that read a source row, or all taps
// in one run when every kernel row does. A row of padding adds only zeros (products with -0 or
// +0; PyTorch's oneDNN skips them too): fashion_cnn conv2's 5x5 at padding 2 spends 6 of each
// 70 row products of a plane on them.
void inside_rows(Tile& t, const Corr& d, int64_t p) {
  const auto [r0, r1] = kernel_rows_inside(d, p);
  const int64_t RS = d.R * d.S;
  if (r0 == 0 && r1 == d.R) {
    t.runs = 1, t.len = d.C * RS, t.stride = 0, t.first = 0;
  } else {
    t.runs = r1 > r0 ? d.C : 0, t.len = (r1 - r0) * d.S, t.stride = RS, t.first = r0 * d.S;
  }
}

// How a correlation's rows go into tiles: G whole rows per tile when at least two fit one
// (correlate_rows), else nt tiles per row of floor(Q / nt) or ceil(Q / nt) pixels (a last tile
// overlapping the one before computed up to nt - 1 pixels twice: 56 for AlexNet conv1's 55, 33
// for 31).
template <typename V>
struct RowTiles {
  TilePick<V> pick;
  int64_t G, nt;
};

template <typename V>
RowTiles<V> row_tiles(const Corr& d) {
  constexpr int64_t L = kLanes<V>;
  // A layer of one channel block runs J = 1 tiles alone, which take more pixels.
  const TilePick<V> pick = tile_pick<V>(d);
  const int64_t maxrr = pick.max_rr(std::min<int64_t>(ceil_div(d.K, L), 2));
  const int64_t G = std::min<int64_t>(kMaxGroups, maxrr / d.Q);
  return {pick, G, G >= 2 ? 0 : ceil_div(d.Q, maxrr)};
}

// A correlation's part in a work item: its geometry and tiles, the buffer at the window of the
// item's first output row (column 0), its tap offsets from there and its packed weights.
template <typename V>
struct ItemPart {
  const Corr* d;
  const RowTiles<V>* rt;
  const float* rows;
  const int64_t* off;
  const float* wpack;
};

// The tiles of an item's nparts parts (one correlation, or a column-phase pair whose results
// go out interleaved), each writing its results to its own slice of res.
template <typename V>
struct PartTiles {
  Tile t[2];
  int n;

  PartTiles(const ItemPart<V>* parts, int nparts, float* res) : n(nparts) {
    for (int i = 0; i < n; ++i) {
      const int64_t taps = parts[i].d->C * parts[i].d->R * parts[i].d->S;
      t[i] = Tile{nullptr, {}, parts[i].off, nullptr, nullptr, res + i * kMaxRR1<V> * kLanes<V>,
                  parts[i].d->sw, taps * kLanes<V>, 1, taps, 0, 0, chunk_taps(parts[i].d->S)};
    }
  }
  // The weights and bias of channel blocks kb.. of group gi (KB blocks a group).
  void blocks(const ItemPart<V>* parts, const float* bpack, int64_t gi, int64_t KB, int64_t kb) {
    for (int i = 0; i < n; ++i) {
      t[i].w = parts[i].wpack + (gi * KB + kb) * t[i].block;
      t[i].bias = bpack + (gi * KB + kb) * kLanes<V>;
    }
  }
  // Results from offset r of RR pixels (stride floats apart) into k1 channels ld apart from y:
  // one part's pixels ycol apart, a pair's interleaved.
  void store(float* y, int64_t ld, int64_t r, int64_t RR, int64_t stride, int64_t k1,
             int64_t ycol) const {
    if (n == 1) {
      store_channels<V>(y, ld, t[0].res + r, RR, stride, k1, ycol);
    } else {
      store_pairs<V>(y, ld, t[0].res + r, t[1].res + r, RR, stride, k1);
    }
  }
};

// Images [n0, n0 + m) of group gi, their frames fplane floats apart, in tiles of up to G whole
// rows (rows that sum the same taps, across the images) of one correlation, or of the two
// column phases of a stride-2 input gradient (pair_columns), their results interleaved on the
// way out. Each part's rows point at its window in the first image's frame; res holds nparts
// tiles' results.
template <typename V>
void correlate_rows_item(float* out, const ItemPart<V>* parts, int nparts, int64_t Wb,
                         int64_t fplane, const float* bpack, int64_t gi, int64_t n0, int64_t m,
                         float* res) {
  constexpr int64_t L = kLanes<V>;
  const Corr& d = *parts[0].d;
  const int64_t KB = ceil_div(d.K, L), G = parts[0].rt->G;
  // The output rows by the kernel rows they read inside the source (inside_rows), so that a
  // tile's rows share them and skip the padding's: class c is rows[cls[c], cls[c + 1]), taken
  // for each image in turn. Of ResNet-18's 256 -> 512 stride-2 layer at 7x7 (4x4 outputs, a
  // row of padding above the first and below the last) a sixth of the products are skipped:
  // 5.25 -> 4.36 ms at batch 64 on two threads.
  std::vector<int64_t> rows(d.P), cls{0};
  std::iota(rows.begin(), rows.end(), int64_t(0));
  const auto key = [&](int64_t p) {
    return std::array<std::pair<int64_t, int64_t>, 2>{
        kernel_rows_inside(*parts[0].d, p), kernel_rows_inside(*parts[nparts - 1].d, p)};
  };
  std::stable_sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) { return key(a) < key(b); });
  for (int64_t i = 1; i <= d.P; ++i) {
    if (i == d.P || key(rows[i]) != key(rows[i - 1])) cls.push_back(i);
  }
  PartTiles<V> pt(parts, nparts, res);
  Tile* t = pt.t;
  int64_t at[kMaxGroups];  // output offset of each group's row (without the channel)
  for (int64_t kb = 0; kb < KB; kb += 2) {
    const int64_t J = std::min<int64_t>(2, KB - kb);
    pt.blocks(parts, bpack, gi, KB, kb);
    for (size_t c = 0; c + 1 < cls.size(); ++c) {
      const int64_t width = cls[c + 1] - cls[c], count = m * width;
      for (int i = 0; i < nparts; ++i) inside_rows(t[i], *parts[i].d, rows[cls[c]]);
      // As few tiles as G rows a tile take, as even as can be (10 rows in 3, 3, 2 and 2).
      const int64_t nt = ceil_div(count, G);
      for (int64_t tt = 0; tt < nt; ++tt) {
        const int64_t row0 = tt * count / nt, groups = (tt + 1) * count / nt - row0;
        for (int64_t g = 0; g < groups; ++g) {
          const int64_t img = (row0 + g) / width, p = rows[cls[c] + (row0 + g) % width];
          at[g] = ((n0 + img) * d.groups + gi) * d.K * d.plane() + p * d.row();
          for (int i = 0; i < nparts; ++i) {
            t[i].xg[g] = parts[i].rows + img * fplane + p * parts[i].d->sh * Wb;
          }
        }
        for (int i = 0; i < nparts; ++i) {
          const Corr& di = *parts[i].d;
          t[i].x = t[i].xg[0];
          const int64_t el = std::max<int64_t>(0, di.ow);
          const int64_t er = std::max<int64_t>(0, (di.Q - 1) * di.sw + (di.S - 1) * di.dw + 1 -
                                                      di.ow - di.W);
          const TileFn edge = parts[i].rt->pick.rows(groups, di.Q, J, di.sw, el, er);
          (edge ? edge : parts[i].rt->pick(groups, di.Q, J, di.sw))(t[i]);
        }
        for (int64_t jb = 0; jb < J; ++jb) {
          const int64_t k1 = std::min(L, d.K - (kb + jb) * L);
          for (int64_t g = 0; g < groups; ++g) {
            pt.store(out + at[g] + (kb + jb) * L * d.plane(), d.plane(),
                     (g * d.Q * J + jb) * L, d.Q, J * L, k1, d.ycol);
          }
        }
      }
    }
  }
}

// Items of whole planes of several images (as many as the buffer budget takes, plane floats
// each, at most `most`), in whole rounds of the team (16 images in items of 7 would leave one
// thread a third of the work), the images split as evenly as the items allow (5 or 6 each for
// 64 in 12 items, where items of 6 made 11 of them, 6 for one thread and 5 for the other).
// Item i: group i / per_group, `count(i)` images from n0(i).
struct ImagePlan {
  int64_t N, per_group, items, imgs;
  int64_t n0(int64_t i) const { return i % per_group * N / per_group; }
  int64_t count(int64_t i) const { return (i % per_group + 1) * N / per_group - n0(i); }
};

ImagePlan plan_images(const Corr& d, int64_t plane, int threads, int64_t most) {
  const int64_t budget = std::clamp<int64_t>(kBufBytes / mul_sat(plane, sizeof(float)), 1, most);
  const int64_t rounds = ceil_div(ceil_div(d.N, budget) * d.groups, threads) * threads;
  const int64_t per_group = std::min(d.N, ceil_div(rounds, d.groups));
  return {d.N, per_group, d.groups * per_group, ceil_div(d.N, per_group)};
}

// Planes at most half a tile wide (G >= 2 whole rows fit a tile): items of whole planes of
// several images (plan_images), each tile up to G rows of Q pixels across them
// (correlate_rows_item).
template <typename V>
void correlate_rows(float* out, const float* src, const float* wpack, const float* bpack,
                    const Corr& d, const RowTiles<V>& rt) {
  const int64_t taps = d.C * d.R * d.S;
  const int64_t Wb = (d.Q - 1) * d.sw + (d.S - 1) * d.dw + 1;
  const int64_t hb = (d.P - 1) * d.sh + (d.R - 1) * d.dh + 1, plane = d.C * hb * Wb;
  const int threads = max_threads();
  const ImagePlan ip = plan_images(d, plane, threads, d.N);
  const auto bufs = alloc_uninit<float>(mul_sat(threads, ip.imgs * plane),
                                        "conv2d (direct): input buffers");
  const auto offs = alloc_uninit<int64_t>(mul_sat(threads, taps), "conv2d (direct): tap offsets");
#pragma omp parallel num_threads(threads) if (d.parallel)
  {
    float* buf = bufs.get() + thread_id() * ip.imgs * plane;
    int64_t* off = offs.get() + thread_id() * taps;
    tap_offsets(off, taps, d, hb, Wb);
    alignas(64) float res[kMaxRR1<V> * kLanes<V>];
    int64_t ready = 0;  // image slots of buf whose zeros are in place (fill_buffer)
    // As correlate's items: taken as threads come free.
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < ip.items; ++i) {
      const int64_t gi = i / ip.per_group, n0 = ip.n0(i), m = ip.count(i);
      for (int64_t k = 0; k < m; ++k) {
        fill_buffer(buf + k * plane, src + ((n0 + k) * d.groups + gi) * d.C * d.H * d.W, d,
                    -d.oh, hb, Wb, k < ready);
      }
      ready = std::max(ready, m);
      const ItemPart<V> part{&d, &rt, buf, off, wpack};
      correlate_rows_item<V>(out, &part, 1, Wb, plane, bpack, gi, n0, m, res);
    }
  }
}

// Output rows [p0, p1) of image n, group gi: the tiles of every channel block of one
// correlation, or of the two column phases of a stride-2 input gradient (pair_columns), tile by
// tile, their results interleaved on the way out. res holds nparts tiles' results.
template <typename V>
void correlate_item(float* out, const ItemPart<V>* parts, int nparts, int64_t Wb,
                    const float* bpack, int64_t n, int64_t gi, int64_t p0, int64_t p1,
                    float* res) {
  constexpr int64_t L = kLanes<V>;
  const Corr& d = *parts[0].d;
  const int64_t KB = ceil_div(d.K, L), yc = d.plane(), yr = d.row(), yq = d.ycol;
  const int64_t nt = parts[0].rt->nt;
  float* y = out + (n * d.groups + gi) * d.K * yc;
  PartTiles<V> pt(parts, nparts, res);
  Tile* t = pt.t;
  for (int64_t kb = 0; kb < KB; kb += 2) {
    const int64_t J = std::min<int64_t>(2, KB - kb);
    pt.blocks(parts, bpack, gi, KB, kb);
    for (int64_t p = p0; p < p1; ++p) {
      for (int i = 0; i < nparts; ++i) inside_rows(t[i], *parts[i].d, p);
      for (int64_t tt = 0; tt < nt; ++tt) {
        const int64_t q0 = tt * d.Q / nt, RR = (tt + 1) * d.Q / nt - q0;
        for (int i = 0; i < nparts; ++i) {
          const Corr& di = *parts[i].d;
          t[i].x = t[i].xg[0] = parts[i].rows + (p - p0) * di.sh * Wb + q0 * di.sw;
          const int64_t el = std::max<int64_t>(0, di.ow - q0 * di.sw);
          const int64_t er = std::max<int64_t>(
              0, (q0 + RR - 1) * di.sw + (di.S - 1) * di.dw + 1 - di.ow - di.W);
          const TileFn edge = parts[i].rt->pick.edge(RR, J, el, er);
          (edge ? edge : parts[i].rt->pick(1, RR, J, di.sw))(t[i]);
        }
        for (int64_t j = 0; j < J; ++j) {
          const int64_t k1 = std::min(L, d.K - (kb + j) * L);
          pt.store(y + (kb + j) * L * yc + p * yr + q0 * yq, yc, j * L, RR, J * L, k1, yq);
        }
      }
    }
  }
}

template <typename V>
void correlate(float* out, const float* src, const float* wpack, const float* bpack,
               const Corr& d) {
  constexpr int64_t L = kLanes<V>;
  const RowTiles<V> rt = row_tiles<V>(d);
  if (rt.G >= 2) return correlate_rows<V>(out, src, wpack, bpack, d, rt);
  const int threads = max_threads();
  const RowPlan b = plan_rows(d, threads);
  const int64_t ws = b.workspace, items = b.items, Wb = b.Wb, taps = d.C * d.R * d.S;
  const auto bufs = alloc_uninit<float>(mul_sat(threads, ws), "conv2d (direct): input buffers");
  const auto offs = alloc_uninit<int64_t>(mul_sat(threads, taps), "conv2d (direct): tap offsets");
#pragma omp parallel num_threads(threads) if (d.parallel)
  {
    float* buf = bufs.get() + thread_id() * ws;
    int64_t* off = offs.get() + thread_id() * taps;
    int64_t off_hb = -1;  // the hb off was computed for
    Filled filled;
    alignas(64) float res[kMaxRR1<V> * L];
    // Items taken as threads come free: an item's outputs are its own whoever computes them,
    // and on a shared machine a static split waited for the thread that was slowed (AlexNet's
    // conv1 in the standard bench: 1.35-1.69x PyTorch's time static, 1.16-1.31x so).
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < items; ++i) {
      const Item it = load_item(i, b, buf, src, d, filled);
      // Only an item with fewer rows than the others (the last block) has a different hb.
      if (it.hb != off_hb) tap_offsets(off, taps, d, it.hb, Wb), off_hb = it.hb;
      const ItemPart<V> part{&d, &rt, buf, off, wpack};
      correlate_item<V>(out, &part, 1, Wb, bpack, it.n, it.gi, it.p0, it.p1, res);
    }
  }
}

// Packed bias lanes of every group's channel blocks: bias[gi * K + k], zero past K or without
// one.
template <typename V>
std::unique_ptr<float[]> pack_bias(const float* bias, const Corr& d) {
  constexpr int64_t L = kLanes<V>;
  const int64_t KB = ceil_div(d.K, L);
  auto bpack = alloc_uninit<float>(d.groups * KB * L, "conv2d (direct): packed bias");
  for (int64_t gi = 0; gi < d.groups; ++gi) {
    for (int64_t k = 0; k < KB * L; ++k) {
      bpack[gi * KB * L + k] = bias && k < d.K ? bias[gi * d.K + k] : 0.0f;
    }
  }
  return bpack;
}

// One phase of a strided input gradient (conv2d_direct_backward_data): a correlation of dy at
// stride 1, written to its own pixels of dx from out on.
struct Phase {
  Corr d;
  WeightMap m;
  float* out;
};

// The padded frame of dy the phases of an image share: dy pixel (h, w) at (h + oh, w + ow), hb
// rows of Wb, where oh and ow are the most any phase pads on its top and left. A phase's own
// frame (its correlation's d.oh, d.ow) starts shift(d) floats into it.
struct SharedFrame {
  int64_t oh = 0, ow = 0, hb = 0, Wb = 0;
  int64_t shift(const Corr& d) const { return (oh - d.oh) * Wb + (ow - d.ow); }
};

SharedFrame shared_frame(const std::vector<Phase>& phases) {
  SharedFrame f;
  for (const Phase& ph : phases) f.oh = std::max(f.oh, ph.d.oh), f.ow = std::max(f.ow, ph.d.ow);
  for (const Phase& ph : phases) {
    f.hb = std::max(f.hb, f.oh - ph.d.oh + ph.d.P + ph.d.R - 1);
    f.Wb = std::max(f.Wb, f.ow - ph.d.ow + ph.d.Q + ph.d.S - 1);
  }
  return f;
}

// Whether the phases run image by image from shared frames (correlate_phases): a frame fits
// the buffer budget and the images alone keep every thread busy. Run one after another instead,
// each phase filled its own copy of dy and stored into every sh * sw-th pixel of all of dx,
// which was in L2 for none of them.
bool phases_share_frame(const std::vector<Phase>& phases, const SharedFrame& f, int threads) {
  const Corr& d = phases.front().d;
  return d.N * d.groups >= threads && mul_sat(d.C * f.hb * f.Wb, sizeof(float)) <= kBufBytes;
}

// Whether phases a and b are the two column phases of one row phase at column stride 2 whose
// tiles cut their rows alike: correlate_item and correlate_rows_item then store their pixels
// interleaved.
template <typename V>
bool pair_columns(const Phase& a, const Phase& b, const RowTiles<V>& ra, const RowTiles<V>& rb) {
  return a.d.ycol == 2 && b.out == a.out + 1 && a.d.P == b.d.P && a.d.Q == b.d.Q &&
         ra.G == rb.G && ra.nt == rb.nt;
}

// The phases of each item's images in turn from one fill of their shared frames (items as
// correlate_rows's, plan_images): the images' dx stays in L2 while its phases write their
// pixels. Each output sums the taps it sums when its phase runs alone (correlate), in the same
// order, from a buffer holding the same values.
template <typename V>
void correlate_phases(const std::vector<Phase>& phases, const float* src, const SharedFrame& f) {
  const Corr& d = phases.front().d;
  const int64_t nph = int64_t(phases.size());
  std::vector<std::unique_ptr<float[]>> wpacks;
  std::vector<RowTiles<V>> rts;
  std::vector<int64_t> first(nph + 1, 0);  // phase i's tap offsets: [first[i], first[i + 1])
  bool rows = false;                       // whether a phase takes tiles of several rows
  for (int64_t i = 0; i < nph; ++i) {
    wpacks.push_back(pack_weights<V>(phases[i].d, phases[i].m));
    rts.push_back(row_tiles<V>(phases[i].d));
    first[i + 1] = first[i] + d.C * phases[i].d.R * phases[i].d.S;
    rows = rows || rts.back().G >= 2;
  }
  const auto bpack = pack_bias<V>(nullptr, d);
  const int threads = max_threads();
  const int64_t plane = d.C * f.hb * f.Wb;
  // One image per item unless a phase's tiles take rows of several images.
  const ImagePlan ip = plan_images(d, plane, threads, rows ? d.N : 1);
  const auto bufs = alloc_uninit<float>(mul_sat(threads, ip.imgs * plane),
                                        "conv2d (direct): input buffers");
  const auto offs = alloc_uninit<int64_t>(mul_sat(threads, first[nph]),
                                          "conv2d (direct): tap offsets");
  Corr fd = d;  // the shared frame's fill
  fd.ow = f.ow;
#pragma omp parallel num_threads(threads) if (d.parallel)
  {
    float* buf = bufs.get() + thread_id() * ip.imgs * plane;
    int64_t* off = offs.get() + thread_id() * first[nph];
    for (int64_t i = 0; i < nph; ++i) {
      tap_offsets(off + first[i], first[i + 1] - first[i], phases[i].d, f.hb, f.Wb);
    }
    int64_t ready = 0;  // image slots of buf whose zeros are in place (fill_buffer)
    alignas(64) float res[2 * kMaxRR1<V> * kLanes<V>];
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < ip.items; ++item) {
      const int64_t gi = item / ip.per_group, n0 = ip.n0(item), m = ip.count(item);
      for (int64_t k = 0; k < m; ++k) {
        fill_buffer(buf + k * plane, src + ((n0 + k) * d.groups + gi) * d.C * d.H * d.W, fd,
                    -f.oh, f.hb, f.Wb, k < ready);
      }
      ready = std::max(ready, m);
      for (int64_t i = 0; i < nph;) {
        const int np = i + 1 < nph && pair_columns(phases[i], phases[i + 1], rts[i], rts[i + 1])
                           ? 2 : 1;
        ItemPart<V> parts[2];
        for (int k = 0; k < np; ++k) {
          const Corr& pd = phases[i + k].d;
          parts[k] = {&pd, &rts[i + k], buf + f.shift(pd), off + first[i + k],
                      wpacks[i + k].get()};
        }
        if (rts[i].G >= 2) {
          correlate_rows_item<V>(phases[i].out, parts, np, f.Wb, plane, bpack.get(), gi, n0, m,
                                 res);
        } else {
          for (int64_t k = 0; k < m; ++k) {
            correlate_item<V>(phases[i].out, parts, np, f.Wb, bpack.get(), n0 + k, gi, 0,
                              phases[i].d.P, res);
            for (int j = 0; j < np; ++j) parts[j].rows += plane;
          }
        }
        i += np;
      }
    }
  }
}

template <typename V>
void run_corr(float* out, const float* src, const float* bias, const Corr& d, const WeightMap& m) {
  const auto wpack = pack_weights<V>(d, m);
  correlate<V>(out, src, wpack.get(), pack_bias<V>(bias, d).get(), d);
}

// The outputs [first, second) along one axis (out of them) whose window position t reads inside
// a source of n: i * st + t * dl - pad in [0, n).
std::pair<int64_t, int64_t> outputs_inside(int64_t t, int64_t st, int64_t dl, int64_t pad,
                                           int64_t n, int64_t out) {
  const int64_t lo = pad - t * dl, hi = n - 1 + pad - t * dl;  // lo <= i * st <= hi
  if (hi < 0) return {0, 0};
  return {std::min(out, lo <= 0 ? 0 : ceil_div(lo, st)), std::min(out, hi / st + 1)};
}

// A weight-gradient tile's taps, [u0, u0 + taps) of its plan's order, and the output pixels
// [p0, p1) x [q0, q1) where one of them reads inside the source (none: p0 >= p1).
struct GradRun {
  int64_t u0, taps, p0, p1, q0, q1;
};

// The taps in the order of the packed sums, and the runs of tiles over them: `pairs` for tiles
// of two blocks (or one), `threes` for an odd block count's last three.
struct GradPlan {
  std::vector<int64_t> channel;  // each tap's c
  std::vector<int64_t> within;   // its offset within a channel's buffer rows of Wb
  std::vector<int32_t> r, s;
  std::vector<int64_t> at;  // where each flattened (c, r, s) is in the order
  std::vector<GradRun> pairs, threes;

  void reserve(int64_t n) {
    channel.reserve(n), within.reserve(n), r.reserve(n), s.reserve(n);
    at.resize(n);
  }
  void add(const Corr& d, int64_t c, int64_t r1, int64_t s1, int64_t Wb) {
    at[(c * d.R + r1) * d.S + s1] = int64_t(channel.size());
    channel.push_back(c);
    within.push_back(r1 * d.dh * Wb + s1 * d.dw);
    r.push_back(int32_t(r1)), s.push_back(int32_t(s1));
  }
};

// Taps of a kernel up to which the weight gradient's tiles may take them in (r, s, c) order.
// Runs of 14 channels at one (r, s) read 14 planes where runs of the flattened (c, r, s) read one
// or two: with 2304 taps (ResNet-18's 256 -> 512 stride-2 layer at 7x7, whole planes of several
// images an item) that cost more than the 30 % of products it left out at batch 4 and 16
// (1.0-1.12x the time on two threads). Up to 1600 it paid: fashion_cnn conv2 and Inception's
// 16 -> 32 5x5 (400 taps) 0.91x and 0.97x, AlexNet's conv2 (1600) 0.93x, ResNet-18's stride-2
// 3x3 layers of 576 and 1152 taps 0.95-1.0x.
constexpr int64_t kReorderTaps = 2048;

// Tiles that leave out products with padding. The flattened (c, r, s) in runs of up to T taps
// (each run's pixels those where one of its taps reads the source) or, for kernels of up to
// kReorderTaps taps, the taps in (r, s, c) order cut evenly as one sequence, per kernel row or
// per (r, s): the order and cut with the fewest estimated cycles for tiles of two blocks
// (pixels times taps + 2, the dy loads) win, the first on a tie; tiles of three blocks take the
// same order, their own cut (none where three_taps is 0). fashion_cnn conv2 (5x5 at padding 2
// on 14x14, 16 % of its products with padding) takes its taps per kernel row. Larger kernels
// may take (r, c, s) order cut per kernel row instead of the flattened one: a run of 14 taps
// reads five channels, not 14, and leaves out the padding's rows (not its columns). Two
// threads, ResNet-18's 256 -> 512 stride-2 layer at 7x7 (2304 taps, 17 % of products in the
// padding's rows): batch 64 5.72 -> 5.12 ms, 16 1.54 -> 1.42, 4 0.533 -> 0.507; at 14x14 batch
// 16 4.42 -> 4.33; 128 -> 192 5x5 at 14x14 (3200 taps), batch 32, 15.7 -> 14.4 (minimums).
GradPlan plan_grad_runs(const Corr& d, int64_t Wb, int64_t pair_taps, int64_t three_taps) {
  const int64_t RS = d.R * d.S, CRS = d.C * RS;
  std::vector<std::pair<int64_t, int64_t>> rows(d.R), cols(d.S);
  for (int64_t r = 0; r < d.R; ++r) rows[r] = outputs_inside(r, d.sh, d.dh, d.oh, d.H, d.P);
  for (int64_t s = 0; s < d.S; ++s) cols[s] = outputs_inside(s, d.sw, d.dw, d.ow, d.W, d.Q);
  // Built in nested loops and the runs in order without a sort: the divisions of either took
  // 56 us of ResNet-18's 256 -> 512 stride-2 weight gradient at batch 1 (0.3 ms a call).
  GradPlan flat, reordered, by_rows;
  flat.reserve(CRS);
  for (int64_t c = 0; c < d.C; ++c) {
    for (int64_t r = 0; r < d.R; ++r) {
      for (int64_t s = 0; s < d.S; ++s) flat.add(d, c, r, s, Wb);
    }
  }
  if (CRS <= kReorderTaps) reordered.reserve(CRS);
  for (int64_t rs = 0; CRS <= kReorderTaps && rs < RS; ++rs) {
    for (int64_t c = 0; c < d.C; ++c) reordered.add(d, c, rs / d.S, rs % d.S, Wb);
  }
  // The runs of T taps of o cut into segments of seg taps (even: as evenly as ceil(seg / T)
  // runs allow, else T at a time), and their estimated cost. Runs at the same place of their
  // segments follow each other: they read the same channels (the next kernel row or column of
  // them), still in L1.
  const auto cut = [&](const GradPlan& o, int64_t T, int64_t seg, bool even) {
    std::pair<std::vector<GradRun>, int64_t> res{{}, 0};
    const int64_t k = ceil_div(seg, T);
    res.first.reserve(k * (CRS / seg));
    for (int64_t i = 0; i < k; ++i) {
      for (int64_t s0 = 0; s0 < CRS; s0 += seg) {
        const int64_t u0 = s0 + (even ? seg * i / k : i * T);
        const int64_t u1 = s0 + (even ? seg * (i + 1) / k : std::min(seg, (i + 1) * T));
        GradRun g{u0, u1 - u0, d.P, 0, d.Q, 0};
        for (int64_t u = u0; u < u1; ++u) {
          const auto [pa, pb] = rows[o.r[u]];
          const auto [qa, qb] = cols[o.s[u]];
          if (pa >= pb || qa >= qb) continue;
          g.p0 = std::min(g.p0, pa), g.p1 = std::max(g.p1, pb);
          g.q0 = std::min(g.q0, qa), g.q1 = std::max(g.q1, qb);
        }
        if (g.p0 < g.p1) res.second += (g.p1 - g.p0) * (g.q1 - g.q0) * (g.taps + 2);
        res.first.push_back(g);
      }
    }
    return res;
  };
  // The reordered taps' cheapest cut for tiles of T taps.
  const auto best_cut = [&](int64_t T) {
    std::pair<std::vector<GradRun>, int64_t> best{{}, -1};
    for (const int64_t seg : {CRS, d.C * d.S, d.C}) {
      auto c = cut(reordered, T, seg, true);
      if (best.second < 0 || c.second < best.second) best = std::move(c);
    }
    return best;
  };
  auto [runs, cost] = cut(flat, pair_taps, CRS, false);
  if (CRS > kReorderTaps && d.R > 1) {
    by_rows.reserve(CRS);
    for (int64_t r = 0; r < d.R; ++r) {
      for (int64_t c = 0; c < d.C; ++c) {
        for (int64_t s = 0; s < d.S; ++s) by_rows.add(d, c, r, s, Wb);
      }
    }
    auto re = cut(by_rows, pair_taps, d.C * d.S, true);
    if (re.second < cost) {
      by_rows.pairs = std::move(re.first);
      if (three_taps) by_rows.threes = cut(by_rows, three_taps, d.C * d.S, true).first;
      return by_rows;
    }
  }
  if (!reordered.channel.empty()) {
    auto re = best_cut(pair_taps);
    if (re.second < cost) {
      reordered.pairs = std::move(re.first);
      if (three_taps) reordered.threes = best_cut(three_taps).first;
      return reordered;
    }
  }
  flat.pairs = std::move(runs);
  if (three_taps) flat.threes = cut(flat, three_taps, CRS, false).first;
  return flat;
}

// Images per weight-gradient item when a whole plane fits the buffer: enough output pixels
// that a tile's sums, loaded and stored once per item, cost little beside its multiply-adds
// (ResNet-18's 256 -> 512 stride-2 layer at 7x7: 16 pixels a plane, 28 sums in and out per 448
// multiply-adds; at batch 64 on two threads items of one image took 9.35 ms, of up to 8 6.85).
constexpr int64_t kGradPixels = 128;

// Output pixels of a batch up to which the weight gradient is split by channels.
constexpr int64_t kSplitPixels = 512;

// dweight[gi*K + k, c, r, s] += the sum over images and output pixels of
// dy[n, gi*K + k, p, q] * src[n, gi*C + c, p*sh + r*dh - oh, q*sw + s*dw - ow], for the forward
// correlation d. Items are blocks of output rows of an image (plan_rows) or, for planes of
// fewer than kGradPixels pixels, whole planes of several images (plan_images). With pairs of
// channel blocks enough for two per thread and at most kSplitPixels output pixels in all, part
// t (as many parts as threads, cut the same whoever runs them) takes every item for its own
// pairs, into one packed copy; else its share of the items for every pair, into a packed copy
// of its own, the copies then added in a fixed order. Split by channels, every thread fills
// every item's buffer, but no copy is added: a few pixels gain (two threads, ResNet-18's
// 512 x 512 3x3 at 4x4, 9.4 MB a copy: batch 1 1.57 -> 0.70 ms, batch 4 1.96 -> 1.27; its
// 256 -> 512 stride-2 layer at 7x7 batch 4 0.75 -> 0.61), where from 784 pixels the fills
// cost more than the copies (1.02-1.06x the time). Where items hold whole planes, dbias (unless
// null) gets the bias gradient too, each plane's run_sum taken beside its transposition and
// added per channel in image order, channel_sums's bits (conv.cpp); returns whether it did.
template <typename V>
bool correlate_weight_grad(float* dweight, float* dbias, const float* dout, const float* src,
                           const Corr& d) {
  constexpr int64_t L = kLanes<V>;
  const int64_t KB = ceil_div(d.K, L), RS = d.R * d.S, CRS = d.C * RS, ldy = KB * L;
  const int64_t block = CRS * L, wsize = d.groups * KB * block, PQ = d.P * d.Q;
  const int threads = max_threads();
  const int64_t pairs = ceil_div(KB, 2);
  const bool by_channels = pairs >= 2 * threads && d.N * PQ <= kSplitPixels;
  const int plan_threads = by_channels ? 1 : threads;  // the items' plan, the parts aside
  const RowPlan b = plan_rows(d, plan_threads);
  const int64_t hb = b.buffer_rows(d.P, d), plane = d.C * hb * b.Wb;
  const bool whole = b.rows == d.P && PQ < kGradPixels;
  const ImagePlan ip = plan_images(d, plane + PQ * ldy, plan_threads,
                                   whole ? ceil_div(kGradPixels, PQ) : 1);
  const int64_t items = whole ? ip.items : b.items, Wb = b.Wb;
  const int64_t ws = whole ? ip.imgs * plane : b.workspace;
  const int64_t dws = (whole ? ip.imgs * d.P : b.rows) * d.Q * ldy;
  const bool bias = dbias && b.rows == d.P;  // items of whole planes (whole or one image)
  auto plane_sums = alloc_vector<double>(bias ? d.N * d.groups * d.K : 0,
                                         "conv2d_backward_cpu (grad_bias, direct): sums");
  const int copies = by_channels ? 1 : threads;
  const auto sums = alloc_uninit<float>(mul_sat(copies, wsize),
                                        "conv2d_backward_cpu (grad_weight, direct): part sums");
  const auto bufs = alloc_uninit<float>(mul_sat(threads, ws + dws),
                                        "conv2d_backward_cpu (grad_weight, direct): buffers");
  // The rows of a last channel block past K (its lanes zero).
  const auto zeros = alloc_vector<float>(d.K % L ? std::max(b.rows * d.Q, PQ) : 0,
                                         "conv2d_backward_cpu (grad_weight, direct): buffers");
  // An odd block count's last three blocks (kb3 below) take tiles of their own.
  const GradPlan plan =
      plan_grad_runs(d, Wb, kMaxTaps<V>, KB >= 3 && KB % 2 ? grad_taps<V>(3) : 0);
#pragma omp parallel num_threads(threads) if (d.parallel)
  {
    float* buf = bufs.get() + thread_id() * (ws + dws);
    float* dyt = buf + ws;
    int64_t off[kMaxTaps<V>];
    Filled filled;
    int64_t ready = 0;  // image slots of buf whose zeros are in place (fill_buffer)
#pragma omp for schedule(static)
    for (int part = 0; part < threads; ++part) {
      // Items [i0, i1), channel blocks [kb0, kb1) of each group, into sum.
      int64_t i0 = 0, i1 = items, kb0 = 0, kb1 = KB;
      float* sum = sums.get();
      if (by_channels) {
        kb0 = 2 * part_begin(pairs, threads, part);
        kb1 = std::min(KB, 2 * part_begin(pairs, threads, part + 1));
      } else {
        i0 = part_begin(items, threads, part), i1 = part_begin(items, threads, part + 1);
        sum += part * wsize;
      }
      for (int64_t gi = 0; gi < d.groups; ++gi) {
        std::fill(sum + (gi * KB + kb0) * block, sum + (gi * KB + kb1) * block, 0.0f);
      }
      for (int64_t i = i0; i < i1; ++i) {
        // Images [n0, n0 + m) of group gi, output rows [p0, p0 + rows), the buffer hb rows.
        int64_t n0, m, gi, p0, rows, item_hb;
        if (whole) {
          gi = i / ip.per_group, n0 = ip.n0(i), m = ip.count(i), p0 = 0, rows = d.P;
          item_hb = hb;
          for (int64_t k = 0; k < m; ++k) {
            fill_buffer(buf + k * plane, src + ((n0 + k) * d.groups + gi) * d.C * d.H * d.W,
                        d, -d.oh, hb, Wb, k < ready);
          }
          ready = std::max(ready, m);
        } else {
          const Item it = load_item(i, b, buf, src, d, filled);
          n0 = it.n, m = 1, gi = it.gi, p0 = it.p0, rows = it.p1 - it.p0, item_hb = it.hb;
        }
        // dy pixel-major: L channels by L pixels at a time through registers (a scalar
        // transposition, each store to another line, took a tenth of fashion_cnn conv2's
        // weight gradient), each image's last E % L pixels one by one.
        const int64_t E = rows * d.Q;
        run_for<V>([&] {
          for (int64_t k = 0; k < m; ++k) {
            const float* dy = dout + ((n0 + k) * d.groups + gi) * d.K * PQ + p0 * d.Q;
            for (int64_t kb = kb0; kb < kb1; ++kb) {
              const float* ch[L];
              for (int64_t l = 0; l < L; ++l) {
                ch[l] = kb * L + l < d.K ? dy + (kb * L + l) * PQ : zeros.data();
                if (bias && kb * L + l < d.K) {
                  plane_sums[((n0 + k) * d.groups + gi) * d.K + kb * L + l] = run_sum(ch[l], PQ);
                }
              }
              float* to = dyt + k * E * ldy + kb * L;
              int64_t e = 0;
              for (; e + L <= E; e += L) transpose_block<V>(ch, e, to + e * ldy, ldy);
              for (; e < E; ++e) {
                for (int64_t l = 0; l < L; ++l) to[e * ldy + l] = ch[l][e];
              }
            }
          }
        });
        GradTile t{buf, off, nullptr, nullptr, m, plane, rows, d.Q, Wb, d.sh, d.sw, 0, 0, 0, 0,
                   ldy, block};
        // Whether run g has pixels in this item's rows; if so, its offsets and pixels into t.
        const auto place = [&](const GradRun& g) {
          t.p0 = std::max(g.p0, p0) - p0, t.p1 = std::min(g.p1, p0 + rows) - p0;
          if (t.p0 >= t.p1) return false;
          t.q0 = g.q0, t.q1 = g.q1;
          for (int64_t u = g.u0; u < g.u0 + g.taps; ++u) {
            off[u - g.u0] = plan.channel[u] * item_hb * Wb + plan.within[u];
          }
          return true;
        };
        // Each run of taps for every pair of blocks in turn (the run's input pixels stay in
        // L1), then an odd count's last three blocks in runs of their own.
        const int64_t kb3 = kb1 - kb0 >= 3 && (kb1 - kb0) % 2 ? kb1 - 3 : kb1;
        for (const GradRun& g : plan.pairs) {
          if (!place(g)) continue;
          for (int64_t kb = kb0; kb < kb3; kb += 2) {
            t.dy = dyt + kb * L;
            t.sum = sum + (gi * KB + kb) * block + g.u0 * L;
            pick_grad_tile<V>(g.taps, std::min<int64_t>(2, kb3 - kb))(t);
          }
        }
        for (const GradRun& g : plan.threes) {
          if (kb3 == kb1) break;  // no three blocks in this part
          if (!place(g)) continue;
          t.dy = dyt + kb3 * L;
          t.sum = sum + (gi * KB + kb3) * block + g.u0 * L;
          pick_grad_tile<V>(g.taps, 3)(t);
        }
      }
    }
  }
  // A block of L output channels by L taps at a time: dweight's rows and the parts' lanes
  // meet in registers (transposed, summed in the scalar order, transposed back), where one
  // element per cache line read made ResNet-18's 256 -> 512 stride-2 weight gradient at batch 16
  // (4.7 MB a part, two threads) take 2.82 ms, not 1.88.
#pragma omp parallel for schedule(static) num_threads(threads) if (d.parallel)
  for (int64_t gkb = 0; gkb < d.groups * KB; ++gkb) {
    const int64_t gi = gkb / KB, kb = gkb % KB, lanes = std::min(L, d.K - kb * L);
    const float* part = sums.get() + gkb * block;
    float* dw = dweight + (gi * d.K + kb * L) * CRS;
    const int64_t* at = plan.at.data();  // a local: the copies below may alias the vector
    int64_t u0 = 0;
    run_for<V>([&] {
      for (; u0 + L <= CRS; u0 += L) {
        V r[L];
        for (int64_t l = 0; l < L; ++l) {
          r[l] = V{};
          if (l < lanes) std::memcpy(&r[l], dw + l * CRS + u0, sizeof(V));
        }
        transpose_rounds<V>(r);
        for (int p = 0; p < copies; ++p) {
          for (int64_t i = 0; i < L; ++i) {
            V v;
            std::memcpy(&v, part + p * wsize + at[u0 + i] * L, sizeof(V));
            r[i] += v;
          }
        }
        transpose_rounds<V>(r);
        for (int64_t l = 0; l < lanes; ++l) std::memcpy(dw + l * CRS + u0, &r[l], sizeof(V));
      }
    });
    for (int64_t l = 0; l < lanes; ++l) {
      for (int64_t u = u0; u < CRS; ++u) {
        float s = dw[l * CRS + u];
        for (int p = 0; p < copies; ++p) s += part[p * wsize + at[u] * L + l];
        dw[l * CRS + u] = s;
      }
    }
  }
  if (bias) {
    for (int64_t c = 0; c < d.groups * d.K; ++c) {
      double t = 0;
      for (int64_t n = 0; n < d.N; ++n) t += plane_sums[n * d.groups * d.K + c];
      dbias[c] += float(t);
    }
  }
  return bias;
}

// Whether a correlation of these channel counts fills the tiles well enough to beat the GEMM:
// fewer than 8 output channels waste most of an AVX-512 vector, and a short (c, r, s) walk
// leaves the tile's loads and stores uncovered. The same for AVX2, so that the two variants
// take the same path and give the same bits.
bool worth_direct(int64_t C, int64_t K, int64_t RS) { return K >= 8 && C * RS >= 32; }

// Whether the BLAS runs narrower kernels than the tiles: AVX-512 tiles against OpenBLAS on a
// core without AVX-512 (as OPENBLAS_CORETYPE=Haswell makes it).
bool narrower_blas() { return cpu_isa() == CpuIsa::avx512 && !blas::avx512_kernels(); }

// Whether packing the weights costs more than the tiles save: a wide layer's weights (512 x
// 512 x 3x3: 9.4 MB) are packed through memory, where the GEMM reads them in place, and a
// batch of a few small planes (ResNet's last stage at batch 1 to 4: 16 to 64 output pixels)
// gives the packed copy too little use. Measured on 2 cores: the GEMM path 1.2 ms against
// 1.8 ms at batch 1, even at batch 4; from 96 pixels the tiles win.
bool packing_outweighs(int64_t N, int64_t PQ, int64_t K, int64_t C, int64_t RS) {
  return N * PQ < 96 && K * C * RS * int64_t(sizeof(float)) > (int64_t(2) << 20);
}

template <typename V>
struct Lanes {
  using type = V;
};

// f(Lanes<V>{}) with V the vector of the CPU variant in use (the caller has checked that one
// applies).
template <typename F>
void dispatch(const F& f) {
  if (cpu_isa() == CpuIsa::avx512) {
    f(Lanes<V16>{});
  } else {
    f(Lanes<V8>{});
  }
}

}  // namespace

bool conv2d_direct_applies(ConvPass pass, const Conv2dGeom& g) {
  if (cpu_isa() != CpuIsa::avx512 && cpu_isa() != CpuIsa::avx2) return false;
  const int64_t C = g.Cg(), K = g.Kg(), RS = g.RS();
  if (g.direct_1x1()) {
    // A 1x1 layer is one GEMM per image reading the input in place (conv.cpp). A BLAS on
    // kernels as wide as the variant's runs it as fast as the tiles or faster (OpenBLAS's
    // SkylakeX kernels on Zen 5, 1024 -> 256 at 14x14, batch 16, two threads: 4.24, 4.02 and
    // 4.40 ms forward, input and weight gradient, the tiles 4.24, 4.68 and 6.39); on narrower
    // ones under AVX-512 it does not (OpenBLAS's Haswell kernels, as OPENBLAS_CORETYPE=Haswell
    // makes them there: 7.23, 7.31 and 7.36 ms; ResNet's 256 -> 64 at 56x56 8.3, 10.4 and
    // 8.9 against the tiles' 5.7, 8.0 and 6.5, Inception's 240 -> 96 at 14x14 1.3-1.6x too).
    if (!narrower_blas() || g.PQ() == 0) return false;
    switch (pass) {
      case ConvPass::forward:
        return worth_direct(C, K, 1) && !packing_outweighs(g.N * g.groups, g.PQ(), K, C, 1);
      case ConvPass::grad_input:
        return worth_direct(K, C, 1) && !packing_outweighs(g.N * g.groups, g.HW(), C, K, 1);
      case ConvPass::grad_weight:
        return g.PQ() >= 16 && K * C <= 3 * (int64_t(1) << 18) && K >= 6 && C >= 16;
    }
    return false;
  }
  switch (pass) {
    case ConvPass::forward:
      return g.PQ() > 0 && worth_direct(C, K, RS) &&
             !packing_outweighs(g.N * g.groups, g.PQ(), K, C, RS);
    case ConvPass::grad_input: {
      // The correlation walks every kernel tap for every input pixel, where the GEMM path
      // computes only the products of real dy pixels: when padding makes dy much smaller than
      // x (LeNet's C5: 1x1 from 5x5), most of the walk multiplies zeros. A strided layer's
      // phases walk a tap in sh * sw each, for the input pixels of their phase.
      const int64_t phases = g.stride_h * g.stride_w;
      return (phases == 1 || (g.dil_h == 1 && g.dil_w == 1)) && RS > 1 && g.HW() > 0 &&
             4 * g.HW() <= 5 * g.PQ() * phases && worth_direct(K, C, ceil_div(RS, phases)) &&
             !packing_outweighs(g.N * g.groups, g.HW(), C, K, RS);
    }
    case ConvPass::grad_weight:
      // A tile sums over an item's output pixels, so a handful of them leaves it all overhead.
      // Each thread sums into its own packed copy of the weight gradient, which stops paying
      // once it outgrows L2 by half: at 2.25 MiB (ResNet-18's 256 x 256 x 3x3) the tiles ran
      // 0.92x the GEMM's time, at 3.4 MiB (384 -> 256) 1.07x, at 9 MiB (512 x 512) 1.25x;
      // below that the per-image GEMM reduces over one plane and the tiles win (0.80x on
      // 128 x 128 x 3x3 at 14x14, 0.59x at stride 2 from 28x28). Unlike the correlations, a
      // short (c, r, s) walk costs the tiles little, and a first layer's GEMM (16 x 25 by 784)
      // runs far below BLAS's peak: one thread, batch 64, 1 -> 16 channels 5x5 0.53x, 3 -> 64
      // 3x3 0.52x, 1 -> 6 5x5 0.79x; under 6 output channels or 16 taps the GEMM is faster
      // (1 -> 4 3x3 1.30x, 1 -> 32 3x3 1.02x). Against a BLAS on narrower kernels than the
      // variant's the tiles take 9 taps too (OpenBLAS's Haswell kernels under AVX-512 on Zen 5,
      // two threads, batch 64 at 28x28: 1 -> 64 3x3 1.24 -> 0.77 ms, 1 -> 32 0.46 -> 0.24; with
      // its AVX-512 kernels 0.86 -> 0.82 and 0.26 -> 0.24, within the noise), and weight
      // gradients of up to 3 Mi weights (512 x 512 x 3x3): ResNet-18's 256 -> 512 stride-2
      // layer at 7x7, batch 64, 11.9 -> 6.8 ms (the batched GEMM), at 14x14, batch 16, 8.9 ->
      // 5.3 (im2col + GEMM).
      return g.PQ() >= 16 && K * C * RS <= (narrower_blas() ? 3 << 20 : 3 << 18) && K >= 6 &&
             C * RS >= (narrower_blas() ? 9 : 16);
  }
  return false;
}

void conv2d_direct_forward(float* out, const float* inp, const float* weight, const float* bias,
                           const Conv2dGeom& g, bool parallel) {
  const int64_t C = g.Cg(), K = g.Kg(), RS = g.RS();
  const Corr d{g.N, g.groups, C, K, g.H, g.W, g.P, g.Q, g.R, g.S, g.stride_h, g.stride_w,
               g.dil_h, g.dil_w, g.pad_t, g.pad_l, parallel};
  dispatch([&](auto v) {
    run_corr<typename decltype(v)::type>(out, inp, bias, d,
                                         WeightMap{weight, K * C * RS, C * RS, RS, g.S, 1});
  });
}

void conv2d_direct_backward_data(float* dinp, const float* dout, const float* weight,
                                 const Conv2dGeom& g, bool parallel) {
  // dx[c, h, w] = sum over (k, r, s) of dy[k, p, q] * W[k, c, r, s] where p*sh + r*dh - pt = h
  // (and so for w). At stride 1, with r' = R-1-r, the correlation of dy (offset (R-1)*dh - pt)
  // with the flipped kernel, dy's channels read and x's written.
  const int64_t Cg = g.Cg(), Kg = g.Kg(), RS = g.RS();
  const int64_t sh = g.stride_h, sw = g.stride_w;
  if (sh == 1 && sw == 1) {
    const Corr d{g.N, g.groups, Kg, Cg, g.P, g.Q, g.H, g.W, g.R, g.S, 1, 1, g.dil_h, g.dil_w,
                 (g.R - 1) * g.dil_h - g.pad_t, (g.S - 1) * g.dil_w - g.pad_l, parallel};
    dispatch([&](auto v) {
      // Output channel c of the correlation is x's, input channel k dy's: W[k, c, R-1-r, S-1-s].
      run_corr<typename decltype(v)::type>(
          dinp, dout, nullptr, d, WeightMap{weight + RS - 1, Kg * Cg * RS, RS, Cg * RS, -g.S, -1});
    });
    return;
  }
  // Strided (dilation 1, conv2d_direct_applies): phase (a, b), the pixels h = a + i*sh,
  // w = b + j*sw, takes the kernel rows r = r0 + m*sh with r0 = (a + pt) % sh, reading dy row
  // p = i + (a + pt) / sh - m, and the columns alike: a correlation of dy at stride 1 with
  // that sub-kernel flipped, written to its pixels of dx. The GEMM path reached two thirds of
  // the multiply-add rate on ResNet's 3x3 stride-2 layer (1152 x 196 x 256 per image) and
  // col2im added a tenth.
  std::vector<Phase> phases;
  for (int64_t a = 0; a < std::min(sh, g.H); ++a) {
    for (int64_t b = 0; b < std::min(sw, g.W); ++b) {
      const int64_t r0 = (a + g.pad_t) % sh, s0 = (b + g.pad_l) % sw;
      const int64_t Ra = r0 < g.R ? ceil_div(g.R - r0, sh) : 0;
      const int64_t Sb = s0 < g.S ? ceil_div(g.S - s0, sw) : 0;
      const int64_t Ha = ceil_div(g.H - a, sh), Wa = ceil_div(g.W - b, sw);
      float* x = dinp + a * g.W + b;
      if (Ra == 0 || Sb == 0) {  // no tap reaches this phase (a kernel narrower than the stride)
        for (int64_t i = 0; i < g.N * g.C; ++i) {
          for (int64_t h = 0; h < Ha; ++h) {
            for (int64_t w = 0; w < Wa; ++w) x[i * g.H * g.W + h * sh * g.W + w * sw] = 0.0f;
          }
        }
        continue;
      }
      Corr d{g.N, g.groups, Kg, Cg, g.P, g.Q, Ha, Wa, Ra, Sb, 1, 1, 1, 1,
             Ra - 1 - (a + g.pad_t) / sh, Sb - 1 - (b + g.pad_l) / sw, parallel};
      d.yc = g.H * g.W, d.yr = sh * g.W, d.ycol = sw;
      const WeightMap m{weight + (r0 + (Ra - 1) * sh) * g.S + s0 + (Sb - 1) * sw, Kg * Cg * RS,
                        RS, Cg * RS, -sh * g.S, -sw};
      phases.push_back({d, m, x});
    }
  }
  if (phases.empty()) return;
  dispatch([&](auto v) {
    using V = typename decltype(v)::type;
    const SharedFrame f = shared_frame(phases);
    if (phases_share_frame(phases, f, max_threads())) {
      correlate_phases<V>(phases, dout, f);
    } else {
      for (const Phase& ph : phases) run_corr<V>(ph.out, dout, nullptr, ph.d, ph.m);
    }
  });
}

bool conv2d_direct_backward_weight(float* dweight, float* dbias, const float* dout,
                                   const float* inp, const Conv2dGeom& g, bool parallel) {
  const Corr d{g.N, g.groups, g.Cg(), g.Kg(), g.H, g.W, g.P, g.Q, g.R, g.S, g.stride_h,
               g.stride_w, g.dil_h, g.dil_w, g.pad_t, g.pad_l, parallel};
  bool bias = false;
  dispatch([&](auto v) {
    bias = correlate_weight_grad<typename decltype(v)::type>(dweight, dbias, dout, inp, d);
  });
  return bias;
}

#else

bool conv2d_direct_applies(ConvPass, const Conv2dGeom&) { return false; }
// Never called: conv2d_direct_applies says no.
void conv2d_direct_forward(float*, const float*, const float*, const float*, const Conv2dGeom&,
                           bool) {}
void conv2d_direct_backward_data(float*, const float*, const float*, const Conv2dGeom&, bool) {}
bool conv2d_direct_backward_weight(float*, float*, const float*, const float*, const Conv2dGeom&,
                                   bool) {
  return false;
}

#endif

}  // namespace fc
