// Depthwise convolution (conv_depthwise.h). Built with -ffp-contract=fast (CMakeLists.txt): a
// stencil's multiply-adds fuse where the CPU variant has FMA.
#include "cpu/conv_depthwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common.h"
#include "cpu/isa.h"
#include "cpu/pad.h"
#include "cpu/parallel.h"
#include "cpu/run_sum.h"

namespace fc {
namespace {

// Output pixels of a row per register block: 128 bytes (two AVX-512 vectors, four AVX2 ones).
template <typename T>
constexpr int64_t kBlock = 128 / sizeof(T);

// Planes below which a pass stays on the calling thread.
constexpr int64_t kParallelElems = int64_t(1) << 15;

// One plane's stencil: out[i, j] = b + sum over (r, s) of k[r*S + s] * src[i + r*dh - oh,
// j + s*dw - ow] (zero outside the SH x SW source), for i < OH, j < OW.
struct Stencil {
  int64_t OH, OW, SH, SW, oh, ow, R, S, dh, dw;
  int64_t rows() const { return OH + (R - 1) * dh; }  // of the padded buffer
  int64_t cols() const { return OW + (S - 1) * dw; }
  int64_t buffer() const { return rows() * cols(); }
};

// y[0, n) = b + the taps of the row starting at x (buffer row i's column j0), n <= kBlock.
// A full block is a compile-time length, so its accumulators stay in registers.
template <typename T, bool kFull>
inline void stencil_block(T* y, const T* x, int64_t n, const T* k, const Stencil& st,
                          int64_t BW, T b) {
  constexpr int64_t B = kBlock<T>;
  const int64_t len = kFull ? B : n;
  T acc[B];
  for (int64_t j = 0; j < len; ++j) acc[j] = b;
  for (int64_t r = 0; r < st.R; ++r) {
    for (int64_t s = 0; s < st.S; ++s) {
      const T w = k[r * st.S + s];
      const T* xs = x + r * st.dh * BW + s * st.dw;
      for (int64_t j = 0; j < len; ++j) acc[j] += w * xs[j];
    }
  }
  for (int64_t j = 0; j < len; ++j) y[j] = acc[j];
}

template <typename T>
void stencil_plane(T* out, const T* src, const T* k, T b, const Stencil& st, T* buf) {
  constexpr int64_t B = kBlock<T>;
  pad_plane(buf, src, st.SH, st.SW, -st.oh, st.rows(), st.ow, st.cols());
  const int64_t BW = st.cols();
  for (int64_t i = 0; i < st.OH; ++i) {
    T* y = out + i * st.OW;
    const T* x = buf + i * BW;
    if (st.OW < B) {
      stencil_block<T, false>(y, x, st.OW, k, st, BW, b);
      continue;
    }
    // The last block may overlap the one before; both compute the shared pixels alike.
    for (int64_t j0 = 0; j0 < st.OW; j0 += B) {
      const int64_t j = std::min(j0, st.OW - B);
      stencil_block<T, true>(y + j, x + j, B, k, st, BW, b);
    }
  }
}

// sum over p < P, q < Qp of d[p*Qp + q] * x[p*BW + q], Qp a whole number of blocks: lane sums
// kept in registers across the rows (a row of a 56-wide plane is under four vectors, too short
// to reduce on its own), then added in double.
template <typename T>
double tap_dot(const T* d, const T* x, int64_t P, int64_t Qp, int64_t BW) {
  constexpr int64_t B = kBlock<T>;
  T acc[B] = {};
  for (int64_t p = 0; p < P; ++p) {
    const T* dp = d + p * Qp;
    const T* xp = x + p * BW;
    for (int64_t q0 = 0; q0 < Qp; q0 += B) {
      for (int64_t j = 0; j < B; ++j) acc[j] += dp[q0 + j] * xp[q0 + j];
    }
  }
  double t = 0;
  for (int64_t j = 0; j < B; ++j) t += double(acc[j]);
  return t;
}

// f(plane, buf) for every (image, channel) plane, buf a thread's `per_thread` scratch elements.
template <typename T, typename F>
void for_planes(const Conv2dGeom& g, int64_t per_thread, int64_t plane_elems, F f) {
  const int threads = max_threads();
  const auto bufs = alloc_uninit<T>(mul_sat(threads, per_thread),
                                    "conv2d (depthwise): padded planes");
  const int64_t planes = g.N * g.C;
#pragma omp parallel for schedule(static) num_threads(threads) \
    if (planes > 1 && planes * plane_elems >= kParallelElems)
  for (int64_t pl = 0; pl < planes; ++pl) {
    T* buf = bufs.get() + thread_id() * per_thread;
    with_isa([&] { f(pl, buf); });
  }
}

// The non-finite fallbacks below. The stencils multiply a tap with the zeros around dy (the
// input gradient) and dy's zeros past Q with input pixels (the weight gradient): with an
// infinite or NaN weight or input those products are NaN where the GEMM path (and PyTorch)
// forms no such product. A plane or channel whose result may hold one is computed again
// from the products im2col and col2im form, each output pixel's taps in (r, s) order.

template <typename T>
bool finite_taps(const T* k, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(k[i])) return false;
  }
  return true;
}

// dx of one plane (stride 1): every output pixel's products with the taps that read inside.
template <typename T>
void exact_backward_data_plane(T* dx, const T* dy, const T* k, const Conv2dGeom& g) {
  std::fill(dx, dx + g.HW(), T(0));
  for (int64_t p = 0; p < g.P; ++p) {
    for (int64_t q = 0; q < g.Q; ++q) {
      const T d = dy[p * g.Q + q];
      for (int64_t r = 0; r < g.R; ++r) {
        const int64_t h = p + r * g.dil_h - g.pad_t;
        if (h < 0 || h >= g.H) continue;
        for (int64_t s = 0; s < g.S; ++s) {
          const int64_t w = q + s * g.dil_w - g.pad_l;
          if (w >= 0 && w < g.W) dx[h * g.W + w] += k[r * g.S + s] * d;
        }
      }
    }
  }
}

// dW of channel c into total[RS] (stride 1): dy times the padded input over the output pixels
// only, images and pixels in order, in double as the fast path.
template <typename T>
void exact_backward_weight_channel(double* total, const T* dout, const T* inp, int64_t c,
                                   const Conv2dGeom& g) {
  for (int64_t r = 0; r < g.R; ++r) {
    for (int64_t s = 0; s < g.S; ++s) {
      double t = 0;
      for (int64_t n = 0; n < g.N; ++n) {
        const T* dy = dout + (n * g.C + c) * g.PQ();
        const T* x = inp + (n * g.C + c) * g.HW();
        for (int64_t p = 0; p < g.P; ++p) {
          const int64_t h = p + r * g.dil_h - g.pad_t;
          for (int64_t q = 0; q < g.Q; ++q) {
            const int64_t w = q + s * g.dil_w - g.pad_l;
            const bool inside = h >= 0 && h < g.H && w >= 0 && w < g.W;
            t += double(dy[p * g.Q + q]) * (inside ? double(x[h * g.W + w]) : 0.0);
          }
        }
      }
      total[r * g.S + s] = t;
    }
  }
}

}  // namespace

bool depthwise_applies(const Conv2dGeom& g) {
  return g.groups > 1 && g.groups == g.C && g.K == g.C && g.stride_h == 1 && g.stride_w == 1;
}

template <typename T>
void depthwise_forward(T* out, const T* inp, const T* weight, const T* bias,
                       const Conv2dGeom& g) {
  const Stencil st{g.P, g.Q, g.H, g.W, g.pad_t, g.pad_l, g.R, g.S, g.dil_h, g.dil_w};
  const int64_t RS = g.RS();
  for_planes<T>(g, st.buffer(), g.HW(), [&](int64_t pl, T* buf) {
    const int64_t c = pl % g.C;
    stencil_plane(out + pl * g.PQ(), inp + pl * g.HW(), weight + c * RS, bias ? bias[c] : T(0),
                  st, buf);
  });
}

template <typename T>
void depthwise_backward_data(T* dinp, const T* dout, const T* weight, const Conv2dGeom& g) {
  // dx[h, w] = sum over (r, s) of W[r, s] * dy[h + pt - r*dh, w + pl - s*dw]: with r' = R-1-r,
  // the stencil of dy (offset (R-1)*dh - pt) with the flipped kernel.
  const Stencil st{g.H, g.W, g.P, g.Q, (g.R - 1) * g.dil_h - g.pad_t,
                   (g.S - 1) * g.dil_w - g.pad_l, g.R, g.S, g.dil_h, g.dil_w};
  const int64_t RS = g.RS();
  auto flipped = alloc_uninit<T>(g.C * RS, "conv2d_backward_cpu (depthwise): flipped kernel");
  for (int64_t c = 0; c < g.C; ++c) {
    for (int64_t u = 0; u < RS; ++u) flipped[c * RS + u] = weight[c * RS + RS - 1 - u];
  }
  auto finite = alloc_vector<char>(g.C, "conv2d_backward_cpu (depthwise): finite kernels");
  for (int64_t c = 0; c < g.C; ++c) finite[c] = finite_taps(weight + c * RS, RS);
  for_planes<T>(g, st.buffer(), g.PQ(), [&](int64_t pl, T* buf) {
    const int64_t c = pl % g.C;
    if (!finite[c]) {
      return exact_backward_data_plane(dinp + pl * g.HW(), dout + pl * g.PQ(), weight + c * RS, g);
    }
    stencil_plane(dinp + pl * g.HW(), dout + pl * g.PQ(), flipped.get() + c * RS, T(0), st, buf);
  });
}

template <typename T>
void depthwise_backward_weight(T* dweight, T* dbias, const T* dout, const T* inp,
                               const Conv2dGeom& g) {
  // dW[c, r, s] = sum over images and output pixels of dy[n, c, p, q] * x[n, c, p + r*dh - pt,
  // q + s*dw - pl]: per channel, each tap a dot product of dy with a shifted window of the
  // padded x (tap_dot), images added in order. dy's rows are copied out to whole blocks
  // (zeros past Q), the padded x wide enough for them. dbias (if not null) gets channel_sums's
  // sums (conv.cpp), the same bits, from the dy planes this pass reads anyway: on its own that
  // pass read MobileNet-style 16 x 128 x 56x56 dy again (0.47 of a 6.1 ms backward).
  const int64_t Qp = ceil_div(g.Q, kBlock<T>) * kBlock<T>;
  const Stencil st{g.P, Qp, g.H, g.W, g.pad_t, g.pad_l, g.R, g.S, g.dil_h, g.dil_w};
  const int64_t RS = g.RS(), BW = st.cols(), per_thread = st.buffer() + g.P * Qp;
  const int threads = max_threads();
  const auto bufs = alloc_uninit<T>(mul_sat(threads, per_thread),
                                    "conv2d_backward_cpu (depthwise): padded planes");
  const auto sums = alloc_uninit<double>(mul_sat(threads, RS),
                                         "conv2d_backward_cpu (depthwise): tap sums");
#pragma omp parallel for schedule(static) num_threads(threads) \
    if (g.C > 1 && g.N * g.C * g.PQ() * RS >= kParallelElems)
  for (int64_t c = 0; c < g.C; ++c) {
    T* buf = bufs.get() + thread_id() * per_thread;
    T* dyp = buf + st.buffer();
    double* total = sums.get() + thread_id() * RS;
    std::fill(total, total + RS, 0.0);
    double bias_sum = 0;
    with_isa([&] {
      for (int64_t n = 0; n < g.N; ++n) {
        const int64_t pl = n * g.C + c;
        pad_plane(buf, inp + pl * g.HW(), st.SH, st.SW, -st.oh, st.rows(), st.ow, BW);
        for (int64_t p = 0; p < g.P; ++p) {
          std::memcpy(dyp + p * Qp, dout + pl * g.PQ() + p * g.Q, sizeof(T) * g.Q);
          std::fill(dyp + p * Qp + g.Q, dyp + (p + 1) * Qp, T(0));
        }
        if (dbias) bias_sum += run_sum(dout + pl * g.PQ(), g.PQ());
        for (int64_t r = 0; r < g.R; ++r) {
          for (int64_t s = 0; s < g.S; ++s) {
            total[r * g.S + s] += tap_dot(dyp, buf + r * g.dil_h * BW + s * g.dil_w, g.P, Qp, BW);
          }
        }
      }
    });
    if (!finite_taps(total, RS)) exact_backward_weight_channel(total, dout, inp, c, g);
    for (int64_t u = 0; u < RS; ++u) dweight[c * RS + u] += T(total[u]);
    if (dbias) dbias[c] += T(bias_sum);
  }
}

#define FC_DEPTHWISE_INSTANTIATE(T)                                                         \
  template void depthwise_forward<T>(T*, const T*, const T*, const T*, const Conv2dGeom&);  \
  template void depthwise_backward_data<T>(T*, const T*, const T*, const Conv2dGeom&);      \
  template void depthwise_backward_weight<T>(T*, T*, const T*, const T*, const Conv2dGeom&);
FC_DEPTHWISE_INSTANTIATE(float)
FC_DEPTHWISE_INSTANTIATE(double)
#undef FC_DEPTHWISE_INSTANTIATE

}  // namespace fc
