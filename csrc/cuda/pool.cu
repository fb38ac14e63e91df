// Pooling on the GPU: the CPU twins' windows, NaN rule and divisor rules (see pool.h).
// Forward: one thread per output element (one warp for large sum windows), sums in double.
// Backward: a gather, one thread per input pixel over the windows whose extent holds it, so each
// element is written by one thread and no floating-point atomics are needed: deterministic.
// Window arithmetic is __host__ __device__ so that it can be checked against the CPU on a host.
#include "pool.h"
#include "cuda/cuda_common.cuh"

#include <cmath>

namespace fc {
namespace {

__host__ __device__ inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
// v != v rather than isnan: one spelling for host and device code (no fast-math here).
template <typename T>
__host__ __device__ inline bool is_nan(T v) { return v != v; }

// One axis of a Pool2dGeom (rows: H in, P out; or columns: W in, Q out).
struct Axis {
  int64_t in, out, k, stride, pad, dil;
  bool adaptive;

  // Window o's extent [first, last]: every input index it may read, before clipping.
  __host__ __device__ int64_t first(int64_t o) const {
    return adaptive ? o * in / out : o * stride - pad;
  }
  __host__ __device__ int64_t last(int64_t o) const {
    return adaptive ? ((o + 1) * in + out - 1) / out - 1 : o * stride - pad + (k - 1) * dil;
  }
  __host__ __device__ bool covers(int64_t o, int64_t i) const {
    return first(o) <= i && i <= last(o);
  }

  // Input indices [lo, hi) step dil that window o reads: Pool2dGeom::rows/cols exactly.
  __host__ __device__ void taps(int64_t o, int64_t& lo, int64_t& hi) const {
    pool_window(o, in, out, k, stride, pad, dil, adaptive, lo, hi);
  }

  // Average pooling (dilation 1): window o's part [lo, hi) inside the input and its extent
  // inside the padded input.
  __host__ __device__ void avg_span(int64_t o, int64_t& lo, int64_t& hi, int64_t& ext) const {
    avg_pool_span(o, in, k, stride, pad, lo, hi, ext);
  }

  // The windows whose extent holds input index i (0 <= i < in): [o0, o1], empty if o0 > o1.
  // Sliding: first(o) <= i <= last(o) <=> i + pad - (k-1)*dil <= o*stride <= i + pad.
  // Adaptive: floor(o*in/out) <= i < ceil((o+1)*in/out) <=> i*out/in - 1 < o < (i+1)*out/in.
  __host__ __device__ void windows_of(int64_t i, int64_t& o0, int64_t& o1) const {
    if (adaptive) {
      o0 = i * out / in;
      o1 = ((i + 1) * out + in - 1) / in - 1;
    } else {
      const int64_t a = i + pad - (k - 1) * dil;
      o0 = a > 0 ? (a + stride - 1) / stride : 0;
      o1 = (i + pad) / stride;
    }
    o1 = imin(o1, out - 1);
  }
};

// Pool2dGeom as the kernels read it (its methods are host-only).
struct Geo {
  Axis rows, cols;
  int64_t planes, H, W, P, Q;
  __host__ __device__ int64_t HW() const { return H * W; }
  __host__ __device__ int64_t PQ() const { return P * Q; }

  // The output (plane, p, q) at flat index i of the outputs, and the input pixel (plane, h, w)
  // at flat index i of the inputs: the one-thread-per-element kernels' decompositions.
  __host__ __device__ void output_at(int64_t i, int64_t& plane, int64_t& p, int64_t& q) const {
    plane = i / PQ();
    const int64_t j = i - plane * PQ();
    p = j / Q;
    q = j - p * Q;
  }
  __host__ __device__ void pixel_at(int64_t i, int64_t& plane, int64_t& h, int64_t& w) const {
    plane = i / HW();
    const int64_t e = i - plane * HW();
    h = e / W;
    w = e - h * W;
  }

  // f(p, q) for every window whose extent holds input pixel (h, w), rows then columns in order
  // (the fixed order the gathers sum in).
  template <typename F>
  __host__ __device__ void each_window_of(int64_t h, int64_t w, F f) const {
    int64_t p0, p1, q0, q1;
    rows.windows_of(h, p0, p1);
    cols.windows_of(w, q0, q1);
    for (int64_t p = p0; p <= p1; ++p) {
      if (!rows.covers(p, h)) continue;
      for (int64_t q = q0; q <= q1; ++q) {
        if (cols.covers(q, w)) f(p, q);
      }
    }
  }
};

Geo geo(const Pool2dGeom& g) {
  return {{g.H, g.P, g.R, g.stride_h, g.pad_h, g.dil_h, g.adaptive},
          {g.W, g.Q, g.S, g.stride_w, g.pad_w, g.dil_w, g.adaptive},
          g.N * g.C, g.H, g.W, g.P, g.Q};
}

// Largest number of taps of any window along an axis (host).
int64_t max_taps(const Axis& a) {
  int64_t most = 0;
  for (int64_t o = 0; o < a.out; ++o) {
    int64_t lo, hi;
    a.taps(o, lo, hi);
    if (hi > lo) most = imax(most, (hi - lo + a.dil - 1) / a.dil);
  }
  return most;
}

// Dilation can leave a window with no pixel; its argmax is then a position outside the window.
bool has_empty_window(const Geo& g) {
  for (const Axis& a : {g.rows, g.cols}) {
    for (int64_t o = 0; o < a.out; ++o) {
      int64_t lo, hi;
      a.taps(o, lo, hi);
      if (lo >= hi) return true;
    }
  }
  return false;
}

// Window (p, q)'s input box [h0, h1) x [w0, w1) and, for average pooling, 1 / its divisor.
struct Box {
  int64_t h0, h1, w0, w1;
  double scale;
  __host__ __device__ bool empty() const { return h0 >= h1 || w0 >= w1; }
  __host__ __device__ int64_t area() const { return empty() ? 0 : (h1 - h0) * (w1 - w0); }
};

__host__ __device__ inline Box avg_box(const Geo& g, int64_t p, int64_t q, bool count_include_pad,
                                       int64_t divisor_override) {
  Box b;
  int64_t eh, ew;
  g.rows.avg_span(p, b.h0, b.h1, eh);
  g.cols.avg_span(q, b.w0, b.w1, ew);
  b.scale = avg_pool_scale(divisor_override, count_include_pad, eh * ew,
                           (b.h1 - b.h0) * (b.w1 - b.w0));
  return b;
}

// ---------------------------------------------------------------------------------------------
// max / min: PyTorch's CPU rule, scan in row-major order from -inf (+inf for min): a value is
// taken when strictly better or NaN, so the first extreme wins and the last NaN wins.

template <typename T, bool kMin>
struct ExtremeForward {
  T* out;  // null: indices only (the backward's recomputed argmax)
  int64_t* idx;
  const T* inp;
  Geo g;

  __host__ __device__ void operator()(int64_t i) const {
    int64_t plane, p, q;
    g.output_at(i, plane, p, q);
    int64_t h0, h1, w0, w1;
    g.rows.taps(p, h0, h1);
    g.cols.taps(q, w0, w1);
    const T* x = inp + plane * g.HW();
    T m = kMin ? T(HUGE_VAL) : T(-HUGE_VAL);
    int64_t at = h0 * g.W + w0;  // an empty window keeps its start, as on the CPU
    for (int64_t h = h0; h < h1; h += g.rows.dil) {
      for (int64_t w = w0; w < w1; w += g.cols.dil) {
        const T v = x[h * g.W + w];
        if ((kMin ? v < m : v > m) || is_nan(v)) {
          m = v;
          at = h * g.W + w;
        }
      }
    }
    if (out) out[i] = m;
    if (idx) idx[i] = at;
  }
};

// Work item i = (plane, e), e < span: pixel e (if e < H*W) gathers alpha * dout of every window
// whose extent holds it and whose index is e (alpha = 1 for max pooling); with kMixed it also
// gathers (1 - alpha) * dout / divisor of each such window (mixed pooling's average part,
// padding counted). With `stray`
// set, item e (if e < P*Q) also checks output e's index: one inside the plane but outside its
// window's extent (an empty window's, or a caller's) is found by no pixel, so it raises the
// flag for StrayScatter.
template <typename T, bool kMixed>
struct ExtremeGather {
  T* dinp;
  const T* dout;
  const int64_t* idx;
  Geo g;
  double alpha;
  int* stray;
  int64_t span;

  __host__ __device__ void operator()(int64_t i) const {
    const int64_t plane = i / span, e = i - plane * span;
    const T* dy = dout + plane * g.PQ();
    const int64_t* id = idx + plane * g.PQ();
    if (e < g.HW()) {
      const int64_t h = e / g.W, w = e - h * g.W;
      double acc = 0;
      g.each_window_of(h, w, [&](int64_t p, int64_t q) {
        const int64_t j = p * g.Q + q;
        if (id[j] == e) acc += alpha * double(dy[j]);
        if (kMixed) acc += (1.0 - alpha) * double(dy[j]) * avg_box(g, p, q, true, 0).scale;
      });
      dinp[plane * g.HW() + e] = T(acc);
    }
    if (stray && e < g.PQ()) {
      const int64_t f = id[e];
      if (f >= 0 && f < g.HW() &&
          !(g.rows.covers(e / g.Q, f / g.W) && g.cols.covers(e % g.Q, f % g.W))) {
        *stray = 1;  // racing writers all store 1
      }
    }
  }
};

// One thread per plane, after ExtremeGather: adds the stray indices' dout in output order, as
// the CPU does. Nearly always *stray == 0 and each thread returns at once.
template <typename T>
struct StrayScatter {
  T* dinp;
  const T* dout;
  const int64_t* idx;
  Geo g;
  const int* stray;

  __host__ __device__ void operator()(int64_t plane) const {
    if (*stray == 0) return;
    T* dx = dinp + plane * g.HW();
    const T* dy = dout + plane * g.PQ();
    const int64_t* id = idx + plane * g.PQ();
    for (int64_t j = 0; j < g.PQ(); ++j) {
      const int64_t f = id[j];
      if (f < 0 || f >= g.HW()) continue;
      if (g.rows.covers(j / g.Q, f / g.W) && g.cols.covers(j % g.Q, f % g.W)) continue;
      dx[f] += dy[j];
    }
  }
};

template <bool kMin, typename T>
void extreme_forward(T* out, int64_t* idx, const T* inp, const Geo& g, const char* name) {
  cuda::for_each(name, g.planes * g.PQ(), ExtremeForward<T, kMin>{out, idx, inp, g});
}

// ---------------------------------------------------------------------------------------------
// Window sums (average, adaptive average, power average). An op gives window (p, q)'s box, the
// term summed per pixel, the output from the sum, and each pixel's share of dout.

struct AvgOp {
  bool count_include_pad;
  int64_t divisor_override;
  __host__ __device__ Box box(const Geo& g, int64_t p, int64_t q) const {
    return avg_box(g, p, q, count_include_pad, divisor_override);
  }
  __host__ __device__ double term(double v) const { return v; }
  __host__ __device__ double finish(const Box& b, double s) const {
    return b.empty() ? 0.0 : s * b.scale;
  }
  __host__ __device__ double grad(const Box& b, double dy) const { return dy * b.scale; }
};

struct AdaptiveAvgOp {
  __host__ __device__ Box box(const Geo& g, int64_t p, int64_t q) const {
    Box b;
    g.rows.taps(p, b.h0, b.h1);
    g.cols.taps(q, b.w0, b.w1);
    b.scale = 0;
    return b;
  }
  __host__ __device__ double term(double v) const { return v; }
  __host__ __device__ double finish(const Box& b, double s) const {
    return s / double(b.area());
  }
  __host__ __device__ double grad(const Box& b, double dy) const { return dy / double(b.area()); }
};

// lp_pool2d: (s / divisor * R*S)^(1/p) with s the window's sum of x^p (see cpu/pool.cpp); with
// `sums` the op outputs s itself, for the backward.
struct LpOp {
  double p, area;
  bool sums;
  __host__ __device__ Box box(const Geo& g, int64_t i, int64_t j) const {
    return avg_box(g, i, j, true, 0);
  }
  __host__ __device__ double term(double v) const { return pow(v, p); }
  __host__ __device__ double finish(const Box& b, double s) const {
    return sums ? s : pow(s * b.scale * area, 1.0 / p);
  }
};

// Windows of at least this many pixels are summed by a warp rather than a thread.
constexpr int64_t kWarpWindow = 64;

template <typename T, typename Out, typename Op>
struct WindowSum {
  Out* out;
  const T* inp;
  Geo g;
  Op op;

  __host__ __device__ void operator()(int64_t i) const {
    int64_t plane, p, q;
    g.output_at(i, plane, p, q);
    const Box b = op.box(g, p, q);
    const T* x = inp + plane * g.HW();
    double s = 0;
    for (int64_t h = b.h0; h < b.h1; ++h) {
      for (int64_t w = b.w0; w < b.w1; ++w) s += op.term(double(x[h * g.W + w]));
    }
    out[i] = Out(op.finish(b, s));
  }
};

// Lane `lane` of `lanes`' share of box b's sum: pixels lane, lane + lanes, ... in scan order.
template <typename T, typename Op>
__host__ __device__ double lane_sum(const Op& op, const T* x, int64_t W, const Box& b, int lane,
                                    int lanes) {
  const int64_t n = b.area(), bw = b.w1 - b.w0;
  double s = 0;
  for (int64_t e = lane; e < n; e += lanes) {
    const int64_t r = e / bw;
    s += op.term(double(x[(b.h0 + r) * W + b.w0 + (e - r * bw)]));
  }
  return s;
}

// One warp per output; the lane sums are added in a fixed shuffle tree (deterministic). Every
// lane of a warp runs the same iterations, so the full-mask shuffles are safe.
template <typename T, typename Out, typename Op>
__global__ void window_sum_warps(Out* out, const T* inp, Geo g, Op op, int64_t n) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; i < n; i += warps) {
    int64_t plane, p, q;
    g.output_at(i, plane, p, q);
    const Box b = op.box(g, p, q);
    double s = lane_sum(op, inp + plane * g.HW(), g.W, b, lane, 32);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    if (lane == 0) out[i] = Out(op.finish(b, s));
  }
}

template <typename T, typename Out, typename Op>
void window_sum(const char* name, Out* out, const T* inp, const Geo& g, const Op& op) {
  const int64_t n = g.planes * g.PQ();
  if (n == 0) return;
  if (max_taps(g.rows) * max_taps(g.cols) < kWarpWindow) {
    cuda::for_each(name, n, WindowSum<T, Out, Op>{out, inp, g, op});
    return;
  }
  constexpr int threads = 256;  // a multiple of 32: whole warps
  window_sum_warps<T, Out, Op><<<cuda::grid_for(mul_sat(n, 32), threads), threads, 0,
                                 cuda::stream()>>>(
      out, inp, g, op, n);
  FC_CUDA_LAUNCHED(name);
}

// dinp at each pixel: the sum of op.grad(dout) over the windows whose box holds it.
template <typename T, typename Op>
struct SumGather {
  T* dinp;
  const T* dout;
  Geo g;
  Op op;

  __host__ __device__ void operator()(int64_t i) const {
    int64_t plane, h, w;
    g.pixel_at(i, plane, h, w);
    const T* dy = dout + plane * g.PQ();
    double acc = 0;
    g.each_window_of(h, w, [&](int64_t p, int64_t q) {
      acc += op.grad(op.box(g, p, q), double(dy[p * g.Q + q]));
    });
    dinp[i] = T(acc);
  }
};

// lp_pool2d's gradient at each pixel from the window power sums s (LpOp with sums): per window,
// dy * (1/p) z^(1/p - 1) * R*S / divisor * p x^(p-1) with z = s / divisor * R*S; nothing from
// a window whose mean is zero (relu's kink in PyTorch's composition).
template <typename T>
struct LpGather {
  T* dinp;
  const T* dout;
  const T* inp;
  const double* sums;
  Geo g;
  LpOp op;

  __host__ __device__ void operator()(int64_t i) const {
    int64_t plane, h, w;
    g.pixel_at(i, plane, h, w);
    const T* dy = dout + plane * g.PQ();
    const double* s = sums + plane * g.PQ();
    const double px = pow(double(inp[i]), op.p - 1.0);
    double acc = 0;
    g.each_window_of(h, w, [&](int64_t p, int64_t q) {
      const int64_t j = p * g.Q + q;
      const Box b = op.box(g, p, q);
      const double mean = s[j] * b.scale;
      if (mean == 0) return;
      const double z = mean * op.area;
      const double f = dy[j] * (1.0 / op.p) * pow(z, 1.0 / op.p - 1.0) * op.area * b.scale;
      acc += f * op.p * px;
    });
    dinp[i] = T(acc);
  }
};

// mixed_pool2d: alpha * window max + (1 - alpha) * window mean (padding counted).
template <typename T>
struct MixedForward {
  T* out;
  const T* inp;
  Geo g;
  double alpha;

  __host__ __device__ void operator()(int64_t i) const {
    int64_t plane, p, q;
    g.output_at(i, plane, p, q);
    const Box b = avg_box(g, p, q, true, 0);
    const T* x = inp + plane * g.HW();
    T best = T(-HUGE_VAL);
    double s = 0;
    for (int64_t h = b.h0; h < b.h1; ++h) {
      for (int64_t w = b.w0; w < b.w1; ++w) {
        const T v = x[h * g.W + w];
        if (v > best || is_nan(v)) best = v;
        s += double(v);
      }
    }
    out[i] = T(alpha * double(best) + (1.0 - alpha) * (s * b.scale));
  }
};

}  // namespace

template <typename T>
void max_pool2d_forward_cuda(T* out, int64_t* idx, const T* inp, const Pool2dGeom& g) {
  extreme_forward<false>(out, idx, inp, geo(g), "max_pool2d_forward_cuda");
}

template <typename T>
void min_pool2d_forward_cuda(T* out, int64_t* idx, const T* inp, const Pool2dGeom& g) {
  extreme_forward<true>(out, idx, inp, geo(g), "min_pool2d_forward_cuda");
}

// Without idx the argmax goes to scratch first, so each window is scanned once rather than once
// per pixel it holds. Stray indices can only come from the caller or from empty windows; only
// then is the flag cleared, set and read (all on the stream: no host synchronisation).
template <typename T>
void max_pool2d_backward_cuda(T* dinp, const T* dout, const int64_t* idx, const T* inp,
                              const Pool2dGeom& g, bool is_min) {
  const char* name = "max_pool2d_backward_cuda";
  const Geo G = geo(g);
  if (G.planes == 0) return;
  cuda::Scratch argmax(idx ? 0 : G.planes * G.PQ() * sizeof(int64_t), name);
  if (!idx) {
    if (is_min) extreme_forward<true>(static_cast<T*>(nullptr), argmax.as<int64_t>(), inp, G, name);
    else extreme_forward<false>(static_cast<T*>(nullptr), argmax.as<int64_t>(), inp, G, name);
  }
  const int64_t* id = idx ? idx : argmax.as<int64_t>();
  const bool strays = idx || has_empty_window(G);
  cuda::Scratch flag(strays ? sizeof(int) : 0, name);
  if (strays) FC_CUDA_CHECK(cudaMemsetAsync(flag.as<int>(), 0, sizeof(int), cuda::stream()));
  const int64_t span = strays ? imax(G.HW(), G.PQ()) : G.HW();
  cuda::for_each(name, G.planes * span,
                 ExtremeGather<T, false>{dinp, dout, id, G, 1.0, flag.as<int>(), span});
  if (strays) {
    cuda::for_each(name, G.planes, StrayScatter<T>{dinp, dout, id, G, flag.as<int>()});
  }
}

template <typename T>
void avg_pool2d_forward_cuda(T* out, const T* inp, const Pool2dGeom& g, bool count_include_pad,
                             int64_t divisor_override) {
  window_sum("avg_pool2d_forward_cuda", out, inp, geo(g),
             AvgOp{count_include_pad, divisor_override});
}

template <typename T>
void avg_pool2d_backward_cuda(T* dinp, const T* dout, const Pool2dGeom& g, bool count_include_pad,
                              int64_t divisor_override) {
  const Geo G = geo(g);
  cuda::for_each("avg_pool2d_backward_cuda", G.planes * G.HW(),
                 SumGather<T, AvgOp>{dinp, dout, G, AvgOp{count_include_pad, divisor_override}});
}

template <typename T>
void lp_pool2d_forward_cuda(T* out, const T* inp, const Pool2dGeom& g, double p) {
  window_sum("lp_pool2d_forward_cuda", out, inp, geo(g), LpOp{p, double(g.R * g.S), false});
}

template <typename T>
void lp_pool2d_backward_cuda(T* dinp, const T* dout, const T* inp, const Pool2dGeom& g, double p) {
  const char* name = "lp_pool2d_backward_cuda";
  const Geo G = geo(g);
  if (G.planes == 0) return;
  cuda::Scratch sums(G.planes * G.PQ() * sizeof(double), name);
  const LpOp op{p, double(g.R * g.S), true};
  window_sum(name, sums.as<double>(), inp, G, op);
  cuda::for_each(name, G.planes * G.HW(),
                 LpGather<T>{dinp, dout, inp, sums.as<double>(), G, op});
}

template <typename T>
void adaptive_avg_pool2d_forward_cuda(T* out, const T* inp, const Pool2dGeom& g) {
  window_sum("adaptive_avg_pool2d_forward_cuda", out, inp, geo(g), AdaptiveAvgOp{});
}

template <typename T>
void adaptive_avg_pool2d_backward_cuda(T* dinp, const T* dout, const Pool2dGeom& g) {
  const Geo G = geo(g);
  cuda::for_each("adaptive_avg_pool2d_backward_cuda", G.planes * G.HW(),
                 SumGather<T, AdaptiveAvgOp>{dinp, dout, G, AdaptiveAvgOp{}});
}

template <typename T>
void mixed_pool2d_forward_cuda(T* out, const T* inp, const Pool2dGeom& g, double alpha) {
  const Geo G = geo(g);
  cuda::for_each("mixed_pool2d_forward_cuda", G.planes * G.PQ(),
                 MixedForward<T>{out, inp, G, alpha});
}

// Mixed pooling has no dilation, so no window is empty and every argmax lies in its window.
template <typename T>
void mixed_pool2d_backward_cuda(T* dinp, const T* dout, const T* inp, const Pool2dGeom& g,
                                double alpha) {
  const char* name = "mixed_pool2d_backward_cuda";
  const Geo G = geo(g);
  if (G.planes == 0) return;
  cuda::Scratch argmax(G.planes * G.PQ() * sizeof(int64_t), name);
  extreme_forward<false>(static_cast<T*>(nullptr), argmax.as<int64_t>(), inp, G, name);
  cuda::for_each(name, G.planes * G.HW(),
                 ExtremeGather<T, true>{dinp, dout, argmax.as<int64_t>(), G, alpha, nullptr,
                                        G.HW()});
}

FC_POOL_OPS(FC_INSTANTIATE_CUDA, float)
FC_POOL_OPS(FC_INSTANTIATE_CUDA, double)

}  // namespace fc
