// Geometry of 2-D sliding-window ops: the ONE place output sizes are computed and checked.
// Names: input N C H W, K output channels, R S kernel (rows, cols), P Q output (rows, cols).
// Padding is stored per side (top, bottom, left, right) because padding="same" with an even
// effective kernel pads one more row/column at the bottom/right, as PyTorch does.
#pragma once

#include "common.h"

#include <array>

namespace fc {

using Pair = std::array<int64_t, 2>;

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

// conv2d: input (N, C, H, W), weight (K, C/groups, R, S).
Conv2dGeom conv2d_geom(const char* op, const Shape& input, const Shape& weight, Pair stride,
                       PadMode mode, Pair padding, Pair dilation, int64_t groups);

// conv_transpose2d: input (N, C_in, H_in, W_in), weight (C_in, C_out/groups, R, S). Returns the
// EQUIVALENT conv2d, whose input is the transposed conv's output and whose output is its input:
// C = C_out, H W = H_out W_out (PyTorch's formula, output_padding at the bottom/right),
// K = C_in, P Q = H_in W_in; weight_shape() is then the transposed conv's weight shape.
Conv2dGeom conv_transpose2d_geom(const char* op, const Shape& input, const Shape& weight,
                                 Pair stride, Pair padding, Pair output_padding, Pair dilation,
                                 int64_t groups);

// unfold / fold (im2col / col2im over a whole batch): no weight, groups = 1, K = 0.
Conv2dGeom window_geom(const char* op, int64_t N, int64_t C, int64_t H, int64_t W, Pair kernel,
                       Pair stride, Pair padding, Pair dilation);

}  // namespace fc
