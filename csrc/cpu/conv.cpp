// conv2d on the CPU: im2col + one GEMM per (image, block of output rows, group), a 1x1 path
// that hands the input to the GEMM directly, a window over the whole input as a linear layer
// (dense.h), and for small planes one GEMM over a chunk of images side by side
// (small_planes); float32 tries Winograd (conv_winograd.h) and the direct convolution
// (conv_direct.h) first. OpenMP splits the (image, row block) items; each thread owns an im2col
// workspace of at most kColBudgetBytes (or one output row) and calls the single-threaded BLAS.
// Weight gradients go to one accumulator per part of the items (as many parts as threads, cut
// the same whoever runs them) summed in a fixed order, so results depend on the thread count
// set but never on timing or on the team OpenMP actually gives.
// conv_transpose2d runs these kernels on the equivalent conv2d (geometry.h): its forward is
// conv2d's data gradient, its data gradient conv2d's forward and its weight gradient conv2d's
// with input and output swapped. unfold and fold are im2col and col2im over a whole batch.
#include "conv.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "blas.h"
#include "cpu/conv_depthwise.h"
#include "cpu/conv_direct.h"
#include "cpu/conv_rows.h"
#include "cpu/conv_winograd.h"
#include "cpu/im2col.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/run_sum.h"
#include "dense.h"

namespace fc {
namespace {

// Output rows are processed in blocks: small enough for the workspace budget, and numerous
// enough that N * count feeds every thread even for batch 1.
struct RowBlocks {
  int64_t rows, count;
  int64_t workspace;  // im2col elements per thread; 0 on the 1x1 path
};

template <typename T>
RowBlocks row_blocks(const Conv2dGeom& g, int threads) {
  // C*R*S and Q are at most 2^31 - 1 (geometry.h), so a row's elements fit in int64; its bytes
  // may not, hence mul_sat.
  const int64_t row_elems = g.direct_1x1() ? 0 : g.C * g.RS() * g.Q;
  const int64_t bytes_per_row = mul_sat(row_elems, sizeof(T));
  int64_t rows = bytes_per_row > 0 ? std::max<int64_t>(1, kColBudgetBytes / bytes_per_row) : g.P;
  rows = std::min(rows, g.P);
  if (g.N * ceil_div(g.P, rows) < threads) {
    rows = std::min(rows, ceil_div(g.P, ceil_div(threads, std::max<int64_t>(g.N, 1))));
  }
  return {rows, ceil_div(g.P, rows), row_elems * rows};
}

// Multiply-adds below which a pass runs on the calling thread: waking the team costs more.
constexpr int64_t kParallelMacs = int64_t(1) << 18;

bool worth_threads(const Conv2dGeom& g) {
  // In double: the count of a large layer's multiply-adds may exceed int64.
  return double(g.N) * double(g.K) * double(g.PQ()) * double(g.Cg() * g.RS()) >=
         double(kParallelMacs);
}

// `per_thread` elements for each of `threads` threads, allocated before the parallel region
// (an exception must not leave one); thread t's part starts at t * per_thread.
template <typename T>
std::unique_ptr<T[]> thread_workspaces(int64_t per_thread, int threads, const char* what) {
  return alloc_uninit<T>(mul_sat(threads, per_thread), what);
}

// The columns of work item i (image n, output rows [p0, p1)) for forward and weight-gradient:
// the input itself on the 1x1 path, else im2col into the thread's workspace.
template <typename T>
struct ColBlock {
  int64_t n, p0, L;  // image, first output row, columns (output pixels) in the block
  const T* cols;     // [C*R*S, L] with row stride ld
  int64_t ld;
};

template <typename T>
ColBlock<T> col_block(int64_t i, const RowBlocks& b, const T* inp, T* col, const Conv2dGeom& g) {
  const int64_t n = i / b.count, p0 = (i % b.count) * b.rows, p1 = std::min(g.P, p0 + b.rows);
  const int64_t L = (p1 - p0) * g.Q;
  const T* x = inp + n * g.C * g.HW();
  if (g.direct_1x1()) return {n, p0, L, x + p0 * g.Q, g.HW()};
  im2col_cpu(col, x, g, 0, g.C, p0, p1);
  return {n, p0, L, col, L};
}

// Small output planes (ResNet's last stages, LeNet's C5): a GEMM per image has P*Q columns,
// too few for the BLAS to run near its peak, and the direct tiles too few pixels to hide the
// weights' loads. Instead the images of a chunk sit side by side, [C*R*S, images * P*Q], and
// each pass is one large GEMM split into a block of rows or columns per thread
// (blas::gemm_parallel). Chunks are fixed by the geometry alone; as on the other BLAS paths,
// the blocks (and so the last bits) follow the thread count. Fixed blocks would keep the bits
// but cost 20-60 % here: each block packs the whole other operand again.
constexpr int64_t kSmallPlane = 16;                         // P*Q at most
constexpr int64_t kSmallBudgetBytes = int64_t(64) << 20;    // columns (and gradients) per chunk

bool small_planes(const Conv2dGeom& g) {
  return g.groups == 1 && g.N >= 2 && g.PQ() <= kSmallPlane && g.C * g.RS() >= 32;
}

// Images per chunk: as many as the budget takes (at least one).
template <typename T>
int64_t small_chunk(const Conv2dGeom& g) {
  const int64_t per_image = mul_sat(std::max(g.C * g.RS(), g.K) * g.PQ(), sizeof(T));
  return std::clamp<int64_t>(kSmallBudgetBytes / std::max<int64_t>(per_image, 1), 1, g.N);
}

// cols[C*R*S, m*PQ] = the windows of images [n0, n0 + m), side by side.
template <typename T>
void batch_im2col(T* cols, const T* inp, const Conv2dGeom& g, int64_t n0, int64_t m,
                  bool parallel) {
  const int64_t ld = m * g.PQ();
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (parallel)
  for (int64_t i = 0; i < m; ++i) {
    im2col_cpu(cols + i * g.PQ(), inp + (n0 + i) * g.C * g.HW(), g, 0, g.C, 0, g.P, ld);
  }
}

// dy[K, m*PQ] = dout of images [n0, n0 + m), side by side.
template <typename T>
void batch_gather(T* dy, const T* dout, const Conv2dGeom& g, int64_t n0, int64_t m,
                  bool parallel) {
  const int64_t PQ = g.PQ(), ld = m * PQ;
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (parallel)
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t k = 0; k < g.K; ++k) {
      std::copy_n(dout + ((n0 + i) * g.K + k) * PQ, PQ, dy + k * ld + i * PQ);
    }
  }
}

template <typename T>
void small_forward(T* out, const T* inp, const T* weight, const T* bias, const Conv2dGeom& g) {
  const int64_t CRS = g.C * g.RS(), PQ = g.PQ(), chunk = small_chunk<T>(g);
  const bool par = worth_threads(g);
  const auto cols = alloc_uninit<T>(CRS * chunk * PQ, "conv2d_forward_cpu: batched columns");
  const auto ys = alloc_uninit<T>(g.K * chunk * PQ, "conv2d_forward_cpu: batched outputs");
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t m = std::min(chunk, g.N - n0), ld = m * PQ;
    batch_im2col(cols.get(), inp, g, n0, m, par);
    blas::gemm_parallel(false, false, g.K, ld, CRS, T(1), weight, CRS, cols.get(), ld, T(0),
                        ys.get(), ld);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (par)
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t k = 0; k < g.K; ++k) {
        const T* y = ys.get() + k * ld + i * PQ;
        T* o = out + ((n0 + i) * g.K + k) * PQ;
        const T b = bias ? bias[k] : T(0);
        for (int64_t e = 0; e < PQ; ++e) o[e] = y[e] + b;
      }
    }
  }
}

// The input and/or weight gradient (either may be null) of a small-plane convolution, from one
// gather of dout per chunk. The input gradient comes here only when the direct path declines
// it (strides, float64): at stride 1 its grouped-row tiles are faster.
template <typename T>
void small_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight,
                    const Conv2dGeom& g) {
  const int64_t CRS = g.C * g.RS(), PQ = g.PQ(), HW = g.HW(), chunk = small_chunk<T>(g);
  const bool par = worth_threads(g);
  const auto dy = alloc_uninit<T>(g.K * chunk * PQ, "conv2d_backward_cpu: batched grad_output");
  const auto cols = alloc_uninit<T>(CRS * chunk * PQ, "conv2d_backward_cpu: batched columns");
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t m = std::min(chunk, g.N - n0), ld = m * PQ;
    batch_gather(dy.get(), dout, g, n0, m, par);
    if (dinp) {
      // cols[C*R*S, m*PQ] = W[K, C*R*S]^T · dy[K, m*PQ], then back onto the images
      blas::gemm_parallel(true, false, CRS, ld, g.K, T(1), weight, CRS, dy.get(), ld, T(0),
                          cols.get(), ld);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (par)
      for (int64_t i = 0; i < m; ++i) {
        T* dx = dinp + (n0 + i) * g.C * HW;
        std::fill(dx, dx + g.C * HW, T(0));
        col2im_cpu(dx, cols.get() + i * PQ, g, 0, g.C, 0, g.P, ld);
      }
    }
    if (dweight) {
      // dW[K, C*R*S] += dy[K, m*PQ] · cols[C*R*S, m*PQ]^T
      batch_im2col(cols.get(), inp, g, n0, m, par);
      blas::gemm_parallel(false, true, g.K, CRS, ld, T(1), dy.get(), ld, cols.get(), ld, T(1),
                          dweight, CRS);
    }
  }
}

// The algorithm a pass of conv2d on g takes in dtype T, first that applies: depthwise layers
// their stencil; a whole-window layer a linear one; Winograd F(2x2, 3x3) for 3x3 layers at
// stride 1 (float32 under AVX-512 and AVX2, cpu/conv_winograd.h); the direct tiles (float32,
// cpu/conv_direct.h: on small planes they put several rows side by side and beat the batched
// GEMM forward and, at stride 1, input gradient; the weight gradient of small planes stays with
// the batched GEMM; under AVX-512 with a BLAS on narrower kernels, a 1x1 layer's passes and
// the weight gradient of 9 to 15 taps too);
// the batched GEMM for small planes; else one GEMM per image (the 1x1 layer read in place,
// others through im2col). The kernels below and conv2d_algorithm_cpu both ask
// this.
enum class ConvAlgo { depthwise, linear, winograd, rows, direct, batched_gemm, gemm };

// A window covering the whole unpadded input, one output pixel (LeNet's C5, a classifier head
// written as a convolution): each image is then a vector in the weight rows' (c, r, s) order,
// and the layer is a linear one on the flattened batch, one GEMM per pass reading the arrays in
// place. The small-plane path gathered, unfolded and folded them per chunk of images: C5's
// backward at batch 64 took 0.60 ms on one thread, the GEMMs 0.10.
bool whole_window(const Conv2dGeom& g) {
  return g.groups == 1 && g.P == 1 && g.Q == 1 && g.H == g.R && g.W == g.S && g.dil_h == 1 &&
         g.dil_w == 1 && g.pad_t == 0 && g.pad_b == 0 && g.pad_l == 0 && g.pad_r == 0 &&
         g.N <= int64_t(INT32_MAX);
}

template <typename T>
ConvAlgo conv_algo(ConvPass pass, const Conv2dGeom& g) {
  if (depthwise_applies(g)) return ConvAlgo::depthwise;
  if (whole_window(g)) return ConvAlgo::linear;
  if (std::is_same_v<T, float> && conv2d_winograd_applies(pass, g)) return ConvAlgo::winograd;
  if (std::is_same_v<T, float> && pass == ConvPass::forward && conv2d_rows_applies(g)) {
    return ConvAlgo::rows;
  }
  if (std::is_same_v<T, float> && conv2d_direct_applies(pass, g)) return ConvAlgo::direct;
  return small_planes(g) ? ConvAlgo::batched_gemm : ConvAlgo::gemm;
}

// The input gradient's columns per thread, at most (one output row always): the GEMM writes
// them and col2im reads them back, so they stay in L2 beside the rows col2im adds into.
// With kColBudgetBytes (8 MiB: all 55 rows at once), AlexNet conv1's took 8 % more time (one
// thread, 12.0 against 11.0 ms).
constexpr int64_t kDcolBudgetBytes = int64_t(1) << 20;

// A 1x1 layer without padding at a stride above 1: it reads every stride-th row and column,
// and its input gradient is zero elsewhere.
bool strided_1x1(const Conv2dGeom& g) {
  return g.R == 1 && g.S == 1 && (g.stride_h > 1 || g.stride_w > 1) && g.pad_t == 0 &&
         g.pad_b == 0 && g.pad_l == 0 && g.pad_r == 0;
}

// The unit-stride 1x1 layer on the pixels a strided one reads.
Conv2dGeom unit_stride(const Conv2dGeom& g) {
  Conv2dGeom u = g;
  u.H = g.P, u.W = g.Q, u.stride_h = u.stride_w = 1;
  return u;
}

// The pixels a strided 1x1 layer reads, planes of P x Q.
template <typename T>
std::unique_ptr<T[]> strided_pixels(const T* inp, const Conv2dGeom& g, const char* what) {
  const int64_t planes = g.N * g.C, PQ = g.PQ();
  auto sub = alloc_uninit<T>(mul_sat(planes, PQ), what);
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (worth_threads(g))
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* x = inp + pl * g.HW();
    T* s = sub.get() + pl * PQ;
    for (int64_t p = 0; p < g.P; ++p) {
      const T* row = x + p * g.stride_h * g.W;
      for (int64_t q = 0; q < g.Q; ++q) s[p * g.Q + q] = row[q * g.stride_w];
    }
  }
  return sub;
}

template <typename T>
void backward_data(T* dinp, const T* dout, const T* weight, const Conv2dGeom& g);

// A strided 1x1 layer's input gradient: the unit-stride layer's on the pixels it reads (one
// GEMM per image in place, or the direct tiles), spread onto the frame, zeros between. Through
// im2col + GEMM and col2im every pixel of the frame went through the columns: ResNet's
// 256 -> 512 downsampling at 14x14, batch 16, two threads, 1.24 -> 0.58 ms (PyTorch 1.0-1.2),
// 64 -> 128 at 56x56 1.41 -> 0.80.
template <typename T>
void strided_1x1_backward_data(T* dinp, const T* dout, const T* weight, const Conv2dGeom& g) {
  const int64_t planes = g.N * g.C, PQ = g.PQ();
  const auto sub = alloc_uninit<T>(mul_sat(planes, PQ),
                                   "conv2d_backward_cpu (grad_input): strided 1x1 pixels");
  backward_data(sub.get(), dout, weight, unit_stride(g));
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (worth_threads(g))
  for (int64_t pl = 0; pl < planes; ++pl) {
    T* dx = dinp + pl * g.HW();
    const T* s = sub.get() + pl * PQ;
    std::fill(dx, dx + g.HW(), T(0));
    for (int64_t p = 0; p < g.P; ++p) {
      T* row = dx + p * g.stride_h * g.W;
      for (int64_t q = 0; q < g.Q; ++q) row[q * g.stride_w] = s[p * g.Q + q];
    }
  }
}

template <typename T>
void backward_data(T* dinp, const T* dout, const T* weight, const Conv2dGeom& g) {
  if (strided_1x1(g)) return strided_1x1_backward_data(dinp, dout, weight, g);
  switch (conv_algo<T>(ConvPass::grad_input, g)) {
    case ConvAlgo::depthwise: return depthwise_backward_data(dinp, dout, weight, g);
    case ConvAlgo::winograd:
      if constexpr (std::is_same_v<T, float>) {
        if (conv2d_winograd_backward_data(dinp, dout, weight, g, worth_threads(g))) return;
      }
      break;  // an infinity or NaN: the GEMM path
    case ConvAlgo::direct:
      if constexpr (std::is_same_v<T, float>) {
        conv2d_direct_backward_data(dinp, dout, weight, g, worth_threads(g));
      }
      return;
    case ConvAlgo::linear:
      return linear_backward_cpu<T>(dinp, nullptr, nullptr, dout, nullptr, weight, g.N,
                                    g.C * g.RS(), g.K);
    case ConvAlgo::batched_gemm:
      return small_backward<T>(dinp, nullptr, dout, nullptr, weight, g);
    case ConvAlgo::rows:  // a forward-only path
    case ConvAlgo::gemm: break;
  }
  const bool direct = g.direct_1x1();
  const int64_t Cg = g.Cg(), Kg = g.Kg(), RS = g.RS(), CgRS = Cg * RS, PQ = g.PQ(), HW = g.HW();
  const int threads = max_threads();
  // Items are (image, group, channel chunk): col2im of a chunk writes only its own channels,
  // so threads never touch the same pixels even when one image is split.
  int64_t chunk = Cg;
  if (g.N * g.groups < threads) chunk = ceil_div(Cg, ceil_div(threads, g.N * g.groups));
  const int64_t chunks = ceil_div(Cg, chunk);
  const int64_t rows = std::clamp<int64_t>(
      kDcolBudgetBytes / std::max<int64_t>(1, mul_sat(chunk * RS * g.Q, sizeof(T))), 1, g.P);
  const int64_t items = g.N * g.groups * chunks;
  const int64_t dcol_size = direct ? 0 : chunk * RS * rows * g.Q;
  const auto dcols = thread_workspaces<T>(dcol_size, threads,
                                          "conv2d_backward_cpu (grad_input): col2im workspace");
  // Strided layers sum into phase-split rows (im2col.h's col2im_phased).
  const bool phased = !direct && g.stride_w > 1;
  const int64_t len = phased ? phase_len(g) : 0, split_size = chunk * g.H * g.stride_w * len;
  const auto splits = thread_workspaces<T>(split_size, threads,
                                           "conv2d_backward_cpu (grad_input): phase-split rows");
#pragma omp parallel num_threads(threads) if (worth_threads(g))
  {
    T* dcol = dcols.get() + thread_id() * dcol_size;
    T* split = splits.get() + thread_id() * split_size;
    // Taken as threads come free (conv_direct.cpp's correlate).
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < items; ++i) {
      const int64_t n = i / (g.groups * chunks), gi = (i / chunks) % g.groups, ch = i % chunks;
      const int64_t c0 = gi * Cg + ch * chunk, c1 = std::min(gi * Cg + Cg, c0 + chunk), nc = c1 - c0;
      const T* dy = dout + (n * g.K + gi * Kg) * PQ;
      const T* w = weight + gi * Kg * CgRS + (c0 - gi * Cg) * RS;
      T* dx = dinp + n * g.C * HW;
      if (direct) {
        // dx[c0:c1, HW] = W_g[Kg, c0:c1]^T · dy[Kg, HW]
        blas::gemm(true, false, nc, PQ, Kg, T(1), w, CgRS, dy, PQ, T(0), dx + c0 * HW, HW);
        continue;
      }
      if (phased) {
        std::fill(split, split + nc * g.H * g.stride_w * len, T(0));
      } else {
        std::fill(dx + c0 * HW, dx + c1 * HW, T(0));
      }
      for (int64_t p0 = 0; p0 < g.P; p0 += rows) {
        const int64_t p1 = std::min(g.P, p0 + rows), L = (p1 - p0) * g.Q;
        // dcol[(c0:c1)*R*S, L] = W_g[Kg, (c0:c1)*R*S]^T · dy[Kg, p0*Q : p1*Q]
        blas::gemm(true, false, nc * RS, L, Kg, T(1), w, CgRS, dy + p0 * g.Q, PQ, T(0), dcol, L);
        if (phased) {
          with_isa([&] { col2im_phased(split, dcol, g, c0, c1, p0, p1, len); });
        } else {
          col2im_cpu(dx, dcol, g, c0, c1, p0, p1);
        }
      }
      if (phased) with_isa([&] { unsplit_phases(dx, split, g, c0, c1, len); });
    }
  }
}

template <typename T>
bool backward_weight(T* dweight, T* dbias, const T* dout, const T* inp, const Conv2dGeom& g);

// A strided 1x1 layer's weight gradient: the unit-stride layer's on the pixels it reads,
// gathered once (the direct tiles' buffers copied the whole frame, for each thread): ResNet's
// downsampling at batch 16, two threads, 256 -> 512 at 14x14 0.78-1.08 -> 0.65-0.72 ms, 64 ->
// 128 at 56x56 1.06-1.18 -> 0.80-0.93.
template <typename T>
bool strided_1x1_backward_weight(T* dweight, T* dbias, const T* dout, const T* inp,
                                 const Conv2dGeom& g) {
  const auto sub = strided_pixels(inp, g, "conv2d_backward_cpu (grad_weight): strided 1x1 pixels");
  return backward_weight(dweight, dbias, dout, sub.get(), unit_stride(g));
}

// dweight += the weight gradient; where the algorithm reads dy's planes whole on its way (the
// depthwise and direct ones), dbias (unless null) += the bias gradient too, channel_sums's
// bits, and the result says so: a pass of its own read dy again (two threads: a 1 -> 64 3x3
// first layer at 28x28, batch 64, 12.8 MB of dy, weight and bias gradients 0.76-0.92 -> 0.58-0.61
// ms; fashion_cnn conv2 at batch 256 3.60-3.66 -> 3.31-3.34).
template <typename T>
bool backward_weight(T* dweight, T* dbias, const T* dout, const T* inp, const Conv2dGeom& g) {
  if (strided_1x1(g)) return strided_1x1_backward_weight(dweight, dbias, dout, inp, g);
  switch (conv_algo<T>(ConvPass::grad_weight, g)) {
    case ConvAlgo::depthwise:
      depthwise_backward_weight(dweight, dbias, dout, inp, g);
      return true;
    case ConvAlgo::direct:
      if constexpr (std::is_same_v<T, float>) {
        return conv2d_direct_backward_weight(dweight, dbias, dout, inp, g, worth_threads(g));
      }
      return false;
    case ConvAlgo::linear:
      linear_backward_cpu<T>(nullptr, dweight, nullptr, dout, inp, nullptr, g.N, g.C * g.RS(),
                             g.K);
      return false;
    case ConvAlgo::batched_gemm:
      small_backward<T>(nullptr, dweight, dout, inp, nullptr, g);
      return false;
    case ConvAlgo::winograd:
      if constexpr (std::is_same_v<T, float>) {
        if (conv2d_winograd_backward_weight(dweight, dout, inp, g, worth_threads(g))) {
          return false;
        }
      }
      break;  // an infinity or NaN: the GEMM path
    case ConvAlgo::rows:  // a forward-only path
    case ConvAlgo::gemm: break;
  }
  const int64_t Kg = g.Kg(), CgRS = g.Cg() * g.RS(), PQ = g.PQ();
  const int64_t wsize = g.K * CgRS;
  const int threads = max_threads();
  const RowBlocks b = row_blocks<T>(g, threads);
  const int64_t items = g.N * b.count;
  // Part p of the items adds into acc[p]: the partition is fixed by `threads`, so a smaller
  // team (or none, below worth_threads) runs several parts and gets the same bits.
  const auto acc = thread_workspaces<T>(wsize, threads,
                                        "conv2d_backward_cpu (grad_weight): per-part sums");
  const auto cols = thread_workspaces<T>(b.workspace, threads,
                                         "conv2d_backward_cpu (grad_weight): im2col workspace");
#pragma omp parallel num_threads(threads) if (worth_threads(g))
  {
    T* col = cols.get() + thread_id() * b.workspace;
#pragma omp for schedule(static)
    for (int p = 0; p < threads; ++p) {
      T* mine = acc.get() + p * wsize;
      std::fill(mine, mine + wsize, T(0));
      const int64_t i1 = part_begin(items, threads, p + 1);
      for (int64_t i = part_begin(items, threads, p); i < i1; ++i) {
        const ColBlock<T> c = col_block(i, b, inp, col, g);
        const T* dy = dout + c.n * g.K * PQ + c.p0 * g.Q;
        for (int64_t gi = 0; gi < g.groups; ++gi) {
          // dW_g[Kg, Cg*R*S] += dy_g[Kg, L] · col_g[Cg*R*S, L]^T
          blas::gemm(false, true, Kg, CgRS, c.L, T(1), dy + gi * Kg * PQ, PQ,
                     c.cols + gi * CgRS * c.ld, c.ld, T(1), mine + gi * Kg * CgRS, CgRS);
        }
      }
    }
  }
#pragma omp parallel for schedule(static) num_threads(threads) if (worth_threads(g))
  for (int64_t e = 0; e < wsize; ++e) {
    T s = dweight[e];
    for (int p = 0; p < threads; ++p) s += acc[p * wsize + e];
    dweight[e] = s;
  }
  return false;
}

// dbias[C] += sum over images and pixels of dout[N, C, HW]: sums of N*HW terms, accumulated
// in double so float32 keeps its precision, each plane's in vector lanes (one running sum
// took a tenth of fashion_cnn conv2's backward); one channel per thread, so the order is fixed.
template <typename T>
void channel_sums(T* dbias, const T* dout, int64_t N, int64_t C, int64_t HW, bool parallel) {
#pragma omp parallel for schedule(static) num_threads(max_threads()) if (parallel)
  for (int64_t c = 0; c < C; ++c) {
    with_isa([&] {
      double s = 0;
      for (int64_t n = 0; n < N; ++n) s += run_sum(dout + (n * C + c) * HW, HW);
      dbias[c] += T(s);
    });
  }
}

// Elements below which conv_transpose2d's bias passes stay on the calling thread.
constexpr int64_t kParallelMinElems = int64_t(1) << 15;

}  // namespace

template <typename T>
void conv2d_forward_cpu(T* out, const T* inp, const T* weight, const T* bias, const Conv2dGeom& g) {
  if (g.N == 0) return;
  // A strided 1x1 layer: the unit-stride layer on the pixels it reads, gathered once (ResNet's
  // downsampling at batch 16, two threads: 64 -> 128 at 56x56 0.80-0.98 -> 0.71-0.73 ms, 256
  // -> 512 at 14x14 0.59 -> 0.54; at batch 64 and 7x7, 0.71-0.73 and 0.73-0.75, even).
  if (strided_1x1(g)) {
    const auto sub = strided_pixels(inp, g, "conv2d (strided 1x1): pixels");
    return conv2d_forward_cpu(out, sub.get(), weight, bias, unit_stride(g));
  }
  switch (conv_algo<T>(ConvPass::forward, g)) {
    case ConvAlgo::depthwise: return depthwise_forward(out, inp, weight, bias, g);
    case ConvAlgo::linear:
      return linear_forward_cpu<T>(out, inp, weight, bias, g.N, g.C * g.RS(), g.K);
    case ConvAlgo::winograd:
      if constexpr (std::is_same_v<T, float>) {
        if (conv2d_winograd_forward(out, inp, weight, bias, g, worth_threads(g))) return;
      }
      break;  // an infinity or NaN: the GEMM path
    case ConvAlgo::rows:
      if constexpr (std::is_same_v<T, float>) {
        conv2d_rows_forward(out, inp, weight, bias, g, worth_threads(g));
      }
      return;
    case ConvAlgo::direct:
      if constexpr (std::is_same_v<T, float>) {
        conv2d_direct_forward(out, inp, weight, bias, g, worth_threads(g));
      }
      return;
    case ConvAlgo::batched_gemm: return small_forward(out, inp, weight, bias, g);
    case ConvAlgo::gemm: break;
  }
  const int64_t Kg = g.Kg(), CgRS = g.Cg() * g.RS(), PQ = g.PQ();
  const int threads = max_threads();
  const RowBlocks b = row_blocks<T>(g, threads);
  const int64_t items = g.N * b.count;
  const auto cols = thread_workspaces<T>(b.workspace, threads,
                                         "conv2d_forward_cpu: im2col workspace");
#pragma omp parallel num_threads(threads) if (worth_threads(g))
  {
    T* col = cols.get() + thread_id() * b.workspace;
    // Taken as threads come free (conv_direct.cpp's correlate).
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < items; ++i) {
      const ColBlock<T> c = col_block(i, b, inp, col, g);
      T* y = out + c.n * g.K * PQ + c.p0 * g.Q;
      if (bias) {
        for (int64_t k = 0; k < g.K; ++k) std::fill(y + k * PQ, y + k * PQ + c.L, bias[k]);
      }
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        // y_g[Kg, L] = W_g[Kg, Cg*R*S] · col_g[Cg*R*S, L] (+ y_g, preloaded with the bias)
        blas::gemm(false, false, Kg, c.L, CgRS, T(1), weight + gi * Kg * CgRS, CgRS,
                   c.cols + gi * CgRS * c.ld, c.ld, bias ? T(1) : T(0), y + gi * Kg * PQ, PQ);
      }
    }
  }
}

template <typename T>
void conv2d_backward_cpu(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                         const T* weight, const Conv2dGeom& g) {
  if (g.N == 0) return;  // an empty batch: nothing to write, nothing to accumulate
  if (dinp) backward_data(dinp, dout, weight, g);
  const bool bias_done = dweight && backward_weight(dweight, dbias, dout, inp, g);
  if (dbias && !bias_done) channel_sums(dbias, dout, g.N, g.K, g.PQ(), worth_threads(g));
}

template <typename T>
std::array<const char*, 3> conv2d_algorithm_cpu(const Conv2dGeom& g) {
  std::array<const char*, 3> names{};
  const ConvPass passes[3] = {ConvPass::forward, ConvPass::grad_input, ConvPass::grad_weight};
  // A strided 1x1 layer's passes are the unit-stride layer's on the pixels it reads.
  const Conv2dGeom pg = strided_1x1(g) ? unit_stride(g) : g;
  for (int i = 0; i < 3; ++i) {
    switch (conv_algo<T>(passes[i], pg)) {
      case ConvAlgo::depthwise: names[i] = "depthwise"; break;
      case ConvAlgo::linear: names[i] = "linear"; break;
      case ConvAlgo::winograd: names[i] = "winograd"; break;
      case ConvAlgo::rows: names[i] = "direct_rows"; break;
      case ConvAlgo::direct: names[i] = "direct"; break;
      case ConvAlgo::batched_gemm: names[i] = "batched_gemm"; break;
      case ConvAlgo::gemm: names[i] = pg.direct_1x1() ? "gemm" : "im2col_gemm"; break;
    }
  }
  return names;
}

template std::array<const char*, 3> conv2d_algorithm_cpu<float>(const Conv2dGeom&);
template std::array<const char*, 3> conv2d_algorithm_cpu<double>(const Conv2dGeom&);

template <typename T>
void conv_transpose2d_forward_cpu(T* out, const T* inp, const T* weight, const T* bias,
                                  const Conv2dGeom& g) {
  // An empty batch has nothing to write (and conv2d's work split divides by N).
  if (g.N == 0) return;
  // out is the equivalent conv2d's input gradient for grad_output = inp.
  conv2d_backward_cpu<T>(out, nullptr, nullptr, inp, nullptr, weight, g);
  if (!bias) return;
  const int64_t HW = g.HW(), planes = g.N * g.C;
#pragma omp parallel for schedule(static) num_threads(max_threads()) \
    if (planes * HW >= kParallelMinElems)
  for (int64_t i = 0; i < planes; ++i) {
    T* y = out + i * HW;
    const T b = bias[i % g.C];
    for (int64_t j = 0; j < HW; ++j) y[j] += b;
  }
}

template <typename T>
void conv_transpose2d_backward_cpu(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                                   const T* weight, const Conv2dGeom& g) {
  // An empty batch adds nothing to dweight and dbias, and dx is empty.
  if (g.N == 0) return;
  // dx is the equivalent conv2d's forward of dy.
  if (dinp) conv2d_forward_cpu<T>(dinp, dout, weight, nullptr, g);
  // dW[C_in, C_out/groups, R, S] += the equivalent conv2d's weight gradient, whose input is dy
  // and whose output gradient is x.
  if (dweight) conv2d_backward_cpu<T>(nullptr, dweight, nullptr, inp, dout, weight, g);
  if (dbias) {
    channel_sums(dbias, dout, g.N, g.C, g.HW(), g.N * g.C * g.HW() >= kParallelMinElems);
  }
}

template <typename T>
void unfold_cpu(T* col, const T* inp, const Conv2dGeom& g) {
  const int64_t L = g.PQ(), items = g.N * g.C;
#pragma omp parallel for schedule(static) num_threads(max_threads()) \
    if (items * g.RS() * L >= (1 << 16))
  for (int64_t i = 0; i < items; ++i) {
    const int64_t n = i / g.C, c = i % g.C;
    im2col_cpu(col + (n * g.C + c) * g.RS() * L, inp + n * g.C * g.HW(), g, c, c + 1, 0, g.P);
  }
}

template <typename T>
void fold_cpu(T* out, const T* col, const Conv2dGeom& g) {
  const int64_t L = g.PQ(), items = g.N * g.C;
#pragma omp parallel for schedule(static) num_threads(max_threads()) \
    if (items * g.RS() * L >= (1 << 16))
  for (int64_t i = 0; i < items; ++i) {
    const int64_t n = i / g.C, c = i % g.C;
    T* img = out + n * g.C * g.HW();
    std::fill(img + c * g.HW(), img + (c + 1) * g.HW(), T(0));
    col2im_cpu(img, col + (n * g.C + c) * g.RS() * L, g, c, c + 1, 0, g.P);
  }
}

FC_CONV_OPS(FC_INSTANTIATE_CPU, float)
FC_CONV_OPS(FC_INSTANTIATE_CPU, double)

}  // namespace fc
