// Output sizes and every shape rule of the sliding-window ops (see geometry.h).
#include "geometry.h"

#include <climits>
#include <cstring>

namespace fc {
namespace {

std::string pair_str(int64_t a, int64_t b) { return str('(', a, ", ", b, ')'); }

// A saturated size (mul_sat) is only known to exceed int64.
std::string size_str(int64_t v) { return v == INT64_MAX ? std::string("more than 2^63") : str(v); }

// A geometry argument (an (h, w) pair) within kMaxExtent; its lower bound is the caller's.
void check_arg(const char* op, const char* name, Pair v) {
  FC_CHECK(v[0] <= kMaxExtent && v[1] <= kMaxExtent, op, ": ", name, " must be at most ",
           limit_str(kMaxExtent), ", got ", pair_str(v[0], v[1]));
}

// A spatial or kernel size of array `name` within kMaxExtent.
void check_extent(const char* op, const char* name, const Shape& shape, const char* what,
                  int64_t v) {
  FC_CHECK(v <= kMaxExtent, op, ": ", name, " ", shape_str(shape), " has ", what, " = ", v,
           "; spatial and kernel sizes are at most ", limit_str(kMaxExtent));
}

void check_numel(const char* op, const char* name, const Shape& shape) {
  const int64_t n = numel_sat(shape);
  FC_CHECK(n <= kMaxNumel, op, ": ", name, " ", shape_str(shape), " would have ", size_str(n),
           " elements; an array has at most ", limit_str(kMaxNumel));
}

// A size the convolution kernels of `dev` index: a GEMM dimension on the CPU, a 32-bit index
// on the GPU.
void check_index(const char* op, const char* name, const Shape& shape, const char* what,
                 int64_t v, Device dev) {
  const int64_t max = max_gemm_dim(dev);
  FC_CHECK(v <= max, op, ": ", name, " ", shape_str(shape), " has ", what, " = ", size_str(v),
           ", more than ", limit_str(max), ", ", gemm_limit_why(dev));
}

// Output rows/cols with PyTorch's formula; rejects sizes below 1. The caller has bounded the
// sizes and arguments by kMaxExtent (padding="same" pads by at most a product of two of them),
// so these sums and products fit in int64.
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
}

}  // namespace

void check_conv_limits(const char* op, const Conv2dGeom& g, const ConvRoles& roles, Device dev) {
  const Shape in = g.in_shape();
  // unfold/fold (K = 0) have no weight; their other array is the blocks (N, C*R*S, P*Q).
  const bool windows = g.K == 0;
  const int64_t CRS = mul_sat(g.C, mul_sat(g.R, g.S)), PQ = mul_sat(g.P, g.Q);
  const Shape out = windows ? Shape{g.N, CRS, PQ} : g.out_shape();
  const Shape w = windows ? Shape{g.R, g.S} : g.weight_shape();
  const char* wname = windows ? "kernel_size" : "weight";
  // The CPU's unfold and fold (cpu/im2col.h) index in 64 bits and call no BLAS.
  if (!windows || dev == Device::cuda) {
    check_index(op, roles.in, in, "H*W", mul_sat(g.H, g.W), dev);
    check_index(op, roles.out, out, "P*Q", PQ, dev);
    check_index(op, wname, w, str("C*R*S (with ", roles.in, " channels C = ", g.C, ")").c_str(),
                CRS, dev);
  }
  if (!windows) check_index(op, wname, w, "weight.shape[0]", g.K, dev);
  if (dev == Device::cuda) {
    const Shape pads{g.pad_t, g.pad_b, g.pad_l, g.pad_r};
    check_index(op, roles.in, in, str("H + padding ", shape_str(pads), " rows").c_str(),
                g.H + g.pad_t + g.pad_b, dev);
    check_index(op, roles.in, in, str("W + padding ", shape_str(pads), " columns").c_str(),
                g.W + g.pad_l + g.pad_r, dev);
    check_index(op, roles.out, out, str("P*stride_h (stride_h = ", g.stride_h, ")").c_str(),
                mul_sat(g.P, g.stride_h), dev);
    check_index(op, roles.out, out, str("Q*stride_w (stride_w = ", g.stride_w, ")").c_str(),
                mul_sat(g.Q, g.stride_w), dev);
    check_index(op, wname, w, str("R*dilation_h (dilation_h = ", g.dil_h, ")").c_str(),
                mul_sat(g.R, g.dil_h), dev);
    check_index(op, wname, w, str("S*dilation_w (dilation_w = ", g.dil_w, ")").c_str(),
                mul_sat(g.S, g.dil_w), dev);
    if (!windows) check_index(op, wname, w, "K*R*S", mul_sat(g.K, mul_sat(g.R, g.S)), dev);
  }
  check_numel(op, roles.in, in);
  check_numel(op, roles.out, out);
}

Conv2dGeom conv2d_geom(const char* op, const Shape& input, const Shape& weight, Pair stride,
                       PadMode mode, Pair padding, Pair dilation, int64_t groups, Device dev) {
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
  FC_CHECK(weight[1] == g.C / groups, op, ": weight ", shape_str(weight), " with groups=",
           groups, " expects input with ", size_str(mul_sat(weight[1], groups)),
           " channels (weight.shape[1] * groups), got input ", shape_str(input));
  check_extent(op, "input", input, "H", g.H);
  check_extent(op, "input", input, "W", g.W);
  check_extent(op, "weight", weight, "R", g.R);
  check_extent(op, "weight", weight, "S", g.S);
  check_arg(op, "stride", stride);
  check_arg(op, "dilation", dilation);
  if (mode == PadMode::explicit_) check_arg(op, "padding", padding);
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
  check_conv_limits(op, g, kConv2dRoles, dev);
  return g;
}

Conv2dGeom conv_transpose2d_geom(const char* op, const Shape& input, const Shape& weight,
                                 Pair stride, Pair padding, Pair output_padding, Pair dilation,
                                 int64_t groups, Device dev) {
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
  check_extent(op, "input", input, "H", input[2]);
  check_extent(op, "input", input, "W", input[3]);
  check_extent(op, "weight", weight, "R", weight[2]);
  check_extent(op, "weight", weight, "S", weight[3]);
  check_arg(op, "stride", stride);
  check_arg(op, "padding", padding);
  check_arg(op, "output_padding", output_padding);
  check_arg(op, "dilation", dilation);
  for (int i = 0; i < 2; ++i) {
    FC_CHECK(output_padding[i] < stride[i] || output_padding[i] < dilation[i], op,
             ": output_padding must be smaller than either stride or dilation (as in PyTorch), got "
             "output_padding ", pair_str(output_padding[0], output_padding[1]), ", stride ",
             pair_str(stride[0], stride[1]), " and dilation ", pair_str(dilation[0], dilation[1]));
  }
  Conv2dGeom g;
  g.N = input[0]; g.K = input[1]; g.C = mul_sat(weight[1], groups);
  g.R = weight[2]; g.S = weight[3]; g.groups = groups;
  g.stride_h = stride[0]; g.stride_w = stride[1];
  g.dil_h = dilation[0]; g.dil_w = dilation[1];
  g.pad_t = g.pad_b = padding[0];
  g.pad_l = g.pad_r = padding[1];
  // Every term is at most kMaxExtent or a product of two such (< 2^62), and the two products
  // with the small terms stay below 2^63 - 2^32.
  g.H = (input[2] - 1) * g.stride_h + g.dil_h * (g.R - 1) + output_padding[0] + 1 - 2 * g.pad_t;
  g.W = (input[3] - 1) * g.stride_w + g.dil_w * (g.S - 1) + output_padding[1] + 1 - 2 * g.pad_l;
  FC_CHECK(g.H >= 1 && g.W >= 1, op, ": output size would be ", pair_str(g.H, g.W),
           " for input ", pair_str(input[2], input[3]), " with kernel ", pair_str(g.R, g.S),
           ", stride ", pair_str(g.stride_h, g.stride_w), ", padding ",
           pair_str(g.pad_t, g.pad_l), ", output_padding ",
           pair_str(output_padding[0], output_padding[1]), " and dilation ",
           pair_str(g.dil_h, g.dil_w), "; it must be at least 1: use less padding");
  check_extent(op, "output", g.in_shape(), "H", g.H);
  check_extent(op, "output", g.in_shape(), "W", g.W);
  finish(op, g);
  // The windows of the equivalent conv2d are the input pixels. finish() counts extra rows
  // (columns) when output_padding >= stride, which only dilation permits: those output rows lie
  // past every window, so the count is set, not computed.
  g.P = input[2];
  g.Q = input[3];
  check_conv_limits(op, g, kConvTranspose2dRoles, dev);
  return g;
}

Conv2dGeom window_geom(const char* op, int64_t N, int64_t C, int64_t H, int64_t W, Pair kernel,
                       Pair stride, Pair padding, Pair dilation, const ConvRoles& roles,
                       Device dev) {
  // (H, W) is unfold's input size and fold's output_size.
  const bool fold = std::strcmp(op, "fold") == 0;
  const char* size_name = fold ? "output_size" : "input";
  FC_CHECK(kernel[0] >= 1 && kernel[1] >= 1, op, ": kernel_size must be positive, got ",
           pair_str(kernel[0], kernel[1]));
  FC_CHECK(H >= 1 && W >= 1, op, ": ", size_name, " must have at least one row and column, got "
           "(H, W) = ", pair_str(H, W));
  FC_CHECK(N >= 0 && C >= 1, op, ": input must have at least one channel, got (N, C, H, W) = ",
           shape_str({N, C, H, W}));
  if (fold) {
    check_arg(op, "output_size", {H, W});
  } else {
    check_extent(op, roles.in, {N, C, H, W}, "H", H);
    check_extent(op, roles.in, {N, C, H, W}, "W", W);
  }
  check_arg(op, "kernel_size", kernel);
  check_arg(op, "stride", stride);
  check_arg(op, "padding", padding);
  check_arg(op, "dilation", dilation);
  Conv2dGeom g;
  g.N = N; g.C = C; g.H = H; g.W = W; g.R = kernel[0]; g.S = kernel[1];
  g.stride_h = stride[0]; g.stride_w = stride[1];
  g.dil_h = dilation[0]; g.dil_w = dilation[1];
  g.pad_t = g.pad_b = padding[0];
  g.pad_l = g.pad_r = padding[1];
  finish(op, g);
  check_conv_limits(op, g, roles, dev);
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
  check_extent(op, "input", input, "H", g.H);
  check_extent(op, "input", input, "W", g.W);
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
  check_arg(op, "kernel_size", kernel);
  check_arg(op, "stride", stride);
  check_arg(op, "dilation", dilation);
  FC_CHECK(padding[0] <= kernel[0] / 2 && padding[1] <= kernel[1] / 2, op, ": padding ",
           pair_str(padding[0], padding[1]), " must be at most half of kernel_size ",
           pair_str(kernel[0], kernel[1]), " (as in PyTorch)");
  check_arg(op, "kernel_size", kernel);
  check_arg(op, "stride", stride);
  check_arg(op, "dilation", dilation);
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
  check_numel(op, "output", g.out_shape());
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
  check_arg(op, "output_size", {g.P, g.Q});
  check_numel(op, "output", g.out_shape());
  g.R = g.S = 0;
  return g;
}

}  // namespace fc
