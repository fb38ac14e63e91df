// Winograd F(2x2, 3x3) convolution (conv_winograd.h), written for AVX-512 with intrinsics. The
// 2x2 output blocks sit in the vector lanes, 16 to a register: along a block row where the rows
// fill the lanes, so the input and output transforms read and write whole NCHW rows (masked at
// the plane's edges, which also stand for the padding), else 16 consecutive blocks of the batch
// gathered and scattered lane by lane. The GEMMs broadcast transformed weights. An AVX2 copy
// follows the weight gradient.
#include "cpu/conv_winograd.h"

#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>

#include "common.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/transpose.h"
#include "runtime.h"

namespace fc {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prfchw")))

namespace {

constexpr int64_t kLanes = 16;  // 2x2 output blocks per vector
constexpr int64_t kNV = 4;      // vectors per work item: the GEMM tile's width
constexpr int64_t kKR = 6;      // output channels per GEMM tile: 6 x 4 accumulators
// Output channels per pass over an item's 16 GEMMs: their sums (16 x 48 x 64 floats, 192 KiB)
// stay in L2 until the output transform reads them.
constexpr int64_t kKChunk = 8 * kKR;
// Input channels per pass of the GEMM tiles: their transformed blocks (64 channels x 64 blocks,
// 16 KiB a point) stay in L1 while a point's output channels are walked. With all of ResNet's
// 128 channels at once they ran from L2 and the 28x28 layer took 10.2 ms against the direct
// path's 11.2.
constexpr int64_t kCChunk = 64;
constexpr int64_t kXi = 16;  // points of the 4x4 transform
// Floats added to the buffers' strides that would be multiples of 4 KiB (an input channel's 16
// points of an item's 64 blocks, a point's 48 output channels): the reads along such a stride
// would all fall in one L1 set.
constexpr int64_t kSkew = 16;

// One correlation: output (p, q) of plane k sums src[c, p + r - oh, q + s - ow] * w(k, c, r, s)
// over c < C and the 3x3 taps, per group; source pixels outside the H x W plane are zeros.
struct Wcorr {
  int64_t N, groups, C, K;  // per group: C channels read, K written
  int64_t H, W, P, Q;       // source and output planes
  int64_t oh, ow;
  bool parallel;
};

// Where w(k, c, r, s) of group gi sits: w + gi * sg + k * sk + c * sc + (3 r + s) * srs
// (srs = -1 for a flipped kernel, w then at its last tap).
struct Wmap {
  const float* w;
  int64_t sg, sk, sc, srs;
};

int64_t blocks_of(int64_t n) { return (n + 1) / 2; }

// U = G g G^T for every (group, output, input channel), laid out for the GEMM tiles: point xi of
// w(kb * 6 + i, c) at u_offset(.., c0) + ((xi * KB + kb) * cn + c - c0) * 6 + i, for the chunk
// of channels c0 <= c < c0 + cn it falls in (kCChunk of them, fewer in the last), zero past K:
// a chunk's pass reads its part in one run.
int64_t u_offset(const Wcorr& d, int64_t gi, int64_t c0) {
  return (gi * d.C + c0) * kXi * ceil_div(d.K, kKR) * kKR;
}

// The 16 points of the kernels of output channels kb * 6 .. kb * 6 + 5 (zeros past K) and
// input channel c of group gi: the six channels in six lanes of double vectors. Each kernel's
// nine taps are consecutive floats (reversed when flipped): taps 0..7 are one load per kernel
// and a transposition, tap 8 one float each (nine 6-lane gathers per block took 37 % of
// ResNet's 512 x 512 4x4 forward on Zen 5). In double, rounded once: the only rounding the
// weights see is the float32 result's.
template <bool kFlipped>
FC_AVX512 __attribute__((always_inline)) inline void transform_block(float* u, const Wmap& m,
                                                                     const Wcorr& d, int64_t gi,
                                                                     int64_t kb, int64_t c) {
  const int64_t KB = ceil_div(d.K, kKR), c0 = c / kCChunk * kCChunk;
  const int64_t cn = std::min(kCChunk, d.C - c0), per_xi = KB * cn * kKR;
  const int64_t lanes = std::min(kKR, d.K - kb * kKR);
  const float* w = m.w + gi * m.sg + kb * kKR * m.sk + c * m.sc;
  // Taps 0..7 of kernel i start at w + i * sk (ascending) or end there (flipped).
  constexpr int64_t first = kFlipped ? -7 : 0, srs = kFlipped ? -1 : 1;
  // Then rows[j] holds tap j (7 - j when flipped) of the eight kernels, past six zeros.
  __m256 rows[8] = {};
  for (int64_t i = 0; i < kKR; ++i) {
    if (i < lanes) rows[i] = _mm256_loadu_ps(w + i * m.sk + first);
  }
  transpose_rounds(rows);
  __m512d g[3][3], t[4][3];
  for (int tap = 0; tap < 8; ++tap) {
    g[tap / 3][tap % 3] = _mm512_cvtps_pd(rows[kFlipped ? 7 - tap : tap]);
  }
  // Inserted lane by lane: six scalar stores read back as one vector wait for the stores.
  const auto tap8 = [&](int64_t i) { return i < lanes ? w[i * m.sk + 8 * srs] : 0.0f; };
  static_assert(kKR == 6, "tap 8 is inserted for six kernels");
  g[2][2] = _mm512_cvtps_pd(
      _mm256_setr_ps(tap8(0), tap8(1), tap8(2), tap8(3), tap8(4), tap8(5), 0.0f, 0.0f));
  const __m512d half = _mm512_set1_pd(0.5);
  for (int s = 0; s < 3; ++s) {
    t[0][s] = g[0][s];
    t[1][s] = _mm512_mul_pd(half, _mm512_add_pd(_mm512_add_pd(g[0][s], g[1][s]), g[2][s]));
    t[2][s] = _mm512_mul_pd(half, _mm512_add_pd(_mm512_sub_pd(g[0][s], g[1][s]), g[2][s]));
    t[3][s] = g[2][s];
  }
  float* to = u + u_offset(d, gi, c0) + (kb * cn + c - c0) * kKR;
  for (int i = 0; i < 4; ++i) {
    const __m512d v[4] = {
        t[i][0],
        _mm512_mul_pd(half, _mm512_add_pd(_mm512_add_pd(t[i][0], t[i][1]), t[i][2])),
        _mm512_mul_pd(half, _mm512_add_pd(_mm512_sub_pd(t[i][0], t[i][1]), t[i][2])), t[i][2]};
    for (int j = 0; j < 4; ++j) {
      _mm256_mask_storeu_ps(to + (4 * i + j) * per_xi, 0x3F, _mm512_maskz_cvtpd_ps(0xFF, v[j]));
    }
  }
}

FC_AVX512 __attribute__((flatten)) void transform_weight_block(float* u, const Wmap& m,
                                                                const Wcorr& d, int64_t gi,
                                                                int64_t kb, int64_t c) {
  if (m.srs > 0) {
    transform_block<false>(u, m, d, gi, kb, c);
  } else {
    transform_block<true>(u, m, d, gi, kb, c);
  }
}

// U for every (group, output block, input channel), block(u, m, d, gi, kb, c) filling one:
// transform_weight_block, or its scalar twin for the AVX2 variant.
template <typename Block>
std::unique_ptr<float[]> transform_weights(const Wmap& m, const Wcorr& d, Block block) {
  const int64_t KB = ceil_div(d.K, kKR);
  auto u = alloc_uninit<float>(d.groups * kXi * KB * d.C * kKR,
                               "conv2d (winograd): transformed weights");
  // The blocks of a run of input channels are taken output block first, that run's channels
  // innermost. The forward's kernels (output channels C * 9 floats apart, input channels 9)
  // take every input channel in one run: each of a block's six rows is read in order, and each
  // point's stores continue the last. The input gradient's (output channels 9 floats apart,
  // input channels a layer's C * 9) walked that way read 18 KB apart at 512 channels, a stride
  // the prefetchers do not follow: half of ResNet's 512 x 512 4x4 input gradient waited on
  // those reads (Zen 5, one thread). Runs of 8 input channels read 8 rows in order and store
  // 8 x 6 consecutive floats per point.
  const int64_t run = m.sk < m.sc ? 8 : d.C, per_group = KB * d.C;
  const int64_t blocks = d.groups * per_group;
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (d.parallel)
  for (int64_t e = 0; e < blocks; ++e) {
    const int64_t gi = e / per_group, r = e % per_group;
    const int64_t c0 = r / (KB * run) * run, cn = std::min(run, d.C - c0), i = r - c0 * KB;
    block(u.get(), m, d, gi, i / cn, c0 + i % cn);
  }
  return u;
}

// Lanes l with 0 <= w + l < W.
inline __mmask16 lanes_in(int64_t w, int64_t W) {
  const int64_t lo = std::clamp<int64_t>(-w, 0, kLanes), hi = std::clamp<int64_t>(W - w, 0, kLanes);
  if (hi <= lo) return 0;
  return __mmask16((0xFFFFu >> (kLanes - hi)) & (0xFFFFu << lo));
}

// Where a vector of 16 blocks reads each source plane: the 4x4 windows start at plane offset
// `at` (source row h0, column w0) and step two columns per lane; the four column masks keep the
// loads inside the plane's columns (masked-off lanes are zeros and are not read, so the
// addresses may run past a row or the plane), bit i of `rows` says row h0 + i is inside it.
// The same for every channel: computed once per item, not per plane.
struct InSpan {
  int64_t at;
  __mmask16 m[4];
  unsigned rows;
};

inline InSpan in_span(int64_t h0, int64_t w0, int64_t H, int64_t W) {
  InSpan s{h0 * W + w0, {lanes_in(w0, W), lanes_in(w0 + 16, W), lanes_in(w0 + 2, W),
                         lanes_in(w0 + 18, W)}, 0};
  for (int i = 0; i < 4; ++i) s.rows |= unsigned(h0 + i >= 0 && h0 + i < H) << i;
  return s;
}

// The 4x4 points of 16 blocks in one source plane (rows W floats apart), read along the rows of
// span s.
FC_AVX512 __attribute__((always_inline)) inline void load_rows(__m512 d[4][4], const float* plane,
                                                               int64_t W, const InSpan& s) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int i = 0; i < 4; ++i) {
    if (!(s.rows >> i & 1)) {
      for (int j = 0; j < 4; ++j) d[i][j] = _mm512_setzero_ps();
      continue;
    }
    const float* row = plane + s.at + i * W;
    const __m512 a = _mm512_maskz_loadu_ps(s.m[0], row);
    const __m512 b = _mm512_maskz_loadu_ps(s.m[1], row + 16);
    const __m512 a2 = _mm512_maskz_loadu_ps(s.m[2], row + 2);
    const __m512 b2 = _mm512_maskz_loadu_ps(s.m[3], row + 18);
    d[i][0] = _mm512_permutex2var_ps(a, even, b);
    d[i][1] = _mm512_permutex2var_ps(a, odd, b);
    d[i][2] = _mm512_permutex2var_ps(a2, even, b2);
    d[i][3] = _mm512_permutex2var_ps(a2, odd, b2);
  }
}

// Where a vector of 16 blocks from anywhere in the batch reads and writes: for point (i, j) of
// lane l's window, source offset in[4i + j][l] from the plane of the vector's first image (zero
// where in_m's bit is clear: padding, or a lane past the last tile), and for output (a, b) of
// its 2x2 block out[2a + b][l] from that image's output plane.
struct FlatSpan {
  __m512i in[kXi], out[4];
  __mmask16 in_m[kXi], out_m[4];
};

// The same points gathered lane by lane.
FC_AVX512 __attribute__((always_inline)) inline void gather_points(__m512 d[4][4],
                                                                   const float* plane,
                                                                   const FlatSpan& s) {
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      d[i][j] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), s.in_m[4 * i + j], s.in[4 * i + j],
                                         plane, 4);
    }
  }
}

// V = B^T d B: point xi to v[xi * xs].
FC_AVX512 __attribute__((always_inline)) inline void store_transformed(float* v, int64_t xs,
                                                                       const __m512 d[4][4]) {
  __m512 t[4][4];
  for (int j = 0; j < 4; ++j) {
    t[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
    t[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
    t[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
    t[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
  }
  for (int i = 0; i < 4; ++i) {
    _mm512_store_ps(v + (4 * i + 0) * xs, _mm512_sub_ps(t[i][0], t[i][2]));
    _mm512_store_ps(v + (4 * i + 1) * xs, _mm512_add_ps(t[i][1], t[i][2]));
    _mm512_store_ps(v + (4 * i + 2) * xs, _mm512_sub_ps(t[i][2], t[i][1]));
    _mm512_store_ps(v + (4 * i + 3) * xs, _mm512_sub_ps(t[i][1], t[i][3]));
  }
}

// Where a vector of 16 blocks writes each output plane: rows p0 and (if `two`) p0 + 1 from plane
// offset `at` (column q0), 32 columns masked to the plane's.
struct OutSpan {
  int64_t at;
  __mmask16 m[2];
  bool two;
};

inline OutSpan out_span(int64_t p0, int64_t q0, int64_t P, int64_t Q) {
  return OutSpan{p0 * Q + q0, {lanes_in(q0, Q), lanes_in(q0 + 16, Q)}, p0 + 1 < P};
}

// Y = A^T M A + bias for 16 blocks (point xi at m[xi * xs]): y[a][b] is output (a, b) of each
// lane's 2x2 block.
FC_AVX512 __attribute__((always_inline)) inline void output_points(__m512 y[2][2], const float* m,
                                                                   int64_t xs, float bias) {
  __m512 r[2][4];
  for (int j = 0; j < 4; ++j) {
    const __m512 m0 = _mm512_load_ps(m + j * xs), m1 = _mm512_load_ps(m + (4 + j) * xs);
    const __m512 m2 = _mm512_load_ps(m + (8 + j) * xs), m3 = _mm512_load_ps(m + (12 + j) * xs);
    r[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
    r[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
  }
  const __m512 b = _mm512_set1_ps(bias);
  for (int i = 0; i < 2; ++i) {
    y[i][0] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r[i][0], r[i][1]), r[i][2]), b);
    y[i][1] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(r[i][1], r[i][2]), r[i][3]), b);
  }
}

// The lanes of mask m where v is an infinity or NaN.
FC_AVX512 __attribute__((always_inline)) inline __mmask16 non_finite(__mmask16 m, __m512 v) {
  return _mm512_mask_fpclass_ps_mask(m, v, 0x99);  // quiet NaN, +inf, -inf, signalling NaN
}

// Y into one output plane (rows Q floats apart) along the rows of span s; returns the stored
// lanes that are not finite (run_item).
FC_AVX512 __attribute__((always_inline)) inline __mmask16 store_rows(float* plane, int64_t Q,
                                                                     const OutSpan& s,
                                                                     const __m512 y[2][2]) {
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  __mmask16 bad = 0;
  for (int i = 0; i < (s.two ? 2 : 1); ++i) {
    float* row = plane + s.at + i * Q;
    const __m512 a = _mm512_permutex2var_ps(y[i][0], lo, y[i][1]);
    const __m512 b = _mm512_permutex2var_ps(y[i][0], hi, y[i][1]);
    _mm512_mask_storeu_ps(row, s.m[0], a);
    _mm512_mask_storeu_ps(row + 16, s.m[1], b);
    bad |= non_finite(s.m[0], a) | non_finite(s.m[1], b);
  }
  return bad;
}

// Y scattered lane by lane; returns the stored lanes that are not finite.
FC_AVX512 __attribute__((always_inline)) inline __mmask16 scatter_points(float* plane,
                                                                         const FlatSpan& s,
                                                                         const __m512 y[2][2]) {
  __mmask16 bad = 0;
  for (int e = 0; e < 4; ++e) {
    _mm512_mask_i32scatter_ps(plane, s.out_m[e], s.out[e], y[e / 2][e % 2], 4);
    bad |= non_finite(s.out_m[e], y[e / 2][e % 2]);
  }
  return bad;
}

// m[i * ldm + j * 16 + l] (+)= sum over c < C of u[c * us + i * ui] * v[c * vcs + j * 16 + l],
// for the tile's 6 rows i and NJ vectors j: one chain of multiply-adds per output, in c order,
// from zero, then added to m. (Continuing m's chain instead, the forward's passes of kCChunk
// channels made one float32 sum over all C, whose error grows with C: 512 channels came 3-4x
// PyTorch's float32 error; the addition costs what the load at the start did.)
template <int NJ>
FC_AVX512 inline void gemm_tile(float* m, int64_t ldm, const float* u, int64_t us, int64_t ui,
                                const float* v, int64_t vcs, int64_t C, bool add) {
  __m512 acc[kKR][NJ];
  for (int i = 0; i < kKR; ++i) {
    for (int j = 0; j < NJ; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  for (int64_t c = 0; c < C; ++c) {
    const float* vc = v + c * vcs;
    __m512 x[NJ];
    for (int j = 0; j < NJ; ++j) x[j] = _mm512_loadu_ps(vc + j * kLanes);
    const float* uc = u + c * us;
#pragma GCC unroll 6
    for (int i = 0; i < kKR; ++i) {
      const __m512 w = _mm512_set1_ps(uc[i * ui]);
      for (int j = 0; j < NJ; ++j) acc[i][j] = _mm512_fmadd_ps(w, x[j], acc[i][j]);
    }
  }
  for (int i = 0; i < kKR; ++i) {
    for (int j = 0; j < NJ; ++j) {
      float* o = m + i * ldm + j * kLanes;
      _mm512_store_ps(o, add ? _mm512_add_ps(_mm512_load_ps(o), acc[i][j]) : acc[i][j]);
    }
  }
}

// gemm_tile over nj (1 to 4) vectors.
FC_AVX512 inline void gemm_tiles(int64_t nj, float* m, int64_t ldm, const float* u, int64_t us,
                                 int64_t ui, const float* v, int64_t vcs, int64_t C, bool add) {
  switch (nj) {
    case 4: return gemm_tile<4>(m, ldm, u, us, ui, v, vcs, C, add);
    case 3: return gemm_tile<3>(m, ldm, u, us, ui, v, vcs, C, add);
    case 2: return gemm_tile<2>(m, ldm, u, us, ui, v, vcs, C, add);
    default: return gemm_tile<1>(m, ldm, u, us, ui, v, vcs, C, add);
  }
}

// The vectors of 2x2 output blocks one group's correlation computes on N planes of P x Q
// outputs, `lanes` blocks to a vector (16 under AVX-512, 8 under AVX2): along block rows where
// they fill at least 3/4 of the lanes a row takes (a 28-pixel row puts 14 blocks in 16 lanes),
// else flat (FlatSpan: consecutive blocks of the batch in (image, block row, block column)
// order).
struct Layout {
  bool flat;
  int64_t lanes;
  int64_t rows, cols, per_row;  // blocks per plane (rows x cols); vectors per block row
  int64_t blocks, vectors;      // in the batch
};

Layout layout_of(int64_t N, int64_t P, int64_t Q, int64_t lanes = kLanes) {
  const int64_t rows = blocks_of(P), cols = blocks_of(Q), per_row = ceil_div(cols, lanes);
  if (4 * cols >= 3 * lanes * per_row) {
    return Layout{false, lanes, rows, cols, per_row, N * rows * cols, N * rows * per_row};
  }
  return Layout{true, lanes, rows, cols, 0, N * rows * cols, ceil_div(N * rows * cols, lanes)};
}

// Lane l's block of vector v: image n, output row p0 and column q0, and whether it is one of
// the batch's (a last vector's lanes may run past them).
struct Block {
  int64_t n, p0, q0;
  bool in;
};

inline Block block_at(const Layout& L, int64_t v, int64_t l) {
  if (L.flat) {
    const int64_t t = v * L.lanes + l;
    return Block{t / (L.rows * L.cols), 2 * ((t / L.cols) % L.rows), 2 * (t % L.cols),
                 t < L.blocks};
  }
  const int64_t c = (v % L.per_row) * L.lanes + l;
  return Block{v / (L.rows * L.per_row), 2 * ((v / L.per_row) % L.rows), 2 * c, c < L.cols};
}

// Lane l of flat vector v, whose first block is in image n0: for point (i, j) of its window the
// source offset in[4i + j] from the plane of image n0 (valid where in_ok: not padding, not past
// the batch), for output (a, b) of its block out[2a + b] from that image's output plane.
struct FlatLane {
  int32_t in[kXi], out[4];
  bool in_ok[kXi], out_ok[4];
};

inline FlatLane flat_lane(const Wcorr& d, const Layout& L, int64_t v, int64_t l, int64_t n0) {
  const int64_t img_in = d.groups * d.C * d.H * d.W, img_out = d.groups * d.K * d.P * d.Q;
  const Block b = block_at(L, v, l);
  FlatLane f;
  for (int e = 0; e < kXi; ++e) {
    const int64_t h = b.p0 - d.oh + e / 4, w = b.q0 - d.ow + e % 4;
    f.in_ok[e] = b.in && h >= 0 && h < d.H && w >= 0 && w < d.W;
    f.in[e] = f.in_ok[e] ? int32_t((b.n - n0) * img_in + h * d.W + w) : 0;
  }
  for (int e = 0; e < 4; ++e) {
    const int64_t p = b.p0 + e / 2, q = b.q0 + e % 2;
    f.out_ok[e] = b.in && p < d.P && q < d.Q;
    f.out[e] = f.out_ok[e] ? int32_t((b.n - n0) * img_out + p * d.Q + q) : 0;
  }
  return f;
}

// The offsets and masks of flat vector v, whose first block is in image n0.
FC_AVX512 FlatSpan flat_span(const Wcorr& d, const Layout& L, int64_t v, int64_t n0) {
  alignas(64) int32_t in[kXi][kLanes], out[4][kLanes];
  FlatSpan s;
  for (int e = 0; e < kXi; ++e) s.in_m[e] = 0;
  for (int e = 0; e < 4; ++e) s.out_m[e] = 0;
  for (int l = 0; l < kLanes; ++l) {
    const FlatLane f = flat_lane(d, L, v, l, n0);
    for (int e = 0; e < kXi; ++e) {
      in[e][l] = f.in[e];
      s.in_m[e] |= __mmask16(unsigned(f.in_ok[e]) << l);
    }
    for (int e = 0; e < 4; ++e) {
      out[e][l] = f.out[e];
      s.out_m[e] |= __mmask16(unsigned(f.out_ok[e]) << l);
    }
  }
  for (int e = 0; e < kXi; ++e) s.in[e] = _mm512_load_si512(in[e]);
  for (int e = 0; e < 4; ++e) s.out[e] = _mm512_load_si512(out[e]);
  return s;
}

inline float* line_aligned(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

// One work item: kNV vectors of blocks of group gi from vector v0 (the last item's may run past
// the batch: those lanes compute on zeros and are not written), output channels of the GEMM
// blocks kb_begin <= kb < kb_end. Returns whether every output it wrote is finite (correlate).
FC_AVX512 bool run_item(float* out, const float* src, const float* u, const float* bias,
                        const Wcorr& d, const Layout& L, int64_t gi, int64_t v0, int64_t kb_begin,
                        int64_t kb_end, float* vbuf, float* mbuf) {
  const int64_t KB = ceil_div(d.K, kKR), vcs = kXi * kNV * kLanes + kSkew;
  const int64_t mxs = kKChunk * kNV * kLanes + kSkew, HW = d.H * d.W, PQ = d.P * d.Q;
  const int64_t nv = std::min(kNV, L.vectors - v0);
  __mmask16 bad = 0;
  Block t[kNV];
  InSpan in[kNV];
  OutSpan os[kNV];
  FlatSpan fs[kNV];
  for (int64_t j = 0; j < nv; ++j) {
    t[j] = block_at(L, v0 + j, 0);
    if (L.flat) {
      fs[j] = flat_span(d, L, v0 + j, t[j].n);
    } else {
      in[j] = in_span(t[j].p0 - d.oh, t[j].q0 - d.ow, d.H, d.W);
      os[j] = out_span(t[j].p0, t[j].q0, d.P, d.Q);
    }
  }
  // Along rows, the next item's rows are prefetched into L2 while this item's are read. An
  // item reads a few rows of every input plane, more streams than the hardware prefetcher
  // follows: without this, the input transform waited on memory for a third of its time.
  const int64_t nn = L.flat ? 0 : std::clamp<int64_t>(L.vectors - v0 - kNV, 0, kNV);
  Block tn[kNV];
  int64_t pre[kNV][4];
  for (int64_t j = 0; j < nn; ++j) {
    tn[j] = block_at(L, v0 + kNV + j, 0);
    const int64_t w = std::clamp<int64_t>(tn[j].q0 - d.ow, 0, d.W - 1);
    for (int64_t i = 0; i < 4; ++i) {
      pre[j][i] = std::clamp<int64_t>(tn[j].p0 - d.oh + i, 0, d.H - 1) * d.W + w;
    }
  }
  // Channel by channel, so the item's vectors share the rows they read while they are in L1.
  for (int64_t c = 0; c < d.C; ++c) {
    for (int64_t j = 0; j < nv; ++j) {
      const float* plane = src + ((t[j].n * d.groups + gi) * d.C + c) * HW;
      __m512 pts[4][4];
      if (L.flat) {
        gather_points(pts, plane, fs[j]);
      } else {
        load_rows(pts, plane, d.W, in[j]);
      }
      store_transformed(vbuf + c * vcs + j * kLanes, kNV * kLanes, pts);
    }
    for (int64_t j = 0; j < nn; ++j) {
      const float* plane = src + ((tn[j].n * d.groups + gi) * d.C + c) * HW;
      for (int64_t i = 0; i < 4; ++i) {
        const char* p = reinterpret_cast<const char*>(plane + pre[j][i]);
        _mm_prefetch(p, _MM_HINT_T1);
        _mm_prefetch(p + 64, _MM_HINT_T1);
        _mm_prefetch(p + 128, _MM_HINT_T1);
      }
    }
  }
  for (int64_t kb0 = kb_begin; kb0 < kb_end; kb0 += kKChunk / kKR) {
    const int64_t kb1 = std::min(kb_end, kb0 + kKChunk / kKR);
    for (int64_t c0 = 0; c0 < d.C; c0 += kCChunk) {
      const int64_t cn = std::min(kCChunk, d.C - c0);
      for (int64_t xi = 0; xi < kXi; ++xi) {
        for (int64_t kb = kb0; kb < kb1; ++kb) {
          // Along rows, the output rows the transform will write, a few per GEMM tile in the
          // last 8 points of the last channel chunk: a store that misses waits for the line,
          // which the transform cannot hide.
          if (!L.flat && c0 + cn == d.C && xi >= kXi - 8) {
            const int64_t ks = std::min(kKR, d.K - kb * kKR), segs = ks * nv * 2;
            for (int64_t e = xi - (kXi - 8); e < segs; e += 8) {
              const int64_t k = kb * kKR + e / (2 * nv), j = (e / 2) % nv, i = e % 2;
              if (i == 1 && !os[j].two) continue;
              const char* p = reinterpret_cast<const char*>(
                  out + ((t[j].n * d.groups + gi) * d.K + k) * PQ + os[j].at + i * d.Q);
              _mm_prefetch(p, _MM_HINT_ET0);
              _mm_prefetch(p + 64, _MM_HINT_ET0);
              _mm_prefetch(p + 124, _MM_HINT_ET0);
            }
          }
          float* m = mbuf + xi * mxs + (kb - kb0) * kKR * kNV * kLanes;
          const float* w = u + u_offset(d, gi, c0) + (xi * KB + kb) * cn * kKR;
          const float* v = vbuf + c0 * vcs + xi * kNV * kLanes;
          // An item past the batch's last vector multiplies only its own.
          gemm_tiles(nv, m, kNV * kLanes, w, kKR, 1, v, vcs, cn, c0 > 0);
        }
      }
    }
    const int64_t k1 = std::min(d.K, kb1 * kKR);
    for (int64_t k = kb0 * kKR; k < k1; ++k) {
      const float b = bias ? bias[gi * d.K + k] : 0.0f;
      for (int64_t j = 0; j < nv; ++j) {
        __m512 y[2][2];
        output_points(y, mbuf + ((k - kb0 * kKR) * kNV + j) * kLanes, mxs, b);
        float* plane = out + ((t[j].n * d.groups + gi) * d.K + k) * PQ;
        bad |= L.flat ? scatter_points(plane, fs[j], y) : store_rows(plane, d.Q, os[j], y);
      }
    }
  }
  return bad == 0;
}

// Runs run(gi, v0, kb_begin, kb_end, vbuf, mbuf) for every item of a correlation whose groups
// hold `vectors` vectors of blocks, `per_item` (64 blocks) to an item: group gi, its vectors
// from v0, the GEMM blocks of output channels [kb_begin, kb_end), the calling thread's
// buffers for the item's transformed blocks and its GEMMs' sums. Items are (group, vectors,
// part of the output channels): with fewer vectors than two items a thread (ResNet's 4x4
// layers at batch 16: one item), the output channels are split, each part transforming the
// item's input again. Whatever the split, each output is the same chain of adds, so the bits
// do not depend on the thread count.
template <typename Run>
bool for_items(const Wcorr& d, int64_t vectors, int64_t per_item, const Run& run) {
  const int threads = max_threads();
  const int64_t per_group = ceil_div(vectors, per_item), base = d.groups * per_group;
  const int64_t chunks = ceil_div(ceil_div(d.K, kKR), kKChunk / kKR);
  const int64_t parts = std::clamp<int64_t>(ceil_div(2 * threads, base), 1, chunks);
  const int64_t items = base * parts, KB = ceil_div(d.K, kKR);
  const int64_t vsize = d.C * (kXi * kNV * kLanes + kSkew);
  const int64_t msize = kXi * (kKChunk * kNV * kLanes + kSkew);
  // Every vector the buffers hold starts a cache line: split loads and stores cost twice.
  const auto bufs = alloc_uninit<float>(mul_sat(threads, vsize + msize) + kLanes,
                                        "conv2d (winograd): transformed tiles");
  bool finite = true;
#pragma omp parallel num_threads(threads) if (d.parallel) reduction(&& : finite)
  {
    float* vbuf = line_aligned(bufs.get()) + thread_id() * (vsize + msize);
    // Taken as threads come free (conv_direct.cpp's correlate).
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < items; ++i) {
      const int64_t b = i / parts, part = i % parts;
      const int64_t kb0 = part_begin(chunks, parts, part) * (kKChunk / kKR);
      const int64_t kb1 = std::min(KB, part_begin(chunks, parts, part + 1) * (kKChunk / kKR));
      finite = run(b / per_group, (b % per_group) * per_item, kb0, kb1, vbuf, vbuf + vsize) &&
               finite;
    }
  }
  return finite;
}

// The correlation; returns whether every output it wrote is finite. The transforms add and
// subtract an input's neighbours, so an infinity meets itself with the other sign and gives NaN
// where the direct sum is +-inf, and finite values near the largest float overflow in them.
// Both show in the outputs: every input pixel and weight an output's direct sum reads reaches
// it through a nonzero coefficient, and an infinity or NaN never turns finite again. When one
// shows, the caller redoes the call on the GEMM path. (Scanning the inputs and weights for
// infinities first took 5-8 % of ResNet's 3x3 forward and input gradient, and let the
// overflows through.)
bool correlate(float* out, const float* src, const float* bias, const Wcorr& d, const Wmap& m) {
  const auto u = transform_weights(m, d, transform_weight_block);
  const Layout L = layout_of(d.N, d.P, d.Q);
  return for_items(d, L.vectors, kNV, [&](int64_t gi, int64_t v0, int64_t kb0, int64_t kb1,
                                          float* vbuf, float* mbuf) {
    return run_item(out, src, u.get(), bias, d, L, gi, v0, kb0, kb1, vbuf, mbuf);
  });
}

// The weight gradient. With U = G g G^T, the forward is y_t = A^T (U . V_t) A for each block t,
// so the gradient of the sum over t of e_t . y_t (e_t the block's 2x2 of dy) is, per pair of
// channels, dU = sum over t of E_t . V_t with E_t = A e_t A^T, and dg = G^T dU G: 16 GEMMs that
// reduce over the blocks, 16 multiply-adds per block where the direct tiles spend 36. The
// items' blocks are the forward's (kNV vectors of a Layout) and V is transformed as there, 16
// blocks to a vector; E carries output channels in its lanes, each point gathered across 16
// planes of dy, so the GEMMs broadcast V and multiply vectors of output channels.
// The per-thread sums of all channel pairs can outgrow L2 (256 x 256: 4.2 MB): the input
// channels go in passes whose sums fit kGradSumBytes, each pass transforming dy again (a fifth
// of the GEMMs' time at 256 output channels).
constexpr int64_t kGradSumBytes = int64_t(1) << 20;

struct GradDims {
  int64_t Kp;    // output channels padded to 16
  int64_t pass;  // input channels per pass: a multiple of 6 (one GEMM block)
  int64_t CB;    // GEMM blocks of 6 input channels per pass
};

GradDims grad_dims(const Wcorr& d) {
  const int64_t Kp = ceil_div(d.K, kLanes) * kLanes;
  const int64_t per_block = kXi * kKR * Kp * int64_t(sizeof(float));
  const int64_t fit = std::max<int64_t>(1, kGradSumBytes / per_block);
  const int64_t pass = std::min(fit, ceil_div(d.C, kKR)) * kKR;
  return GradDims{Kp, pass, pass / kKR};
}

constexpr int64_t kGradTiles = kNV * kLanes;  // blocks per work item

// Work item (group gi, vectors v0 ..) adds its blocks' V . E into sums[16][CB * 6][Kp].
FC_AVX512 void grad_item(float* sums, const float* dout, const float* src, const Wcorr& d,
                         const Layout& L, const GradDims& D, int64_t gi, int64_t v0, int64_t c_lo,
                         int64_t cn, float* vt, float* et) {
  const int64_t HW = d.H * d.W, PQ = d.P * d.Q, vxs = D.pass * kGradTiles;
  const int64_t exs = kGradTiles * D.Kp, nv = std::min(kNV, L.vectors - v0);
  // V[xi][c - c_lo][block] for the pass's cn channels: as the forward's input transform; the
  // rows of a last GEMM block past them are zeros (the GEMMs read only the item's vectors).
  for (int64_t xi = 0; xi < kXi; ++xi) {
    std::memset(vt + xi * vxs + cn * kGradTiles, 0, (D.pass - cn) * kGradTiles * sizeof(float));
  }
  for (int64_t j = 0; j < nv; ++j) {
    const Block t = block_at(L, v0 + j, 0);
    const float* planes = src + ((t.n * d.groups + gi) * d.C + c_lo) * HW;
    if (L.flat) {
      const FlatSpan fs = flat_span(d, L, v0 + j, t.n);
      for (int64_t c = 0; c < cn; ++c) {
        __m512 pts[4][4];
        gather_points(pts, planes + c * HW, fs);
        store_transformed(vt + c * kGradTiles + j * kLanes, vxs, pts);
      }
    } else {
      const InSpan in = in_span(t.p0 - d.oh, t.q0 - d.ow, d.H, d.W);
      for (int64_t c = 0; c < cn; ++c) {
        __m512 pts[4][4];
        load_rows(pts, planes + c * HW, d.W, in);
        store_transformed(vt + c * kGradTiles + j * kLanes, vxs, pts);
      }
    }
  }
  // E[xi][block][k]: 16 output channels of one of the block's 4 points per gather.
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step = _mm512_mullo_epi32(lane, _mm512_set1_epi32(int32_t(PQ)));
  for (int64_t t = 0; t < nv * kLanes; ++t) {
    const Block b = block_at(L, v0 + t / kLanes, t % kLanes);
    const float* y = dout + (b.n * d.groups + gi) * d.K * PQ;
    for (int64_t k0 = 0; k0 < D.Kp; k0 += kLanes) {
      const __mmask16 m = d.K - k0 >= kLanes ? __mmask16(0xFFFF)
                                             : __mmask16((1u << (d.K - k0)) - 1);
      __m512 e[2][2];
      for (int a = 0; a < 2; ++a) {
        for (int c = 0; c < 2; ++c) {
          const int64_t p = b.p0 + a, q = b.q0 + c;
          e[a][c] = b.in && p < d.P && q < d.Q
                        ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, step,
                                                   y + k0 * PQ + p * d.Q + q, 4)
                        : _mm512_setzero_ps();
        }
      }
      __m512 f[4][2];
      for (int c = 0; c < 2; ++c) {
        f[0][c] = e[0][c];
        f[1][c] = _mm512_add_ps(e[0][c], e[1][c]);
        f[2][c] = _mm512_sub_ps(e[0][c], e[1][c]);
        f[3][c] = _mm512_sub_ps(_mm512_setzero_ps(), e[1][c]);
      }
      float* to = et + t * D.Kp + k0;
      for (int i = 0; i < 4; ++i) {
        _mm512_store_ps(to + (4 * i + 0) * exs, f[i][0]);
        _mm512_store_ps(to + (4 * i + 1) * exs, _mm512_add_ps(f[i][0], f[i][1]));
        _mm512_store_ps(to + (4 * i + 2) * exs, _mm512_sub_ps(f[i][0], f[i][1]));
        _mm512_store_ps(to + (4 * i + 3) * exs, _mm512_sub_ps(_mm512_setzero_ps(), f[i][1]));
      }
    }
  }
  // sums[xi][c][k] += sum over the item's blocks t of V[xi][c][t] * E[xi][t][k].
  const int64_t steps = nv * kLanes;
  for (int64_t xi = 0; xi < kXi; ++xi) {
    const float* vx = vt + xi * vxs;
    const float* ex = et + xi * exs;
    float* sx = sums + xi * D.pass * D.Kp;
    for (int64_t cb = 0; cb < ceil_div(cn, kKR); ++cb) {
      for (int64_t k0 = 0; k0 < D.Kp; k0 += kNV * kLanes) {
        float* m = sx + cb * kKR * D.Kp + k0;
        const float* u = vx + cb * kKR * kGradTiles;
        gemm_tiles(std::min<int64_t>(kNV, (D.Kp - k0) / kLanes), m, D.Kp, u, 1, kGradTiles,
                   ex + k0, D.Kp, steps, true);
      }
    }
  }
}

// dweight[gi * K + k, c_lo + c] += G^T dU G, dU the sum of the parts' sums (at part * ssize),
// for every k: eight output channels to a double vector, parts added in order.
FC_AVX512 void finish_weight_grad(float* dweight, const float* s0, int64_t ssize, int parts,
                                  const Wcorr& d, const GradDims& D, int64_t gi, int64_t c_lo,
                                  int64_t c) {
  const __m512d half = _mm512_set1_pd(0.5);
  for (int64_t k0 = 0; k0 < d.K; k0 += 8) {
    const __mmask8 m = __mmask8((1u << std::min<int64_t>(8, d.K - k0)) - 1);
    __m512d su[4][4];
    for (int xi = 0; xi < kXi; ++xi) {
      __m512d v = _mm512_setzero_pd();
      for (int part = 0; part < parts; ++part) {
        const float* from = s0 + part * ssize + (xi * D.pass + c) * D.Kp + k0;
        v = _mm512_add_pd(v, _mm512_maskz_cvtps_pd(0xFF, _mm256_maskz_loadu_ps(m, from)));
      }
      su[xi / 4][xi % 4] = v;
    }
    // G^T dU G, G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1].
    __m512d t[3][4];
    for (int j = 0; j < 4; ++j) {
      const __m512d p = _mm512_mul_pd(half, _mm512_add_pd(su[1][j], su[2][j]));
      t[0][j] = _mm512_add_pd(su[0][j], p);
      t[1][j] = _mm512_mul_pd(half, _mm512_sub_pd(su[1][j], su[2][j]));
      t[2][j] = _mm512_add_pd(p, su[3][j]);
    }
    alignas(64) float g[9][8];
    for (int r = 0; r < 3; ++r) {
      const __m512d p = _mm512_mul_pd(half, _mm512_add_pd(t[r][1], t[r][2]));
      _mm256_store_ps(g[3 * r + 0], _mm512_maskz_cvtpd_ps(0xFF, _mm512_add_pd(t[r][0], p)));
      const __m512d mid = _mm512_mul_pd(half, _mm512_sub_pd(t[r][1], t[r][2]));
      _mm256_store_ps(g[3 * r + 1], _mm512_maskz_cvtpd_ps(0xFF, mid));
      _mm256_store_ps(g[3 * r + 2], _mm512_maskz_cvtpd_ps(0xFF, _mm512_add_pd(p, t[r][3])));
    }
    for (int64_t l = 0; l < std::min<int64_t>(8, d.K - k0); ++l) {
      float* to = dweight + ((gi * d.K + k0 + l) * d.C + c_lo + c) * 9;
      for (int rs = 0; rs < 9; ++rs) to[rs] += g[rs][l];
    }
  }
}

// dweight += the correlation d's weight gradient, item(sums, gi, i, c_lo, cn, vt, et) adding
// item i's blocks into a copy of the sums, finish(...) transforming the sums of channel c
// back (the variants' grad_item and finish_weight_grad). With fewer than two items a thread but as
// many passes of input channels as threads, each pass runs whole on one thread, which
// transforms its channels' sums back itself (ResNet-18's 512-channel layer at batch 16 is one
// item in 18 passes, which left a thread idle). Otherwise, for each
// group and pass, part p of the items (as many parts as threads, cut the same whoever runs them)
// sums into its own copy; the copies are added in a fixed order and transformed back in double.
template <typename Item, typename Finish>
void weight_grad_passes(float* dweight, const Wcorr& d, const GradDims& D, int64_t items,
                        const Item& item, const Finish& finish) {
  const int threads = max_threads();
  const int64_t passes = ceil_div(d.C, D.pass);
  const int64_t ssize = kXi * D.pass * D.Kp;
  const int64_t bsize = kXi * kGradTiles * (D.pass + D.Kp);
  const auto sums = alloc_uninit<float>(mul_sat(threads, ssize) + kLanes,
                                        "conv2d_backward_cpu (grad_weight, winograd): part sums");
  const auto bufs = alloc_uninit<float>(mul_sat(threads, bsize) + kLanes,
                                        "conv2d_backward_cpu (grad_weight, winograd): tiles");
  float* const s0 = line_aligned(sums.get());
  if (passes >= threads && items < 2 * threads) {
#pragma omp parallel num_threads(threads) if (d.parallel)
    {
      float* vt = line_aligned(bufs.get()) + thread_id() * bsize;
      float* et = vt + kXi * kGradTiles * D.pass;
      float* mine = s0 + thread_id() * ssize;
#pragma omp for schedule(static)
      for (int64_t e = 0; e < d.groups * passes; ++e) {
        const int64_t gi = e / passes, c_lo = (e % passes) * D.pass;
        const int64_t cn = std::min(D.pass, d.C - c_lo);
        std::fill(mine, mine + ssize, 0.0f);
        for (int64_t i = 0; i < items; ++i) {
          item(mine, gi, i, c_lo, cn, vt, et);
        }
        for (int64_t c = 0; c < cn; ++c) {
          finish(dweight, mine, ssize, 1, d, D, gi, c_lo, c);
        }
      }
    }
    return;
  }
  for (int64_t gi = 0; gi < d.groups; ++gi) {
    for (int64_t c_lo = 0; c_lo < d.C; c_lo += D.pass) {
      const int64_t cn = std::min(D.pass, d.C - c_lo);
#pragma omp parallel num_threads(threads) if (d.parallel)
      {
        float* vt = line_aligned(bufs.get()) + thread_id() * bsize;
        float* et = vt + kXi * kGradTiles * D.pass;
#pragma omp for schedule(static)
        for (int part = 0; part < threads; ++part) {
          float* mine = s0 + part * ssize;
          std::fill(mine, mine + ssize, 0.0f);
          const int64_t i1 = part_begin(items, threads, part + 1);
          for (int64_t i = part_begin(items, threads, part); i < i1; ++i) {
            item(mine, gi, i, c_lo, cn, vt, et);
          }
        }
      }
#pragma omp parallel for schedule(static) num_threads(threads) if (d.parallel)
      for (int64_t c = 0; c < cn; ++c) {
        finish(dweight, s0, ssize, threads, d, D, gi, c_lo, c);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The AVX2 variant. A vector holds 8 blocks (16 output columns), so rows of 14 pixels and more
// fill 3/4 of its lanes; shorter ones are gathered (flat, as under AVX-512; without a scatter
// the outputs are stored lane by lane). An item is kNV2 = 8 vectors, the AVX-512 item's
// 64 blocks, and its buffers, the transformed weights and the weight gradient's sums are laid
// out as there. The GEMM tile is 6 rows x 2 vectors (12 of AVX2's 16 registers). Each output
// is the same chain of operations as under AVX-512, so the bits are the same wherever both
// run it.
#define FC_AVX2 FC_TARGET_AVX2

constexpr int64_t kLanes2 = 8;
constexpr int64_t kNV2 = kNV * kLanes / kLanes2;

// U as transform_weight_block makes it, lane by lane in scalar double (its gathers need
// AVX-512): the same operations in the same order, so the same floats.
void transform_weight_block_scalar(float* u, const Wmap& m, const Wcorr& d, int64_t gi,
                                   int64_t kb, int64_t c) {
  const int64_t KB = ceil_div(d.K, kKR), c0 = c / kCChunk * kCChunk;
  const int64_t cn = std::min(kCChunk, d.C - c0), per_xi = KB * cn * kKR;
  float* to = u + u_offset(d, gi, c0) + (kb * cn + c - c0) * kKR;
  for (int64_t i = 0; i < kKR; ++i) {
    const int64_t k = kb * kKR + i;
    double g[3][3] = {}, t[4][3];
    if (k < d.K) {
      const float* w = m.w + gi * m.sg + k * m.sk + c * m.sc;
      for (int r = 0; r < 3; ++r) {
        for (int q = 0; q < 3; ++q) g[r][q] = double(w[(3 * r + q) * m.srs]);
      }
    }
    for (int q = 0; q < 3; ++q) {
      t[0][q] = g[0][q];
      t[1][q] = 0.5 * ((g[0][q] + g[1][q]) + g[2][q]);
      t[2][q] = 0.5 * ((g[0][q] - g[1][q]) + g[2][q]);
      t[3][q] = g[2][q];
    }
    for (int a = 0; a < 4; ++a) {
      const double v[4] = {t[a][0], 0.5 * ((t[a][0] + t[a][1]) + t[a][2]),
                           0.5 * ((t[a][0] - t[a][1]) + t[a][2]), t[a][2]};
      for (int b = 0; b < 4; ++b) to[(4 * a + b) * per_xi + i] = float(v[b]);
    }
  }
}

// FlatSpan for 8 lanes: offsets from the plane of the vector's first image n0, masks as AVX2
// float masks (sign bits).
struct FlatSpan2 {
  __m256i in[kXi], out[4];
  __m256 in_m[kXi];
  unsigned out_m[4];
};

FlatSpan2 flat_span2(const Wcorr& d, const Layout& L, int64_t v, int64_t n0) {
  alignas(32) int32_t in[kXi][kLanes2], out[4][kLanes2], inm[kXi][kLanes2];
  FlatSpan2 s;
  for (int e = 0; e < 4; ++e) s.out_m[e] = 0;
  for (int l = 0; l < kLanes2; ++l) {
    const FlatLane f = flat_lane(d, L, v, l, n0);
    for (int e = 0; e < kXi; ++e) {
      in[e][l] = f.in[e];
      inm[e][l] = f.in_ok[e] ? -1 : 0;
    }
    for (int e = 0; e < 4; ++e) {
      out[e][l] = f.out[e];
      s.out_m[e] |= unsigned(f.out_ok[e]) << l;
    }
  }
  std::memcpy(s.in, in, sizeof in);
  std::memcpy(s.in_m, inm, sizeof inm);
  std::memcpy(s.out, out, sizeof out);
  return s;
}

FC_AVX2 inline void gather_points2(__m256 d[4][4], const float* plane, const FlatSpan2& s) {
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      d[i][j] = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), plane, s.in[4 * i + j],
                                         s.in_m[4 * i + j], 4);
    }
  }
}

// The lanes (bits of a movemask) where v is an infinity or NaN: v - v is NaN there, +0 elsewhere.
FC_AVX2 inline int non_finite2(__m256 v) {
  return _mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_NEQ_UQ));
}

// Y lane by lane (AVX2 has no scatter); returns the stored lanes that are not finite.
FC_AVX2 inline int scatter_points2(float* plane, const FlatSpan2& s, const __m256 y[2][2]) {
  int bad = 0;
  for (int e = 0; e < 4; ++e) {
    alignas(32) float v[kLanes2];
    alignas(32) int32_t o[kLanes2];
    _mm256_store_ps(v, y[e / 2][e % 2]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(o), s.out[e]);
    for (int l = 0; l < kLanes2; ++l) {
      if (s.out_m[e] >> l & 1) plane[o[l]] = v[l];
    }
    bad |= non_finite2(y[e / 2][e % 2]) & int(s.out_m[e]);
  }
  return bad;
}

// Lanes l with 0 <= w + l < W, as an AVX2 mask (all ones where in).
FC_AVX2 inline __m256i lanes2_in(int64_t w, int64_t W) {
  const __m256i idx = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                       _mm256_set1_epi32(int32_t(std::clamp<int64_t>(w, -16, W))));
  return _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(-1)),
                          _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(W)), idx));
}

// InSpan and OutSpan for 8 blocks.
struct InSpan2 {
  int64_t at;
  __m256i m[4];
  unsigned rows;
};

FC_AVX2 inline InSpan2 in_span2(int64_t h0, int64_t w0, int64_t H, int64_t W) {
  InSpan2 s{h0 * W + w0, {lanes2_in(w0, W), lanes2_in(w0 + 8, W), lanes2_in(w0 + 2, W),
                          lanes2_in(w0 + 10, W)}, 0};
  for (int i = 0; i < 4; ++i) s.rows |= unsigned(h0 + i >= 0 && h0 + i < H) << i;
  return s;
}

struct OutSpan2 {
  int64_t at;
  __m256i m[2];
  bool two;
};

FC_AVX2 inline OutSpan2 out_span2(int64_t p0, int64_t q0, int64_t P, int64_t Q) {
  return OutSpan2{p0 * Q + q0, {lanes2_in(q0, Q), lanes2_in(q0 + 8, Q)}, p0 + 1 < P};
}

// Lanes 0, 2, .., 14 (odd: 1, 3, .., 15) of the 16 floats a, b.
FC_AVX2 inline __m256 even2(__m256 a, __m256 b) {
  const __m256 t = _mm256_shuffle_ps(a, b, 0x88);
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xD8));
}

FC_AVX2 inline __m256 odd2(__m256 a, __m256 b) {
  const __m256 t = _mm256_shuffle_ps(a, b, 0xDD);
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xD8));
}

// load_rows for 8 blocks; masked-off lanes are zeros and are not read.
FC_AVX2 inline void load_rows2(__m256 d[4][4], const float* plane, int64_t W, const InSpan2& s) {
  for (int i = 0; i < 4; ++i) {
    if (!(s.rows >> i & 1)) {
      for (int j = 0; j < 4; ++j) d[i][j] = _mm256_setzero_ps();
      continue;
    }
    const float* row = plane + s.at + i * W;
    const __m256 a = _mm256_maskload_ps(row, s.m[0]), b = _mm256_maskload_ps(row + 8, s.m[1]);
    const __m256 a2 = _mm256_maskload_ps(row + 2, s.m[2]);
    const __m256 b2 = _mm256_maskload_ps(row + 10, s.m[3]);
    d[i][0] = even2(a, b);
    d[i][1] = odd2(a, b);
    d[i][2] = even2(a2, b2);
    d[i][3] = odd2(a2, b2);
  }
}

// store_transformed for 8 blocks.
FC_AVX2 inline void store_transformed2(float* v, int64_t xs, const __m256 d[4][4]) {
  __m256 t[4][4];
  for (int j = 0; j < 4; ++j) {
    t[0][j] = _mm256_sub_ps(d[0][j], d[2][j]);
    t[1][j] = _mm256_add_ps(d[1][j], d[2][j]);
    t[2][j] = _mm256_sub_ps(d[2][j], d[1][j]);
    t[3][j] = _mm256_sub_ps(d[1][j], d[3][j]);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_store_ps(v + (4 * i + 0) * xs, _mm256_sub_ps(t[i][0], t[i][2]));
    _mm256_store_ps(v + (4 * i + 1) * xs, _mm256_add_ps(t[i][1], t[i][2]));
    _mm256_store_ps(v + (4 * i + 2) * xs, _mm256_sub_ps(t[i][2], t[i][1]));
    _mm256_store_ps(v + (4 * i + 3) * xs, _mm256_sub_ps(t[i][1], t[i][3]));
  }
}

// output_points and store_rows for 8 blocks.
FC_AVX2 inline void output_points2(__m256 y[2][2], const float* m, int64_t xs, float bias) {
  __m256 r[2][4];
  for (int j = 0; j < 4; ++j) {
    const __m256 m0 = _mm256_load_ps(m + j * xs), m1 = _mm256_load_ps(m + (4 + j) * xs);
    const __m256 m2 = _mm256_load_ps(m + (8 + j) * xs), m3 = _mm256_load_ps(m + (12 + j) * xs);
    r[0][j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
    r[1][j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
  }
  const __m256 b = _mm256_set1_ps(bias);
  for (int i = 0; i < 2; ++i) {
    y[i][0] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(r[i][0], r[i][1]), r[i][2]), b);
    y[i][1] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(r[i][1], r[i][2]), r[i][3]), b);
  }
}

FC_AVX2 inline int store_rows2(float* plane, int64_t Q, const OutSpan2& s,
                               const __m256 y[2][2]) {
  const int m0 = _mm256_movemask_ps(_mm256_castsi256_ps(s.m[0]));
  const int m1 = _mm256_movemask_ps(_mm256_castsi256_ps(s.m[1]));
  int bad = 0;
  for (int i = 0; i < (s.two ? 2 : 1); ++i) {
    const __m256 lo = _mm256_unpacklo_ps(y[i][0], y[i][1]);
    const __m256 hi = _mm256_unpackhi_ps(y[i][0], y[i][1]);
    const __m256 a = _mm256_permute2f128_ps(lo, hi, 0x20), b = _mm256_permute2f128_ps(lo, hi, 0x31);
    float* row = plane + s.at + i * Q;
    _mm256_maskstore_ps(row, s.m[0], a);
    _mm256_maskstore_ps(row + 8, s.m[1], b);
    bad |= (non_finite2(a) & m0) | (non_finite2(b) & m1);
  }
  return bad;
}

// gemm_tile for 8-lane vectors, NJ of them (1 or 2).
template <int NJ>
FC_AVX2 inline void gemm_tile2(float* m, int64_t ldm, const float* u, int64_t us, int64_t ui,
                               const float* v, int64_t vcs, int64_t C, bool add) {
  __m256 acc[kKR][NJ];
  for (int i = 0; i < kKR; ++i) {
    for (int j = 0; j < NJ; ++j) acc[i][j] = _mm256_setzero_ps();
  }
  for (int64_t c = 0; c < C; ++c) {
    const float* vc = v + c * vcs;
    __m256 x[NJ];
    for (int j = 0; j < NJ; ++j) x[j] = _mm256_load_ps(vc + j * kLanes2);
    const float* uc = u + c * us;
#pragma GCC unroll 6
    for (int i = 0; i < kKR; ++i) {
      const __m256 w = _mm256_broadcast_ss(uc + i * ui);
      for (int j = 0; j < NJ; ++j) acc[i][j] = _mm256_fmadd_ps(w, x[j], acc[i][j]);
    }
  }
  for (int i = 0; i < kKR; ++i) {
    for (int j = 0; j < NJ; ++j) {
      float* o = m + i * ldm + j * kLanes2;
      _mm256_store_ps(o, add ? _mm256_add_ps(_mm256_load_ps(o), acc[i][j]) : acc[i][j]);
    }
  }
}

// run_item for the AVX2 layout: kNV2 vectors from v0 (fewer in the batch's last item).
FC_AVX2 bool run_item2(float* out, const float* src, const float* u, const float* bias,
                       const Wcorr& d, const Layout& L, int64_t gi, int64_t v0,
                       int64_t kb_begin, int64_t kb_end, float* vbuf, float* mbuf) {
  const int64_t KB = ceil_div(d.K, kKR), vcs = kXi * kNV2 * kLanes2 + kSkew;
  const int64_t mxs = kKChunk * kNV2 * kLanes2 + kSkew, HW = d.H * d.W, PQ = d.P * d.Q;
  const int64_t nv = std::min(kNV2, L.vectors - v0);
  int bad = 0;
  int64_t n[kNV2];
  InSpan2 in[kNV2];
  OutSpan2 os[kNV2];
  FlatSpan2 fs[kNV2];
  for (int64_t j = 0; j < nv; ++j) {
    const Block t = block_at(L, v0 + j, 0);
    n[j] = t.n;
    if (L.flat) {
      fs[j] = flat_span2(d, L, v0 + j, t.n);
    } else {
      in[j] = in_span2(t.p0 - d.oh, t.q0 - d.ow, d.H, d.W);
      os[j] = out_span2(t.p0, t.q0, d.P, d.Q);
    }
  }
  for (int64_t c = 0; c < d.C; ++c) {
    for (int64_t j = 0; j < nv; ++j) {
      const float* plane = src + ((n[j] * d.groups + gi) * d.C + c) * HW;
      __m256 pts[4][4];
      if (L.flat) {
        gather_points2(pts, plane, fs[j]);
      } else {
        load_rows2(pts, plane, d.W, in[j]);
      }
      store_transformed2(vbuf + c * vcs + j * kLanes2, kNV2 * kLanes2, pts);
    }
  }
  for (int64_t kb0 = kb_begin; kb0 < kb_end; kb0 += kKChunk / kKR) {
    const int64_t kb1 = std::min(kb_end, kb0 + kKChunk / kKR);
    for (int64_t c0 = 0; c0 < d.C; c0 += kCChunk) {
      const int64_t cn = std::min(kCChunk, d.C - c0);
      for (int64_t xi = 0; xi < kXi; ++xi) {
        for (int64_t kb = kb0; kb < kb1; ++kb) {
          float* m = mbuf + xi * mxs + (kb - kb0) * kKR * kNV2 * kLanes2;
          const float* w = u + u_offset(d, gi, c0) + (xi * KB + kb) * cn * kKR;
          const float* v = vbuf + c0 * vcs + xi * kNV2 * kLanes2;
          for (int64_t j = 0; j < nv; j += 2) {
            if (nv - j >= 2) {
              gemm_tile2<2>(m + j * kLanes2, kNV2 * kLanes2, w, kKR, 1, v + j * kLanes2, vcs,
                            cn, c0 > 0);
            } else {
              gemm_tile2<1>(m + j * kLanes2, kNV2 * kLanes2, w, kKR, 1, v + j * kLanes2, vcs,
                            cn, c0 > 0);
            }
          }
        }
      }
    }
    const int64_t k1 = std::min(d.K, kb1 * kKR);
    for (int64_t k = kb0 * kKR; k < k1; ++k) {
      const float b = bias ? bias[gi * d.K + k] : 0.0f;
      for (int64_t j = 0; j < nv; ++j) {
        __m256 y[2][2];
        output_points2(y, mbuf + ((k - kb0 * kKR) * kNV2 + j) * kLanes2, mxs, b);
        float* plane = out + ((n[j] * d.groups + gi) * d.K + k) * PQ;
        bad |= L.flat ? scatter_points2(plane, fs[j], y) : store_rows2(plane, d.Q, os[j], y);
      }
    }
  }
  return bad == 0;
}

// correlate for the AVX2 variant (the rows of the planes fill 3/4 of its vectors' lanes).
bool correlate2(float* out, const float* src, const float* bias, const Wcorr& d, const Wmap& m) {
  const auto u = transform_weights(m, d, transform_weight_block_scalar);
  const Layout L = layout_of(d.N, d.P, d.Q, kLanes2);
  return for_items(d, L.vectors, kNV2, [&](int64_t gi, int64_t v0, int64_t kb0, int64_t kb1,
                                           float* vbuf, float* mbuf) {
    return run_item2(out, src, u.get(), bias, d, L, gi, v0, kb0, kb1, vbuf, mbuf);
  });
}

// grad_item for the AVX2 layout: the same V, E and sums, 8 lanes at a time.
FC_AVX2 void grad_item2(float* sums, const float* dout, const float* src, const Wcorr& d,
                        const Layout& L, const GradDims& D, int64_t gi, int64_t v0,
                        int64_t c_lo, int64_t cn, float* vt, float* et) {
  const int64_t HW = d.H * d.W, PQ = d.P * d.Q, vxs = D.pass * kGradTiles;
  const int64_t exs = kGradTiles * D.Kp, nv = std::min(kNV2, L.vectors - v0);
  for (int64_t xi = 0; xi < kXi; ++xi) {
    std::memset(vt + xi * vxs + cn * kGradTiles, 0, (D.pass - cn) * kGradTiles * sizeof(float));
  }
  for (int64_t j = 0; j < nv; ++j) {
    const Block t = block_at(L, v0 + j, 0);
    const float* planes = src + ((t.n * d.groups + gi) * d.C + c_lo) * HW;
    if (L.flat) {
      const FlatSpan2 fs = flat_span2(d, L, v0 + j, t.n);
      for (int64_t c = 0; c < cn; ++c) {
        __m256 pts[4][4];
        gather_points2(pts, planes + c * HW, fs);
        store_transformed2(vt + c * kGradTiles + j * kLanes2, vxs, pts);
      }
    } else {
      const InSpan2 in = in_span2(t.p0 - d.oh, t.q0 - d.ow, d.H, d.W);
      for (int64_t c = 0; c < cn; ++c) {
        __m256 pts[4][4];
        load_rows2(pts, planes + c * HW, d.W, in);
        store_transformed2(vt + c * kGradTiles + j * kLanes2, vxs, pts);
      }
    }
  }
  const __m256i step = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                          _mm256_set1_epi32(int32_t(PQ)));
  for (int64_t t = 0; t < nv * kLanes2; ++t) {
    const Block b = block_at(L, v0 + t / kLanes2, t % kLanes2);
    const float* y = dout + (b.n * d.groups + gi) * d.K * PQ;
    for (int64_t k0 = 0; k0 < D.Kp; k0 += kLanes2) {
      const __m256i m = _mm256_cmpgt_epi32(
          _mm256_set1_epi32(int32_t(std::clamp<int64_t>(d.K - k0, 0, kLanes2))),
          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      __m256 e[2][2];
      for (int a = 0; a < 2; ++a) {
        for (int c = 0; c < 2; ++c) {
          const int64_t p = b.p0 + a, q = b.q0 + c;
          e[a][c] = b.in && p < d.P && q < d.Q
                        ? _mm256_mask_i32gather_ps(_mm256_setzero_ps(), y + k0 * PQ + p * d.Q + q,
                                                   step, _mm256_castsi256_ps(m), 4)
                        : _mm256_setzero_ps();
        }
      }
      __m256 f[4][2];
      for (int c = 0; c < 2; ++c) {
        f[0][c] = e[0][c];
        f[1][c] = _mm256_add_ps(e[0][c], e[1][c]);
        f[2][c] = _mm256_sub_ps(e[0][c], e[1][c]);
        f[3][c] = _mm256_sub_ps(_mm256_setzero_ps(), e[1][c]);
      }
      float* to = et + t * D.Kp + k0;
      for (int i = 0; i < 4; ++i) {
        _mm256_store_ps(to + (4 * i + 0) * exs, f[i][0]);
        _mm256_store_ps(to + (4 * i + 1) * exs, _mm256_add_ps(f[i][0], f[i][1]));
        _mm256_store_ps(to + (4 * i + 2) * exs, _mm256_sub_ps(f[i][0], f[i][1]));
        _mm256_store_ps(to + (4 * i + 3) * exs, _mm256_sub_ps(_mm256_setzero_ps(), f[i][1]));
      }
    }
  }
  const int64_t steps = nv * kLanes2;
  for (int64_t xi = 0; xi < kXi; ++xi) {
    const float* vx = vt + xi * vxs;
    const float* ex = et + xi * exs;
    float* sx = sums + xi * D.pass * D.Kp;
    for (int64_t cb = 0; cb < ceil_div(cn, kKR); ++cb) {
      for (int64_t k0 = 0; k0 < D.Kp; k0 += 2 * kLanes2) {
        gemm_tile2<2>(sx + cb * kKR * D.Kp + k0, D.Kp, vx + cb * kKR * kGradTiles, 1,
                      kGradTiles, ex + k0, D.Kp, steps, true);
      }
    }
  }
}

// finish_weight_grad in scalar double, its operations in its order: the same floats.
void finish_weight_grad_scalar(float* dweight, const float* s0, int64_t ssize, int parts,
                               const Wcorr& d, const GradDims& D, int64_t gi, int64_t c_lo,
                               int64_t c) {
  for (int64_t k = 0; k < d.K; ++k) {
    double su[4][4];
    for (int xi = 0; xi < kXi; ++xi) {
      double v = 0;
      for (int part = 0; part < parts; ++part) {
        v += double(s0[part * ssize + (xi * D.pass + c) * D.Kp + k]);
      }
      su[xi / 4][xi % 4] = v;
    }
    double t[3][4];
    for (int j = 0; j < 4; ++j) {
      const double p = 0.5 * (su[1][j] + su[2][j]);
      t[0][j] = su[0][j] + p;
      t[1][j] = 0.5 * (su[1][j] - su[2][j]);
      t[2][j] = p + su[3][j];
    }
    float* to = dweight + ((gi * d.K + k) * d.C + c_lo + c) * 9;
    for (int r = 0; r < 3; ++r) {
      const double p = 0.5 * (t[r][1] + t[r][2]);
      to[3 * r + 0] += float(t[r][0] + p);
      to[3 * r + 1] += float(0.5 * (t[r][1] - t[r][2]));
      to[3 * r + 2] += float(p + t[r][3]);
    }
  }
}

void correlate_weight_grad(float* dweight, const float* dout, const float* src, const Wcorr& d) {
  const GradDims D = grad_dims(d);
  if (cpu_isa() == CpuIsa::avx512) {
    const Layout L = layout_of(d.N, d.P, d.Q);
    weight_grad_passes(dweight, d, D, ceil_div(L.vectors, kNV),
                       [&](float* sums, int64_t gi, int64_t i, int64_t c_lo, int64_t cn,
                           float* vt, float* et) {
                         grad_item(sums, dout, src, d, L, D, gi, i * kNV, c_lo, cn, vt, et);
                       },
                       finish_weight_grad);
    return;
  }
  const Layout L = layout_of(d.N, d.P, d.Q, kLanes2);
  weight_grad_passes(dweight, d, D, ceil_div(L.vectors, kNV2),
                     [&](float* sums, int64_t gi, int64_t i, int64_t c_lo, int64_t cn,
                         float* vt, float* et) {
                       grad_item2(sums, dout, src, d, L, D, gi, i * kNV2, c_lo, cn, vt, et);
                     },
                     finish_weight_grad_scalar);
}

// Whether the Layout of N planes of P x Q outputs is worth running: rows that fill the lanes,
// or flat vectors whose blocks fill 3/4 of the lanes with outputs (a 7x7 plane's 16 blocks hold
// 49 of 64) and whose 32-bit offsets reach across a vector's images (as many as its lanes) of
// in_image and out_image floats.
bool layout_fits(const Layout& L, int64_t N, int64_t P, int64_t Q, int64_t in_image,
                 int64_t out_image) {
  return !L.flat || (4 * N * P * Q >= 3 * 4 * L.lanes * L.vectors &&
                     L.lanes * std::max(in_image, out_image) <= int64_t(INT32_MAX));
}

// Whether a[0 .. n) holds no infinity or NaN: the weight gradient's inputs, checked before its
// sums are added into dweight (correlate checks the outputs it writes instead). An exponent
// of all ones is either; OR-ing them is an integer reduction the compiler vectorises.
__attribute__((always_inline)) inline bool all_finite_loop(const float* a, int64_t n) {
  uint32_t any = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, a + i, sizeof(b));
    any |= uint32_t((b & 0x7F800000u) == 0x7F800000u);
  }
  return any == 0;
}

FC_AVX512 bool all_finite_avx512(const float* a, int64_t n) { return all_finite_loop(a, n); }
FC_AVX2 bool all_finite_avx2(const float* a, int64_t n) { return all_finite_loop(a, n); }

bool all_finite_part(const float* a, int64_t n) {
  return cpu_isa() == CpuIsa::avx512 ? all_finite_avx512(a, n) : all_finite_avx2(a, n);
}

bool all_finite(const float* a, int64_t n, bool parallel) {
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t chunks = ceil_div(n, kChunk);
  bool ok = true;
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (parallel) \
    reduction(&& : ok)
  for (int64_t i = 0; i < chunks; ++i) {
    ok = all_finite_part(a + i * kChunk, std::min(kChunk, n - i * kChunk)) && ok;
  }
  return ok;
}

}  // namespace

bool conv2d_winograd_applies(ConvPass pass, const Conv2dGeom& g) {
  const bool avx2 = cpu_isa() == CpuIsa::avx2;
  if (cpu_isa() != CpuIsa::avx512 && !avx2) return false;
  if (g.R != 3 || g.S != 3 || g.stride_h != 1 || g.stride_w != 1 || g.dil_h != 1 || g.dil_w != 1) {
    return false;
  }
  if (pass == ConvPass::grad_weight) {
    // The items' blocks must fill 3/4 of their GEMMs' 64 steps: 512 x 512 channels at 4x4
    // took 17.8 ms at batch 4 (16 blocks) against the batched GEMM's 4.5, 43 against 74 at
    // batch 64. dy's gathers reach 16 planes in 32-bit offsets.
    const int64_t C = g.Cg(), K = g.Kg();
    if (!(C >= 16 && K >= 16 && C + K >= 48 && K <= 512 && g.P >= 2 &&
          kLanes * g.PQ() <= int64_t(INT32_MAX))) {
      return false;
    }
    if (avx2) {
      // Measured against the direct tiles under AVX2, two threads: 64 x 64 at 56x56 1.3x
      // faster, 128 and 256 channels 1.1x; 16 -> 32 and 32 -> 32 1.4-1.6x slower (8-lane
      // vectors leave the transforms and dy's gathers a larger share), 512 x 512 2.4x slower.
      const Layout L = layout_of(g.N, g.P, g.Q, kLanes2);
      return C >= 64 && K >= 64 && C <= 256 && K <= 256 && 4 * L.blocks >= 3 * kNV * kLanes &&
             layout_fits(L, g.N, g.P, g.Q, g.C * g.HW(), g.K * g.PQ());
    }
    const Layout L = layout_of(g.N, g.P, g.Q);
    return 4 * L.blocks >= 3 * kNV * kLanes &&
           layout_fits(L, g.N, g.P, g.Q, g.C * g.HW(), g.K * g.PQ());
  }
  // The pass's correlation: C channels read, K written, on output planes of P x Q.
  const bool fwd = pass == ConvPass::forward;
  const int64_t C = fwd ? g.Cg() : g.Kg(), K = fwd ? g.Kg() : g.Cg();
  const int64_t P = fwd ? g.P : g.H, Q = fwd ? g.Q : g.W;
  // The transforms cost a few multiply-adds per channel and block, where the GEMMs spend 16 per
  // pair of channels: at 16 channels in and out they match the direct tiles (one thread, batch
  // 16 at 28x28: 0.42 against 0.47 ms, 8 images at 56x56: 1.09 against 0.97), with 32 on one
  // side they win by 1.15-1.3x, and at 64 by 1.5-2x. An item's transformed blocks take 4 KiB
  // per input channel (2 MiB at 512), and each item streams all the transformed weights (64 B
  // per pair of channels, 17 MB at 512 x 512) in runs of 64 input channels, which the
  // prefetchers keep up with: ResNet's 512 x 512 layers ran 1.2x (4x4, batch 16) to 1.9x
  // (32x32) faster than the direct tiles.
  if (C < 16 || K < 16 || C + K < 48 || C > 512 || K > 512 || P < 2) return false;
  if (avx2) {
    const Layout L = layout_of(g.N, P, Q, kLanes2);
    return L.vectors >= kNV2 && layout_fits(L, g.N, P, Q, g.C * g.HW(), g.K * g.PQ());
  }
  // At least one item's worth of vectors (ResNet's 512 x 512 layer at 4x4 and batch 4, one
  // vector, took 3.4 ms against the batched GEMM's 2.2), two from 256 x 256 channels, whose
  // transformed weights (4 MB and more) one item does not repay. Two threads, against the
  // direct tiles: 512 x 512 at 4x4 and batch 16 (one item) 2.67 ms forward and 2.84 input
  // gradient against 2.37 and 2.55, at batch 32 (two) 3.58 and 3.75 against 3.88 and 4.21;
  // forward, 256 x 256 at 7x7 and batch 4 0.60 against 0.44, at 14x14 and batch 1 0.57
  // against 0.47; 128 x 128 at 14x14 and batch 2 0.24 and 0.23.
  const Layout L = layout_of(g.N, P, Q);
  const int64_t items = C * K >= (int64_t(1) << 16) ? 2 : 1;
  return L.vectors >= items * kNV && layout_fits(L, g.N, P, Q, g.C * g.HW(), g.K * g.PQ());
}

bool conv2d_winograd_forward(float* out, const float* inp, const float* weight, const float* bias,
                             const Conv2dGeom& g, bool parallel) {
  const int64_t C = g.Cg(), K = g.Kg();
  const Wcorr d{g.N, g.groups, C, K, g.H, g.W, g.P, g.Q, g.pad_t, g.pad_l, parallel};
  return (cpu_isa() == CpuIsa::avx512 ? correlate : correlate2)(
      out, inp, bias, d, Wmap{weight, K * C * 9, C * 9, 9, 1});
}

bool conv2d_winograd_backward_data(float* dinp, const float* dout, const float* weight,
                                   const Conv2dGeom& g, bool parallel) {
  // dx[c, h, w] = sum over (k, r, s) of dy[k, h + pt - r, w + pl - s] * W[k, c, r, s]: with
  // r' = 2 - r, the correlation of dy (offset 2 - pt) with the flipped kernel, its roles of
  // channels swapped.
  const int64_t C = g.Cg(), K = g.Kg();
  const Wcorr d{g.N, g.groups, K, C, g.P, g.Q, g.H, g.W, 2 - g.pad_t, 2 - g.pad_l, parallel};
  return (cpu_isa() == CpuIsa::avx512 ? correlate : correlate2)(
      dinp, dout, nullptr, d, Wmap{weight + 8, K * C * 9, 9, C * 9, -1});
}

bool conv2d_winograd_backward_weight(float* dweight, const float* dout, const float* inp,
                                     const Conv2dGeom& g, bool parallel) {
  if (!all_finite(dout, g.N * g.K * g.PQ(), parallel) ||
      !all_finite(inp, g.N * g.C * g.HW(), parallel)) {
    return false;
  }
  const Wcorr d{g.N, g.groups, g.Cg(), g.Kg(), g.H, g.W, g.P, g.Q, g.pad_t, g.pad_l, parallel};
  correlate_weight_grad(dweight, dout, inp, d);
  return true;
}

#else

bool conv2d_winograd_applies(ConvPass, const Conv2dGeom&) { return false; }
// Never called: conv2d_winograd_applies says no.
bool conv2d_winograd_forward(float*, const float*, const float*, const float*, const Conv2dGeom&,
                             bool) {
  return false;
}
bool conv2d_winograd_backward_data(float*, const float*, const float*, const Conv2dGeom&, bool) {
  return false;
}
bool conv2d_winograd_backward_weight(float*, const float*, const float*, const Conv2dGeom&, bool) {
  return false;
}

#endif

}  // namespace fc
