// Output sizes and every shape rule of the sliding-window ops (see geometry.h).
#include "geometry.h"

#include <climits>
#include <cstring>

namespace fc {
namespace {

std::string pair_str(int64_t a, int64_t b) { return str('(', a, ", ", b, ')'); }

// The largest kernel size, stride, padding, dilation, output padding or spatial size accepted.
// Bounding every operand keeps the sizes computed from them (dilation * (kernel - 1) + 1,
// (H - 1) * stride + 2 * padding, ...) and the kernels' index arithmetic far from int64
// overflow, which would otherwise turn an impossible geometry into a "valid" one.
constexpr int64_t kMaxExtent = INT_MAX;

void check_extent(const char* op, const char* name, int64_t h, int64_t w) {
  FC_CHECK(h <= kMaxExtent && w <= kMaxExtent, op, ": ", name, " must be at most ", kMaxExtent,
           " along each side, got ", pair_str(h, w));
}

void check_extent(const char* op, const char* name, Pair v) { check_extent(op, name, v[0], v[1]); }

// Output rows/cols with PyTorch's formula; rejects sizes below 1 and sizes BLAS cannot index.
void finish(const char* op, Conv2dGeom& g) {
  FC_CHECK(g.stride_h > 0 && g.stride_w > 0, op, ": stride must be positive, got ",
           pair_str(g.stride_h, g.stride_w));
  FC_CHECK(g.dil_h > 0 && g.dil_w > 0, op, ": dilation must be positive, got ",
           pair_str(g.dil_h, g.dil_w));
  FC_CHECK(g.pad_t >= 0 && g.pad_b >= 0 && g.pad_l >= 0 && g.pad_r >= 0, op,
           ": padding must be non-negative, got ", pair_str(g.pad_t, g.pad_l));
  const int64_t eff_r = g.dil_h * (g.R - 1) + 1, eff_s = g.dil_w * (g.S - 1) + 1;
  const int64_t span_h = g.H + g.pad_t + g.pad_b - eff_r, span_w = g.W + g.pad_l + g.pad_r - eff_s;
  g.P = span_h < 0 ? 0 : span_h / g.stride_h + 1;
  g.Q = span_w < 0 ? 0 : span_w / g.stride_w + 1;
  FC_CHECK(g.P >= 1 && g.Q >= 1, op, ": output size would be ", pair_str(g.P, g.Q),
           " for input ", pair_str(g.H, g.W), " with kernel ", pair_str(g.R, g.S),
           ", padding (top ", g.pad_t, ", bottom ", g.pad_b, ", left ", g.pad_l, ", right ",
           g.pad_r, "), dilation ", pair_str(g.dil_h, g.dil_w), " and stride ",
           pair_str(g.stride_h, g.stride_w), "; it must be at least 1: pad the input or use a "
           "smaller kernel");
  FC_CHECK(g.PQ() < INT_MAX && g.HW() < INT_MAX && g.C * g.RS() < INT_MAX, op,
           ": input ", shape_str(g.in_shape()), " is too large for 32-bit BLAS indices");
}

}  // namespace

Conv2dGeom conv2d_geom(const char* op, const Shape& input, const Shape& weight, Pair stride,
                       PadMode mode, Pair padding, Pair dilation, int64_t groups) {
  FC_CHECK(input.size() == 4, op, ": input must be 4-D (N, C, H, W), got shape ",
           shape_str(input));
  FC_CHECK(weight.size() == 4, op, ": weight must be 4-D (K, C/groups, R, S), got shape ",
           shape_str(weight));
  FC_CHECK(groups >= 1, op, ": groups must be a positive integer, got ", groups);
  Conv2dGeom g;
  g.N = input[0]; g.C = input[1]; g.H = input[2]; g.W = input[3];
  g.K = weight[0]; g.R = weight[2]; g.S = weight[3]; g.groups = groups;
  FC_CHECK(g.C >= 1 && g.H >= 1 && g.W >= 1, op,
           ": input must have at least one channel, row and column, got shape ", shape_str(input));
  FC_CHECK(g.K >= 1 && weight[1] >= 1 && g.R >= 1 && g.S >= 1, op,
           ": weight must have no empty dimension, got shape ", shape_str(weight));
  FC_CHECK(g.C % groups == 0, op, ": groups=", groups, " must divide the input channels, but input ",
           shape_str(input), " has ", g.C);
  FC_CHECK(g.K % groups == 0, op, ": groups=", groups,
           " must divide the output channels, but weight ", shape_str(weight), " has ", g.K);
  FC_CHECK(weight[1] * groups == g.C, op, ": weight ", shape_str(weight), " with groups=", groups,
           " expects input with ", weight[1] * groups, " channels (weight.shape[1] * groups), got input ",
           shape_str(input));
  check_extent(op, "input", g.H, g.W);
  check_extent(op, "weight", g.R, g.S);
  check_extent(op, "stride", stride);
  check_extent(op, "dilation", dilation);
  if (mode == PadMode::explicit_) check_extent(op, "padding", padding);
  g.stride_h = stride[0]; g.stride_w = stride[1];
  g.dil_h = dilation[0]; g.dil_w = dilation[1];
  if (mode == PadMode::same) {
    FC_CHECK(g.stride_h == 1 && g.stride_w == 1, op,
             ": padding='same' needs stride 1 (as in PyTorch), got stride ",
             pair_str(g.stride_h, g.stride_w));
    FC_CHECK(g.dil_h > 0 && g.dil_w > 0, op, ": dilation must be positive, got ",
             pair_str(g.dil_h, g.dil_w));
    // Total padding dil*(k-1); PyTorch puts the odd one at the bottom/right.
    const int64_t th = g.dil_h * (g.R - 1), tw = g.dil_w * (g.S - 1);
    g.pad_t = th / 2; g.pad_b = th - th / 2;
    g.pad_l = tw / 2; g.pad_r = tw - tw / 2;
  } else if (mode == PadMode::explicit_) {
    g.pad_t = g.pad_b = padding[0];
    g.pad_l = g.pad_r = padding[1];
  }
  finish(op, g);
  return g;
}

Conv2dGeom conv_transpose2d_geom(const char* op, const Shape& input, const Shape& weight,
                                 Pair stride, Pair padding, Pair output_padding, Pair dilation,
                                 int64_t groups) {
  FC_CHECK(input.size() == 4, op, ": input must be 4-D (N, C_in, H, W), got shape ",
           shape_str(input));
  FC_CHECK(weight.size() == 4, op, ": weight must be 4-D (C_in, C_out/groups, R, S), got shape ",
           shape_str(weight));
  FC_CHECK(groups >= 1, op, ": groups must be a positive integer, got ", groups);
  FC_CHECK(input[1] >= 1 && input[2] >= 1 && input[3] >= 1, op,
           ": input must have at least one channel, row and column, got shape ", shape_str(input));
  FC_CHECK(weight[0] >= 1 && weight[1] >= 1 && weight[2] >= 1 && weight[3] >= 1, op,
           ": weight must have no empty dimension, got shape ", shape_str(weight));
  FC_CHECK(input[1] % groups == 0, op, ": groups=", groups,
           " must divide the input channels, but input ", shape_str(input), " has ", input[1]);
  FC_CHECK(weight[0] == input[1], op, ": weight ", shape_str(weight),
           " expects input with weight.shape[0] = ", weight[0], " channels, got input ",
           shape_str(input));
  FC_CHECK(stride[0] > 0 && stride[1] > 0, op, ": stride must be positive, got ",
           pair_str(stride[0], stride[1]));
  FC_CHECK(dilation[0] > 0 && dilation[1] > 0, op, ": dilation must be positive, got ",
           pair_str(dilation[0], dilation[1]));
  FC_CHECK(padding[0] >= 0 && padding[1] >= 0, op, ": padding must be non-negative, got ",
           pair_str(padding[0], padding[1]));
  FC_CHECK(output_padding[0] >= 0 && output_padding[1] >= 0, op,
           ": output_padding must be non-negative, got ",
           pair_str(output_padding[0], output_padding[1]));
  check_extent(op, "input", input[2], input[3]);
  check_extent(op, "weight", weight[2], weight[3]);
  check_extent(op, "stride", stride);
  check_extent(op, "padding", padding);
  check_extent(op, "output_padding", output_padding);
  check_extent(op, "dilation", dilation);
  for (int i = 0; i < 2; ++i) {
    FC_CHECK(output_padding[i] < stride[i] || output_padding[i] < dilation[i], op,
             ": output_padding must be smaller than either stride or dilation (as in PyTorch), got "
             "output_padding ", pair_str(output_padding[0], output_padding[1]), ", stride ",
             pair_str(stride[0], stride[1]), " and dilation ", pair_str(dilation[0], dilation[1]));
  }
  Conv2dGeom g;
  g.N = input[0]; g.K = input[1]; g.C = weight[1] * groups;
  g.R = weight[2]; g.S = weight[3]; g.groups = groups;
  g.stride_h = stride[0]; g.stride_w = stride[1];
  g.dil_h = dilation[0]; g.dil_w = dilation[1];
  g.pad_t = g.pad_b = padding[0];
  g.pad_l = g.pad_r = padding[1];
  g.H = (input[2] - 1) * g.stride_h - 2 * g.pad_t + g.dil_h * (g.R - 1) + output_padding[0] + 1;
  g.W = (input[3] - 1) * g.stride_w - 2 * g.pad_l + g.dil_w * (g.S - 1) + output_padding[1] + 1;
  FC_CHECK(g.H >= 1 && g.W >= 1, op, ": output size would be ", pair_str(g.H, g.W),
           " for input ", pair_str(input[2], input[3]), " with kernel ", pair_str(g.R, g.S),
           ", stride ", pair_str(g.stride_h, g.stride_w), ", padding ",
           pair_str(g.pad_t, g.pad_l), ", output_padding ",
           pair_str(output_padding[0], output_padding[1]), " and dilation ",
           pair_str(g.dil_h, g.dil_w), "; it must be at least 1: use less padding");
  finish(op, g);
  // The windows of the equivalent conv2d are the input pixels. finish() counts extra rows
  // (columns) when output_padding >= stride, which only dilation permits: those output rows lie
  // past every window, so the count is set, not computed.
  g.P = input[2];
  g.Q = input[3];
  return g;
}

Conv2dGeom window_geom(const char* op, int64_t N, int64_t C, int64_t H, int64_t W, Pair kernel,
                       Pair stride, Pair padding, Pair dilation) {
  // (H, W) is unfold's input size and fold's output_size.
  const char* size_name = std::strcmp(op, "fold") == 0 ? "output_size" : "input";
  FC_CHECK(kernel[0] >= 1 && kernel[1] >= 1, op, ": kernel_size must be positive, got ",
           pair_str(kernel[0], kernel[1]));
  FC_CHECK(H >= 1 && W >= 1, op, ": ", size_name, " must have at least one row and column, got "
           "(H, W) = ", pair_str(H, W));
  FC_CHECK(N >= 0 && C >= 1, op, ": input must have at least one channel, got (N, C, H, W) = ",
           shape_str({N, C, H, W}));
  check_extent(op, size_name, H, W);
  check_extent(op, "kernel_size", kernel);
  check_extent(op, "stride", stride);
  check_extent(op, "padding", padding);
  check_extent(op, "dilation", dilation);
  Conv2dGeom g;
  g.N = N; g.C = C; g.H = H; g.W = W; g.R = kernel[0]; g.S = kernel[1];
  g.stride_h = stride[0]; g.stride_w = stride[1];
  g.dil_h = dilation[0]; g.dil_w = dilation[1];
  g.pad_t = g.pad_b = padding[0];
  g.pad_l = g.pad_r = padding[1];
  finish(op, g);
  return g;
}

}  // namespace fc

namespace fc {
namespace {

// Reads (N, C, H, W) or (C, H, W) into g.
void pool_input(const char* op, const Shape& input, Pool2dGeom& g) {
  FC_CHECK(input.size() == 3 || input.size() == 4, op,
           ": input must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape ", shape_str(input));
  g.batched = input.size() == 4;
  const size_t o = g.batched ? 1 : 0;
  g.N = g.batched ? input[0] : 1;
  g.C = input[o]; g.H = input[o + 1]; g.W = input[o + 2];
  FC_CHECK(g.C >= 1 && g.H >= 1 && g.W >= 1, op,
           ": input must have at least one channel, row and column, got shape ", shape_str(input));
  check_extent(op, "input", g.H, g.W);
}

// PyTorch's pooling_output_shape: floor division (div_rtn), and in ceil mode a last window
// that would start in the right padding is dropped.
int64_t pool_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil, bool ceil) {
  const int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil ? stride - 1 : 0);
  int64_t out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
  if (ceil && (out - 1) * stride >= in + pad) --out;
  return out;
}

}  // namespace

Pool2dGeom pool2d_geom(const char* op, const Shape& input, Pair kernel, Pair stride,
                       Pair padding, Pair dilation, bool ceil_mode) {
  Pool2dGeom g;
  pool_input(op, input, g);
  FC_CHECK(kernel[0] >= 1 && kernel[1] >= 1, op, ": kernel_size must be positive, got ",
           pair_str(kernel[0], kernel[1]));
  FC_CHECK(stride[0] >= 1 && stride[1] >= 1, op, ": stride must be positive, got ",
           pair_str(stride[0], stride[1]));
  FC_CHECK(dilation[0] >= 1 && dilation[1] >= 1, op, ": dilation must be positive, got ",
           pair_str(dilation[0], dilation[1]));
  FC_CHECK(padding[0] >= 0 && padding[1] >= 0, op, ": padding must be non-negative, got ",
           pair_str(padding[0], padding[1]));
  check_extent(op, "kernel_size", kernel);
  check_extent(op, "stride", stride);
  check_extent(op, "dilation", dilation);
  FC_CHECK(padding[0] <= kernel[0] / 2 && padding[1] <= kernel[1] / 2, op, ": padding ",
           pair_str(padding[0], padding[1]), " must be at most half of kernel_size ",
           pair_str(kernel[0], kernel[1]), " (as in PyTorch)");
  g.R = kernel[0]; g.S = kernel[1];
  g.stride_h = stride[0]; g.stride_w = stride[1];
  g.pad_h = padding[0]; g.pad_w = padding[1];
  g.dil_h = dilation[0]; g.dil_w = dilation[1];
  g.ceil_mode = ceil_mode;
  g.P = pool_out_size(g.H, g.R, g.pad_h, g.stride_h, g.dil_h, ceil_mode);
  g.Q = pool_out_size(g.W, g.S, g.pad_w, g.stride_w, g.dil_w, ceil_mode);
  FC_CHECK(g.P >= 1 && g.Q >= 1, op, ": output size would be ", pair_str(g.P, g.Q),
           " for input ", shape_str(input), " with kernel_size ", pair_str(g.R, g.S),
           ", stride ", pair_str(g.stride_h, g.stride_w), ", padding ",
           pair_str(g.pad_h, g.pad_w), " and dilation ", pair_str(g.dil_h, g.dil_w),
           "; it must be at least 1: use a smaller kernel_size or a larger input");
  return g;
}

Pool2dGeom adaptive_pool2d_geom(const char* op, const Shape& input, std::optional<int64_t> P,
                                std::optional<int64_t> Q) {
  Pool2dGeom g;
  pool_input(op, input, g);
  g.adaptive = true;
  g.P = P.value_or(g.H);
  g.Q = Q.value_or(g.W);
  FC_CHECK(g.P >= 1 && g.Q >= 1, op, ": output_size must be positive, got ",
           pair_str(g.P, g.Q), " for input ", shape_str(input));
  check_extent(op, "output_size", g.P, g.Q);
  g.R = g.S = 0;
  return g;
}

}  // namespace fc
