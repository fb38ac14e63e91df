// conv2d, conv_transpose2d, unfold and fold on the GPU. conv2d's three passes are implicit GEMMs (gemm.cuh) over
// the virtual im2col matrix, gathered from the arrays themselves, one GEMM per group:
//   forward  out[(n,p,q), k] = sum over (c,r,s) of x[n, c, p*sh-pt+r*dh, q*sw-pl+s*dw] W[k,c,r,s]
//   data     dx[(n,h,w), c]  = sum over (k,r,s) of dy[n, k, p, q] W[k,c,r,s] for the taps with
//                              h+pt-r*dh = p*sh and w+pl-s*dw = q*sw: a gather (no col2im), one
//                              stride phase at a time so that only those taps are visited
//   weight   dW[(c,r,s), k] += sum over (n,p,q) of x[n, c, ...] dy[n, k, p, q], split in chunks
// fold is a gather too: every output element is written by one thread, and no sum depends on
// timing. conv_transpose2d is these kernels on the equivalent conv2d (geometry.h), as on the
// CPU: forward is conv2d's data gradient (with the bias fused), data gradient conv2d's forward,
// weight gradient conv2d's with input and output swapped.
#include "conv.h"

#include <numeric>

#include "cuda/gemm.cuh"
#include "runtime.h"

namespace fc {
namespace cuda {

namespace {

// The geometry in the kernels' 32-bit terms, with the divisions they decode indices by.
struct Dims {
  int C, H, W, K, P, Q, Cg, Kg, R, S, sh, sw, dh, dw, pt, pl, HW, PQ, RS;
  FastDiv div_s, div_rs, div_q, div_pq, div_cg, div_kg;
};

Dims dims_of(const Conv2dGeom& g) {
  Dims d;
  d.C = int(g.C); d.H = int(g.H); d.W = int(g.W); d.K = int(g.K);
  d.P = int(g.P); d.Q = int(g.Q); d.Cg = int(g.Cg()); d.Kg = int(g.Kg());
  d.R = int(g.R); d.S = int(g.S);
  d.sh = int(g.stride_h); d.sw = int(g.stride_w); d.dh = int(g.dil_h); d.dw = int(g.dil_w);
  d.pt = int(g.pad_t); d.pl = int(g.pad_l);
  d.HW = int(g.HW()); d.PQ = int(g.PQ()); d.RS = int(g.RS());
  d.div_s = FastDiv(d.S); d.div_rs = FastDiv(d.RS);
  d.div_q = FastDiv(d.Q); d.div_pq = FastDiv(d.PQ);
  d.div_cg = FastDiv(d.Cg); d.div_kg = FastDiv(std::max(1, d.Kg));  // unfold/fold have no K
  return d;
}

// Forward: rows (n, p, q) of this launch's images, columns k of the group, reduction over
// (r, s, c), c fastest: a thread's consecutive k share a tap, so only the first is decoded. A
// row keeps its window's top-left corner; consecutive threads take consecutive rows, which
// read neighbouring pixels.
template <typename T>
struct ConvFwd {
  static constexpr bool kAMFast = true, kBNFast = false;
  int M = 0, Ncols = 0, Kred = 0, groups = 1, chunk = 0, mtiles = 0, ntiles = 0;
  int64_t total = 0;  // output elements of this launch
  Dims d{};
  const T* x = nullptr;
  const T* w = nullptr;
  const T* bias = nullptr;
  T* y = nullptr;
  T* partial = nullptr;

  struct ARow { int64_t base; int h0, w0; bool valid; };
  struct AKey { int c; int64_t coff; int r, s; };  // c, c*HW and the tap's offsets r*dh, s*dw
  struct BCol { int64_t off; bool valid; };
  struct ORow { int64_t off; };
  struct OCol { int64_t off; T bias; };

  __device__ ARow a_row(int grp, int m) const {
    int img, pq, p, q;
    d.div_pq.divmod(m, img, pq);
    d.div_q.divmod(pq, p, q);
    return {(int64_t(img) * d.C + int64_t(grp) * d.Cg) * d.HW, p * d.sh - d.pt, q * d.sw - d.pl,
            m < M};
  }
  __device__ AKey ak(int k) const {
    int tap, c, r, s;
    d.div_cg.divmod(k, tap, c);
    d.div_s.divmod(tap, r, s);
    return {c, int64_t(c) * d.HW, r * d.dh, s * d.dw};
  }
  __device__ AKey ak_step(const AKey& key, int k, int step) const {
    const int c = key.c + step;
    if (c < d.Cg) return {c, key.coff + int64_t(step) * d.HW, key.r, key.s};
    return ak(k);
  }
  __device__ T a(const ARow& row, const AKey& key) const {
    const int h = row.h0 + key.r, ww = row.w0 + key.s;
    if (!row.valid || unsigned(h) >= unsigned(d.H) || unsigned(ww) >= unsigned(d.W)) return T(0);
    return __ldg(x + row.base + key.coff + h * d.W + ww);
  }
  // W[grp*Kg + n, c, r, s] = w[(grp*Kg + n)*Cg*RS + c*RS + tap].
  __device__ BCol b_col(int grp, int n) const {
    return {(int64_t(grp) * d.Kg + n) * Kred, n < Ncols};
  }
  __device__ int bk(int k) const {
    int tap, c;
    d.div_cg.divmod(k, tap, c);
    return c * d.RS + tap;
  }
  __device__ T b(const BCol& col, int key) const {
    return col.valid ? __ldg(w + col.off + key) : T(0);
  }
  __device__ ORow out_row(int, int split, int m) const {
    int img, pq;
    d.div_pq.divmod(m, img, pq);
    return {(partial ? split * total : 0) + int64_t(img) * d.K * d.PQ + pq};
  }
  __device__ OCol out_col(int grp, int n) const {
    const int k = grp * d.Kg + n;
    return {int64_t(k) * d.PQ, bias && n < Ncols ? __ldg(bias + k) : T(0)};
  }
  __device__ void out(const ORow& r, const OCol& c, T v) const {
    if (partial) partial[r.off + c.off] = v;
    else y[r.off + c.off] = bias ? v + c.bias : v;
  }
  __device__ void finish(int64_t e, double s) const {
    y[e] = bias ? T(s) + __ldg(bias + e / d.PQ % d.K) : T(s);
  }
};

// Data gradient, one stride phase at a time: the pixels with h = h0 + i*sh, w = w0 + j*sw
// (the residues (h + pt) mod sh, (w + pl) mod sw are fixed) are read by the same taps
// r = r0 + tr*rstep (tr < nr) and s = s0 + ts*sstep (ts < ns), tap tr reading
// dy row p = pb0 - tr*pstep + i (and likewise q). Rows (n, i, j), columns c of the group,
// reduction (tr, ts, k), k fastest: only taps that land on the phase, so a stride-2 layer does
// not multiply the three zeros in four that a plain gather would.
template <typename T>
struct ConvDgrad {
  static constexpr bool kAMFast = true, kBNFast = false;
  int M = 0, Ncols = 0, Kred = 0, groups = 1, chunk = 0, mtiles = 0, ntiles = 0;
  int64_t total = 0;  // this phase's pixels of this launch, times C
  Dims d{};
  int h0 = 0, w0 = 0, Hp = 0, Wp = 0, HWp = 0;
  int r0 = 0, s0 = 0, rstep = 1, sstep = 1, pb0 = 0, qb0 = 0, pstep = 1, qstep = 1;
  FastDiv div_hwp, div_wp, div_ns;
  const T* dy = nullptr;
  const T* w = nullptr;
  const T* bias = nullptr;  // per input channel (conv_transpose2d's bias), or null
  T* dx = nullptr;
  T* partial = nullptr;  // [split][n, c, i, j]: this phase's pixels only

  struct ARow { int64_t base; int i, j; bool valid; };
  struct AKey { int kk; int64_t koff; int p, q; };  // kk, kk*PQ and the tap's dy row/column
  struct BCol { int64_t off; bool valid; };
  struct ORow { int64_t off; };
  struct OCol { int64_t off; T bias; };

  __device__ ARow a_row(int grp, int m) const {
    int n, ij, i, j;
    div_hwp.divmod(m, n, ij);
    div_wp.divmod(ij, i, j);
    return {(int64_t(n) * d.K + int64_t(grp) * d.Kg) * d.PQ, i, j, m < M};
  }
  __device__ AKey ak(int k) const {
    int t, kk, tr, ts;
    d.div_kg.divmod(k, t, kk);
    div_ns.divmod(t, tr, ts);
    return {kk, int64_t(kk) * d.PQ, pb0 - tr * pstep, qb0 - ts * qstep};
  }
  __device__ AKey ak_step(const AKey& key, int k, int step) const {
    const int kk = key.kk + step;
    if (kk < d.Kg) return {kk, key.koff + int64_t(step) * d.PQ, key.p, key.q};
    return ak(k);
  }
  __device__ T a(const ARow& row, const AKey& key) const {
    const int p = key.p + row.i, q = key.q + row.j;
    if (!row.valid || unsigned(p) >= unsigned(d.P) || unsigned(q) >= unsigned(d.Q)) return T(0);
    return __ldg(dy + row.base + key.koff + p * d.Q + q);
  }
  // W[grp*Kg + kk, c, r, s] = w[(grp*Kg + kk)*Cg*RS + c*RS + r*S + s]: the column holds the
  // group and c, the key kk and the tap.
  __device__ BCol b_col(int grp, int n) const {
    return {int64_t(grp) * d.Kg * d.Cg * d.RS + int64_t(n) * d.RS, n < Ncols};
  }
  __device__ int64_t bk(int k) const {
    int t, kk, tr, ts;
    d.div_kg.divmod(k, t, kk);
    div_ns.divmod(t, tr, ts);
    return int64_t(kk) * d.Cg * d.RS + (r0 + tr * rstep) * d.S + s0 + ts * sstep;
  }
  __device__ T b(const BCol& col, int64_t key) const {
    return col.valid ? __ldg(w + col.off + key) : T(0);
  }
  __device__ ORow out_row(int, int split, int m) const {
    int n, ij, i, j;
    div_hwp.divmod(m, n, ij);
    if (partial) return {split * total + int64_t(n) * d.C * HWp + ij};
    div_wp.divmod(ij, i, j);
    return {int64_t(n) * d.C * d.HW + (h0 + i * d.sh) * d.W + w0 + j * d.sw};
  }
  __device__ OCol out_col(int grp, int n) const {
    const int c = grp * d.Cg + n;
    return {int64_t(c) * (partial ? HWp : d.HW), bias && n < Ncols ? __ldg(bias + c) : T(0)};
  }
  __device__ void out(const ORow& r, const OCol& c, T v) const {
    if (partial) partial[r.off + c.off] = v;
    else dx[r.off + c.off] = bias ? v + c.bias : v;
  }
  // e indexes [n, c, i, j] of this phase.
  __device__ void finish(int64_t e, double s) const {
    const int64_t nc = e / HWp;
    const int ij = int(e - nc * HWp), i = ij / Wp, j = ij - i * Wp;
    const T v = bias ? T(s) + __ldg(bias + nc % d.C) : T(s);
    dx[nc * d.HW + (h0 + i * d.sh) * d.W + w0 + j * d.sw] = v;
  }
};

// Weight gradient: rows (c, r, s), columns k of the group, reduction (n, p, q) over this
// launch's images. Both operands are read along the reduction (consecutive pixels), so each
// thread decodes its one reduction index per step and keeps its rows' taps.
template <typename T>
struct ConvWgrad {
  static constexpr bool kAMFast = false, kBNFast = false;
  int M = 0, Ncols = 0, Kred = 0, groups = 1, chunk = 0, mtiles = 0, ntiles = 0;
  int64_t total = 0;  // weight elements
  Dims d{};
  const T* x = nullptr;
  const T* dy = nullptr;
  T* dw = nullptr;
  T* partial = nullptr;

  struct ARow { int64_t coff; int r, s; bool valid; };
  struct AKey { int64_t ximg; int h, w; };
  struct BCol { int64_t off; bool valid; };
  struct ORow { int64_t off; };
  struct OCol { int64_t off; };

  __device__ ARow a_row(int grp, int m) const {
    int c, rs, r, s;
    d.div_rs.divmod(m, c, rs);
    d.div_s.divmod(rs, r, s);
    return {(int64_t(grp) * d.Cg + c) * d.HW, r * d.dh - d.pt, s * d.dw - d.pl, m < M};
  }
  __device__ AKey ak(int l) const {
    int img, pq, p, q;
    d.div_pq.divmod(l, img, pq);
    d.div_q.divmod(pq, p, q);
    return {int64_t(img) * d.C * d.HW, p * d.sh, q * d.sw};
  }
  __device__ T a(const ARow& row, const AKey& key) const {
    const int h = key.h + row.r, ww = key.w + row.s;
    if (!row.valid || unsigned(h) >= unsigned(d.H) || unsigned(ww) >= unsigned(d.W)) return T(0);
    return __ldg(x + key.ximg + row.coff + h * d.W + ww);
  }
  __device__ BCol b_col(int grp, int n) const {
    return {(int64_t(grp) * d.Kg + n) * d.PQ, n < Ncols};
  }
  __device__ int64_t bk(int l) const {
    int img, pq;
    d.div_pq.divmod(l, img, pq);
    return int64_t(img) * d.K * d.PQ + pq;
  }
  __device__ T b(const BCol& col, int64_t key) const {
    return col.valid ? __ldg(dy + key + col.off) : T(0);
  }
  __device__ ORow out_row(int, int split, int m) const {
    return {(partial ? split * total : 0) + m};
  }
  __device__ OCol out_col(int grp, int n) const { return {(int64_t(grp) * d.Kg + n) * M}; }
  __device__ void out(const ORow& r, const OCol& c, T v) const {
    if (partial) partial[r.off + c.off] = v;
    else dw[r.off + c.off] += v;
  }
  __device__ void finish(int64_t e, double s) const { dw[e] = T(double(dw[e]) + s); }
};

template <typename T>
void weight_grad(T* dweight, const T* dout, const T* inp, const Conv2dGeom& g) {
  const char* name = "conv2d_backward_cuda (grad_weight)";
  ConvWgrad<T> pb;
  pb.d = dims_of(g);
  pb.M = int(g.Cg() * g.RS());
  pb.Ncols = int(g.Kg());
  pb.groups = int(g.groups);
  pb.total = g.K * g.Cg() * g.RS();
  pb.dw = dweight;
  const int64_t per = images_per_launch(g);
  with_tile<T>(g.Kg(), [&](auto tile) {
    using Cfg = decltype(tile);
    for (int64_t n0 = 0; n0 < g.N; n0 += per) {
      const int64_t nimg = std::min(per, g.N - n0);
      pb.Kred = int(nimg * g.PQ());
      pb.x = inp + n0 * g.C * g.HW();
      pb.dy = dout + n0 * g.K * g.PQ();
      run_igemm<T, Cfg>(pb, name);
    }
  });
}

constexpr int kThreads = 256;

// dsum[c] += the sum of x[n, c, :] over n, in double: one block per channel, each thread a
// fixed strided subset, then the block's fixed-order tree.
template <typename T>
__global__ void channel_sums_kernel(T* dsum, const T* x, int64_t N, int64_t C, int64_t HW) {
  __shared__ double shared[32];
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * HW;
      for (int64_t j = threadIdx.x; j < HW; j += blockDim.x) s += double(p[j]);
    }
    s = block_sum(s, shared);
    if (threadIdx.x == 0) dsum[c] += T(s);
  }
}

// col[n, (c, r, s), (p, q)] = x[n, c, p*sh - pt + r*dh, q*sw - pl + s*dw], 0 in the padding.
template <typename T>
__global__ void unfold_kernel(T* col, const T* inp, Dims d, int64_t total) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t row = e / d.PQ, nc = row / d.RS;
    const int pq = int(e - row * d.PQ), rs = int(row - nc * d.RS);
    const int r = rs / d.S, s = rs - r * d.S, p = pq / d.Q, q = pq - p * d.Q;
    const int h = p * d.sh - d.pt + r * d.dh, w = q * d.sw - d.pl + s * d.dw;
    col[e] = unsigned(h) < unsigned(d.H) && unsigned(w) < unsigned(d.W)
                 ? inp[nc * d.HW + h * d.W + w]
                 : T(0);
  }
}

// out[n, c, h, w] = the sum of the columns whose windows read (h, w), taps in (r, s) order:
// the order in which the CPU's col2im adds them, so both give the same bits.
template <typename T>
__global__ void fold_kernel(T* out, const T* col, Dims d, int64_t total) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t nc = e / d.HW;
    const int hw = int(e - nc * d.HW), h = hw / d.W, w = hw - h * d.W;
    const T* src = col + nc * d.RS * d.PQ;
    T acc = T(0);
    for (int r = 0; r < d.R; ++r) {
      const int th = h + d.pt - r * d.dh;
      if (th < 0) break;
      const int p = th / d.sh;
      if (p * d.sh != th || p >= d.P) continue;
      for (int s = 0; s < d.S; ++s) {
        const int tw = w + d.pl - s * d.dw;
        if (tw < 0) break;
        const int q = tw / d.sw;
        if (q * d.sw != tw || q >= d.Q) continue;
        acc += src[int64_t(r * d.S + s) * d.PQ + p * d.Q + q];
      }
    }
    out[e] = acc;
  }
}

// The taps r < R with r*dil = phase (mod stride): r0, r0 + step, ... (count of them, 0 when
// none lands on the phase); consecutive ones read dy rows pstep apart.
struct PhaseTaps {
  int r0 = 0, step = 1, count = 0, pstep = 1;
};

PhaseTaps phase_taps(int64_t phase, int64_t stride, int64_t dil, int64_t R) {
  const int64_t g = std::gcd(stride, dil);
  PhaseTaps t;
  t.step = int(stride / g);
  t.pstep = int(dil / g);
  for (int64_t r = 0; r < std::min(stride, R); ++r) {
    if (r * dil % stride == phase) {
      t.r0 = int(r);
      t.count = int(ceil_div(R - r, t.step));
      break;
    }
  }
  return t;
}

}  // namespace

// conv2d's input gradient plus an optional bias per input channel (conv_transpose2d's forward),
// written, not accumulated.
template <typename T>
void conv2d_data_grad(T* dinp, const T* dout, const T* weight, const T* bias, const Conv2dGeom& g) {
  const char* name = bias ? "conv_transpose2d_forward_cuda" : "conv2d_backward_cuda (grad_input)";
  ConvDgrad<T> pb;
  pb.d = dims_of(g);
  pb.Ncols = int(g.Cg());
  pb.groups = int(g.groups);
  pb.w = weight;
  pb.bias = bias;
  const int64_t per = images_per_launch(g);
  with_tile<T>(g.Cg(), [&](auto tile) {
    using Cfg = decltype(tile);
    // A phase is known by its first pixel row h0 < stride_h (and column w0): the pixels h with
    // (h + pad_t) mod stride_h = ph start at h0. Only the phases with pixels are visited, so
    // a stride far larger than the image costs min(H, stride_h) * min(W, stride_w) steps.
    for (int64_t h0 = 0; h0 < std::min(g.H, g.stride_h); ++h0) {
      for (int64_t w0 = 0; w0 < std::min(g.W, g.stride_w); ++w0) {
        const int64_t ph = (h0 + g.pad_t) % g.stride_h, pw = (w0 + g.pad_l) % g.stride_w;
        pb.h0 = int(h0);
        pb.w0 = int(w0);
        pb.Hp = int(ceil_div(g.H - h0, g.stride_h));
        pb.Wp = int(ceil_div(g.W - w0, g.stride_w));
        const PhaseTaps tr = phase_taps(ph, g.stride_h, g.dil_h, g.R);
        const PhaseTaps ts = phase_taps(pw, g.stride_w, g.dil_w, g.S);
        pb.r0 = tr.r0; pb.rstep = tr.step;
        pb.s0 = ts.r0; pb.sstep = ts.step;
        pb.pstep = tr.pstep;
        pb.qstep = ts.pstep;
        // Exact: h0 + pad_t and r0*dil_h are both = ph (mod stride_h).
        pb.pb0 = int((pb.h0 + g.pad_t - tr.r0 * g.dil_h) / g.stride_h);
        pb.qb0 = int((pb.w0 + g.pad_l - ts.r0 * g.dil_w) / g.stride_w);
        pb.HWp = pb.Hp * pb.Wp;
        pb.Kred = int(g.Kg() * tr.count * ts.count);
        pb.div_hwp = FastDiv(pb.HWp);
        pb.div_wp = FastDiv(pb.Wp);
        pb.div_ns = FastDiv(std::max(1, ts.count));
        for (int64_t n0 = 0; n0 < g.N; n0 += per) {
          const int64_t nimg = std::min(per, g.N - n0);
          pb.M = int(nimg * pb.HWp);
          pb.total = nimg * g.C * pb.HWp;
          pb.dy = dout + n0 * g.K * g.PQ();
          pb.dx = dinp + n0 * g.C * g.HW();
          run_igemm<T, Cfg>(pb, name);
        }
      }
    }
  });
}

// dsum[c] += sum over n, j of x[n, c, j].
template <typename T>
void channel_sums(T* dsum, const T* x, int64_t N, int64_t C, int64_t HW) {
  if (N == 0 || C == 0) return;
  const unsigned blocks = unsigned(std::min<int64_t>(C, 4096));
  channel_sums_kernel<T><<<blocks, kThreads, 0, stream()>>>(dsum, x, N, C, HW);
  FC_CUDA_LAUNCHED("channel_sums (grad_bias)");
}

}  // namespace cuda

template <typename T>
void unfold_cuda(T* col, const T* inp, const Conv2dGeom& g) {
  const int64_t total = g.N * g.C * g.RS() * g.PQ();
  if (total == 0) return;
  check_conv_limits("unfold", g, kUnfoldRoles, Device::cuda);
  cuda::unfold_kernel<T><<<cuda::grid_for(total, cuda::kThreads), cuda::kThreads, 0,
                           cuda::stream()>>>(col, inp, cuda::dims_of(g), total);
  FC_CUDA_LAUNCHED("unfold_cuda");
}

template <typename T>
void fold_cuda(T* out, const T* col, const Conv2dGeom& g) {
  const int64_t total = g.N * g.C * g.HW();
  if (total == 0) return;
  check_conv_limits("fold", g, kFoldRoles, Device::cuda);
  cuda::fold_kernel<T><<<cuda::grid_for(total, cuda::kThreads), cuda::kThreads, 0,
                         cuda::stream()>>>(out, col, cuda::dims_of(g), total);
  FC_CUDA_LAUNCHED("fold_cuda");
}

template <typename T>
void conv2d_forward_cuda(T* out, const T* inp, const T* weight, const T* bias,
                         const Conv2dGeom& g) {
  if (g.N == 0) return;
  check_conv_limits("conv2d", g, kConv2dRoles, Device::cuda);
  const char* name = "conv2d_forward_cuda";
  cuda::ConvFwd<T> pb;
  pb.d = cuda::dims_of(g);
  pb.Ncols = int(g.Kg());
  pb.Kred = int(g.Cg() * g.RS());
  pb.groups = int(g.groups);
  pb.w = weight;
  pb.bias = bias;
  const int64_t per = cuda::images_per_launch(g);
  // Read once: the flag is process-wide and another thread may flip it during this call.
  [[maybe_unused]] const bool tf32 = allow_tf32();
  cuda::with_tile<T>(g.Kg(), [&](auto tile) {
    using Cfg = decltype(tile);
    for (int64_t n0 = 0; n0 < g.N; n0 += per) {
      const int64_t nimg = std::min(per, g.N - n0);
      pb.M = int(nimg * g.PQ());
      pb.total = nimg * g.K * g.PQ();
      pb.x = inp + n0 * g.C * g.HW();
      pb.y = out + n0 * g.K * g.PQ();
      if constexpr (std::is_same_v<T, float>) {
        if (tf32) {
          cuda::run_igemm<T, Cfg, true>(pb, name);
          continue;
        }
      }
      cuda::run_igemm<T, Cfg>(pb, name);
    }
  });
}

template <typename T>
void conv2d_backward_cuda(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                          const T* weight, const Conv2dGeom& g) {
  if (g.N == 0) return;  // an empty batch: nothing to write, nothing to accumulate
  check_conv_limits("conv2d_backward", g, kConv2dRoles, Device::cuda);
  if (dinp) cuda::conv2d_data_grad<T>(dinp, dout, weight, nullptr, g);
  if (dweight) cuda::weight_grad(dweight, dout, inp, g);
  if (dbias) cuda::channel_sums(dbias, dout, g.N, g.K, g.PQ());
}

template <typename T>
void conv_transpose2d_forward_cuda(T* out, const T* inp, const T* weight, const T* bias,
                                   const Conv2dGeom& g) {
  if (g.N == 0) return;
  check_conv_limits("conv_transpose2d", g, kConvTranspose2dRoles, Device::cuda);
  // out is the equivalent conv2d's input gradient for grad_output = inp, plus the bias.
  cuda::conv2d_data_grad<T>(out, inp, weight, bias, g);
}

template <typename T>
void conv_transpose2d_backward_cuda(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                                    const T* weight, const Conv2dGeom& g) {
  if (g.N == 0) return;
  check_conv_limits("conv_transpose2d_backward", g, kConvTranspose2dRoles,
                    Device::cuda);
  // dx is the equivalent conv2d's forward of dy.
  if (dinp) conv2d_forward_cuda<T>(dinp, dout, weight, nullptr, g);
  // dW += the equivalent conv2d's weight gradient, whose input is dy and output gradient x.
  if (dweight) conv2d_backward_cuda<T>(nullptr, dweight, nullptr, inp, dout, weight, g);
  if (dbias) cuda::channel_sums(dbias, dout, g.N, g.C, g.HW());
}

FC_CONV_OPS(FC_INSTANTIATE_CUDA, float)
FC_CONV_OPS(FC_INSTANTIATE_CUDA, double)

}  // namespace fc
