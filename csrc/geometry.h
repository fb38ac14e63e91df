// Geometry of 2-D sliding-window ops: the ONE place output sizes are computed and checked.
// Names: input N C H W, K output channels, R S kernel (rows, cols), P Q output (rows, cols).
// Padding is stored per side (top, bottom, left, right) because padding="same" with an even
// effective kernel pads one more row/column at the bottom/right, as PyTorch does.
#pragma once

#include "common.h"

#include <algorithm>
#include <array>
#include <climits>
#include <optional>

namespace fc {

using Pair = std::array<int64_t, 2>;

// Size limits, enforced here, before any output is allocated, for the device of the arrays:
// - every spatial size (H, W), kernel size (R, S) and geometry argument (kernel_size, stride,
//   padding, dilation, output_padding, output_size) is at most kMaxExtent, which keeps every
//   size computed from them within int64;
// - the CPU's convolution GEMMs call a BLAS with 32-bit integers (scipy-openblas32): their
//   matrix and leading dimensions (H*W, P*Q, C*R*S, K) are at most kBlasMaxDim (the CPU's
//   unfold and fold call no BLAS and are exempt);
// - the CUDA convolution kernels index one image's rows, pixels and reductions in 32 bits with a
//   tile of headroom: those sizes, padded extents and strided spans are at most kCudaMaxDim;
// - no array has more than kMaxNumel elements.
// Pooling indexes in 64 bits on both devices and is bounded by the first and last rules only.
constexpr int64_t kMaxExtent = INT_MAX;
constexpr int64_t kBlasMaxDim = INT_MAX;
constexpr int64_t kCudaMaxDim = (int64_t(1) << 30) - 1;

inline int64_t max_gemm_dim(Device dev) {
  return dev == Device::cuda ? kCudaMaxDim : kBlasMaxDim;
}

// What max_gemm_dim(dev) is, for messages.
inline const char* gemm_limit_why(Device dev) {
  return dev == Device::cuda
             ? "the largest size the CUDA kernels index in 32 bits"
             : "the largest matrix dimension of the CPU's 32-bit BLAS (scipy-openblas32)";
}

// A limit as messages print it: "2147483647 (2^31 - 1)".
inline std::string limit_str(int64_t v) {
  if (v == INT_MAX) return str(v, " (2^31 - 1)");
  if (v == kCudaMaxDim) return str(v, " (2^30 - 1)");
  if (v == kMaxNumel) return str(v, " (2^60 - 1)");
  return str(v);
}

// What the arrays of a Conv2dGeom are to the op that uses it (for messages): conv2d's input is
// conv_transpose2d's output, and fold's output is the image built from its input's blocks.
struct ConvRoles {
  const char* in;   // the (N, C, H, W) array
  const char* out;  // the (N, K, P, Q) array, or the (N, C*R*S, P*Q) blocks of unfold/fold
};
inline constexpr ConvRoles kConv2dRoles{"input", "output"};
inline constexpr ConvRoles kConvTranspose2dRoles{"output", "input"};
inline constexpr ConvRoles kUnfoldRoles{"input", "output"};
inline constexpr ConvRoles kFoldRoles{"output", "input"};

enum class PadMode { explicit_, valid, same };

struct Conv2dGeom {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t K = 0, R = 1, S = 1, groups = 1;
  int64_t stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  int64_t pad_t = 0, pad_b = 0, pad_l = 0, pad_r = 0;
  int64_t P = 0, Q = 0;

  int64_t Cg() const { return C / groups; }
  int64_t Kg() const { return K / groups; }
  int64_t RS() const { return R * S; }
  int64_t HW() const { return H * W; }
  int64_t PQ() const { return P * Q; }
  // A 1x1 window that reads every pixel once: the GEMM can use the input as the column matrix.
  // (P == H fails only for the conv2d equivalent to a transposed conv with output_padding.)
  bool direct_1x1() const {
    return R == 1 && S == 1 && stride_h == 1 && stride_w == 1 && pad_t == 0 && pad_b == 0 &&
           pad_l == 0 && pad_r == 0 && P == H && Q == W;
  }
  Shape in_shape() const { return {N, C, H, W}; }
  Shape weight_shape() const { return {K, Cg(), R, S}; }
  Shape out_shape() const { return {N, K, P, Q}; }
};

// Each function takes the device of the arrays the geometry is for and refuses sizes its
// kernels cannot index (see the limits above), with a ValueError naming the array, its shape,
// the size and the limit.

// conv2d: input (N, C, H, W), weight (K, C/groups, R, S).
Conv2dGeom conv2d_geom(const char* op, const Shape& input, const Shape& weight, Pair stride,
                       PadMode mode, Pair padding, Pair dilation, int64_t groups, Device dev);

// conv_transpose2d: input (N, C_in, H_in, W_in), weight (C_in, C_out/groups, R, S). Returns the
// EQUIVALENT conv2d, whose input is the transposed conv's output and whose output is its input:
// C = C_out, H W = H_out W_out (PyTorch's formula, output_padding at the bottom/right),
// K = C_in, P Q = H_in W_in; weight_shape() is then the transposed conv's weight shape.
Conv2dGeom conv_transpose2d_geom(const char* op, const Shape& input, const Shape& weight,
                                 Pair stride, Pair padding, Pair output_padding, Pair dilation,
                                 int64_t groups, Device dev);

// unfold / fold (im2col / col2im over a whole batch): no weight, groups = 1, K = 0. roles says
// which of (N, C, H, W) and (N, C*R*S, P*Q) is the op's input.
Conv2dGeom window_geom(const char* op, int64_t N, int64_t C, int64_t H, int64_t W, Pair kernel,
                       Pair stride, Pair padding, Pair dilation, const ConvRoles& roles,
                       Device dev);

// The size limits of a finished geometry on `dev` (the geometry functions apply them; the CUDA
// twins again, as a geometry may be reused with arrays of the other device).
void check_conv_limits(const char* op, const Conv2dGeom& g, const ConvRoles& roles, Device dev);

}  // namespace fc

namespace fc {

// One axis of a pooling window, shared by Pool2dGeom and the CUDA twins (csrc/cuda/pool.cu).
// pool_window: the input indices [i0, i1) step dil that window o of `out` reads, clipped to the
// input, i0 the first tap inside it (valid unless i0 >= i1); adaptive windows are
// [floor(o*in/out), ceil((o+1)*in/out)). This is PyTorch's CPU kernel's clipping, so argmax
// indices agree with it.
FC_HOST_DEVICE inline void pool_window(int64_t o, int64_t in, int64_t out, int64_t k,
                                       int64_t stride, int64_t pad, int64_t dil, bool adaptive,
                                       int64_t& i0, int64_t& i1) {
  if (adaptive) {
    i0 = o * in / out;
    i1 = ((o + 1) * in + out - 1) / out;
    return;
  }
  i0 = o * stride - pad;
  const int64_t end = i0 + (k - 1) * dil + 1;
  i1 = end < in ? end : in;
  if (i0 < 0) i0 += (-i0 + dil - 1) / dil * dil;
}

// Average pooling (dilation 1), PyTorch's AvgPool2d windows: window o's part [lo, hi) inside
// the input, and ext, its extent clipped to the padded input (so a ceil-mode window that runs
// past the padding counts only the part inside it), which count_include_pad divides by.
FC_HOST_DEVICE inline void avg_pool_span(int64_t o, int64_t in, int64_t k, int64_t stride,
                                         int64_t pad, int64_t& lo, int64_t& hi, int64_t& ext) {
  const int64_t start = o * stride - pad, end = start + k < in + pad ? start + k : in + pad;
  ext = end - start;
  lo = start > 0 ? start : 0;
  hi = end < in ? end : in;
}

// 1 / the divisor of an average-pooling window: divisor_override (nonzero), else its padded
// extent (ext_h * ext_w) with count_include_pad, else its clipped area.
FC_HOST_DEVICE inline double avg_pool_scale(int64_t divisor_override, bool count_include_pad,
                                            int64_t padded_area, int64_t area) {
  const int64_t div = divisor_override ? divisor_override
                      : count_include_pad ? padded_area
                                          : area;
  return 1.0 / double(div);
}

// Pooling windows. Names as above (P Q output rows/cols, R S window). A window covers input rows
// p*stride_h - pad_h + r*dil_h, r < R, clipped to the input; max/min pooling treats padding as
// never winning, so only the clipped rows are read. Adaptive pooling (adaptive = true) has no
// stride/padding: output row p covers [floor(p*H/P), ceil((p+1)*H/P)), as PyTorch.
// batched = false for a 3-D (C, H, W) input, which is pooled as N = 1 and keeps its 3-D shape.
struct Pool2dGeom {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t R = 1, S = 1;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
  bool ceil_mode = false, adaptive = false, batched = true;
  int64_t P = 0, Q = 0;

  int64_t planes() const { return N * C; }
  int64_t HW() const { return H * W; }
  int64_t PQ() const { return P * Q; }
  Shape in_shape() const { return batched ? Shape{N, C, H, W} : Shape{C, H, W}; }
  Shape out_shape() const { return batched ? Shape{N, C, P, Q} : Shape{C, P, Q}; }

  // Input rows [h0, h1) step dil_h read by output row p (pool_window); cols() likewise.
  void rows(int64_t p, int64_t& h0, int64_t& h1) const {
    pool_window(p, H, P, R, stride_h, pad_h, dil_h, adaptive, h0, h1);
  }
  void cols(int64_t q, int64_t& w0, int64_t& w1) const {
    pool_window(q, W, Q, S, stride_w, pad_w, dil_w, adaptive, w0, w1);
  }
};

// max/min/avg/lp/mixed pooling: input (N, C, H, W) or (C, H, W). Output size is PyTorch's
// formula, floor or (ceil_mode) ceil, where a ceil-mode window must start inside the input or
// the left padding; padding at most half the kernel, as PyTorch requires. Size limits as above.
Pool2dGeom pool2d_geom(const char* op, const Shape& input, Pair kernel, Pair stride,
                       Pair padding, Pair dilation, bool ceil_mode);

// adaptive pooling to output_size (P, Q); an absent entry keeps the input's size.
Pool2dGeom adaptive_pool2d_geom(const char* op, const Shape& input, std::optional<int64_t> P,
                                std::optional<int64_t> Q);

}  // namespace fc
