// Activation family: elementwise activations and softmax/log_softmax, forward and backward.
// Contract: outputs and input gradients are written, never accumulated (no parameters here).
// Elementwise kernels see any array as n contiguous elements, and out may alias inp (inplace).
// Softmax views the array as [outer, D, inner] and normalises over D. Formulas, NaN/Inf
// behaviour and kink conventions are PyTorch's (aten/src/ATen/native/cpu/Activation.cpp).
#pragma once

#include <cstdint>

#include "common.h"

namespace fc {

// The op list (see FC_DECLARE in common.h). Kinds, for the binding: Elementwise (out, inp, n,
// then the op's scalars; out may alias inp), ElementwiseGrad (dinp, dout, inp, n, scalars),
// ElementwiseGradOut (dinp, dout, and the forward's output or, when that is null, its input),
// Softmax (out, inp as [outer, D, inner]) and SoftmaxGrad (dinp, dout, the forward's output).
// The elementwise activations come from FC_ACT_ELEMENTWISE below, two twins each.
#define FC_ACT_OPS(X, T)                                                                   \
  FC_ACT_ELEMENTWISE(FC_ACT_ELEMENTWISE_OPS, X, T)                                         \
  /* out[outer, D, inner] = exp(inp - max) / sum(exp(inp - max)) over D. */                \
  X(softmax_forward, Softmax, T* out, const T* inp, int64_t outer, int64_t D, int64_t inner) \
  /* dinp[outer, D, inner] = out * (dout - sum(dout * out)) over D; out is softmax's. */   \
  X(softmax_backward, SoftmaxGrad, T* dinp, const T* dout, const T* out, int64_t outer,     \
    int64_t D, int64_t inner)                                                              \
  /* out[outer, D, inner] = inp - max - log(sum(exp(inp - max))) over D. */                \
  X(log_softmax_forward, Softmax, T* out, const T* inp, int64_t outer, int64_t D,           \
    int64_t inner)                                                                         \
  /* dinp[outer, D, inner] = dout - exp(out) * sum(dout) over D; out is log_softmax's. */  \
  X(log_softmax_backward, SoftmaxGrad, T* dinp, const T* dout, const T* out, int64_t outer, \
    int64_t D, int64_t inner)

// The elementwise activations: E(X, T, op, backward kind, (, scalar declarations), (scalar
// names)) per op, whose formulas are act::<op> below. Each gives two twins, declared through X:
//   <op>_forward  Elementwise         out[n] = f(inp), the scalars after n
//   <op>_backward ElementwiseGrad     dinp[n] = f'(inp) * dout
//              or ElementwiseGradOut  dinp[n] = from the forward's output (or its input)
// cpu/act.cpp, cuda/act.cu and bind/act.cpp generate every body from this list: a new
// elementwise activation is a line here and its formula struct.
#define FC_ACT_ELEMENTWISE(E, X, T)                                                        \
  E(X, T, relu, ElementwiseGrad, (), ())                                                   \
  E(X, T, leaky_relu, ElementwiseGrad, (, double negative_slope), (negative_slope))        \
  E(X, T, elu, ElementwiseGrad, (, double alpha), (alpha))                                 \
  E(X, T, sigmoid, ElementwiseGradOut, (), ())                                             \
  E(X, T, tanh, ElementwiseGradOut, (), ())                                                \
  E(X, T, softplus, ElementwiseGrad, (, double beta, double threshold), (beta, threshold))    \
  E(X, T, gelu, ElementwiseGrad, (), ())                                                   \
  E(X, T, gelu_tanh, ElementwiseGrad, (), ())                                              \
  E(X, T, silu, ElementwiseGrad, (), ())                                                   \
  E(X, T, mish, ElementwiseGrad, (), ())                                                   \
  E(X, T, hardswish, ElementwiseGrad, (), ())                                              \
  E(X, T, hardsigmoid, ElementwiseGrad, (), ())                                            \
  E(X, T, hardtanh, ElementwiseGrad, (, double min_val, double max_val), (min_val, max_val)) \
  E(X, T, relu6, ElementwiseGrad, (), ())                                                  \
  E(X, T, selu, ElementwiseGrad, (), ())                                                   \
  E(X, T, celu, ElementwiseGrad, (, double alpha), (alpha))

#define FC_ACT_UNPAREN(...) __VA_ARGS__
#define FC_ACT_ELEMENTWISE_OPS(X, T, op, bkind, decls, names)                              \
  X(op##_forward, Elementwise, T* out, const T* inp, int64_t n FC_ACT_UNPAREN decls)        \
  FC_ACT_BACKWARD_##bkind(X, T, op, decls)
#define FC_ACT_BACKWARD_ElementwiseGrad(X, T, op, decls)                                   \
  X(op##_backward, ElementwiseGrad, T* dinp, const T* dout, const T* inp,                   \
    int64_t n FC_ACT_UNPAREN decls)
#define FC_ACT_BACKWARD_ElementwiseGradOut(X, T, op, decls)                                \
  X(op##_backward, ElementwiseGradOut, T* dinp, const T* dout, const T* out, const T* inp,  \
    int64_t n FC_ACT_UNPAREN decls)

FC_ACT_OPS(FC_DECLARE, T)

// The four softmax twins of backend `dev` (cpu or cuda) from its
// softmax_forward<T, kLog>(out, inp, outer, D, inner) and
// softmax_backward<T, kLog>(dinp, dout, out, outer, D, inner) templates.
#define FC_SOFTMAX_TWINS(dev)                                                                   \
  template <typename T>                                                                         \
  void softmax_forward_##dev(T* out, const T* inp, int64_t outer, int64_t D, int64_t inner) {   \
    softmax_forward<T, false>(out, inp, outer, D, inner);                                       \
  }                                                                                             \
  template <typename T>                                                                         \
  void log_softmax_forward_##dev(T* out, const T* inp, int64_t outer, int64_t D,                \
                                 int64_t inner) {                                               \
    softmax_forward<T, true>(out, inp, outer, D, inner);                                        \
  }                                                                                             \
  template <typename T>                                                                         \
  void softmax_backward_##dev(T* dinp, const T* dout, const T* out, int64_t outer, int64_t D,   \
                              int64_t inner) {                                                  \
    softmax_backward<T, false>(dinp, dout, out, outer, D, inner);                               \
  }                                                                                             \
  template <typename T>                                                                         \
  void log_softmax_backward_##dev(T* dinp, const T* dout, const T* out, int64_t outer,          \
                                  int64_t D, int64_t inner) {                                   \
    softmax_backward<T, true>(dinp, dout, out, outer, D, inner);                                \
  }

// The per-element formulas both twins run, written once. M is the twin's math: M::exp,
// M::expm1, M::tanh, M::erf and M::log1p_exp (log1p(exp(v)), libm on both) for float and double,
// and M::select(c, a, b), c ? a : b (a blend of both values on the CPU, where gcc then
// vectorises). Scalars are rounded to T first, as PyTorch does. An op is a struct
// act::<op><M, T> made from its scalars, with forward(x) and backward(g, x), or, for
// ElementwiseGradOut, grad(g, y) from the forward's output y; kCheap marks formulas without
// transcendental calls (the CPU splits their loops across threads only at larger sizes).
namespace act {

template <typename M, typename T>
struct relu {
  static constexpr bool kCheap = true;
  // x < 0 rather than x > 0 so that NaN is kept.
  FC_HOST_DEVICE T forward(T x) const { return x < T(0) ? T(0) : x; }
  // PyTorch's threshold_backward: x <= 0 gives 0 (even for a NaN gradient), anything else,
  // NaN included, passes the gradient.
  FC_HOST_DEVICE T backward(T g, T x) const { return x <= T(0) ? T(0) : g; }
};

template <typename M, typename T>
struct leaky_relu {
  static constexpr bool kCheap = true;
  T s;
  FC_HOST_DEVICE explicit leaky_relu(double negative_slope) : s(T(negative_slope)) {}
  FC_HOST_DEVICE T forward(T x) const { return M::select(x > T(0), x, x * s); }
  FC_HOST_DEVICE T backward(T g, T x) const { return M::select(x > T(0), g, g * s); }
};

template <typename M, typename T>
struct elu {
  static constexpr bool kCheap = false;
  T a;
  FC_HOST_DEVICE explicit elu(double alpha) : a(T(alpha)) {}
  // x >= 0 takes the positive side, as PyTorch's vectorised elu kernel: elu(0) is 0 also for an
  // infinite or NaN alpha (0 * alpha would be NaN).
  FC_HOST_DEVICE T forward(T x) const { return M::select(x >= T(0), x, M::expm1(x) * a); }
  // elu'(0) = alpha and elu'(NaN) = NaN, as PyTorch's elu_backward (is_result=False).
  FC_HOST_DEVICE T backward(T g, T x) const {
    return M::select(x > T(0), g, g * a * M::exp(x));
  }
};

template <typename M, typename T>
struct sigmoid {
  static constexpr bool kCheap = false;
  FC_HOST_DEVICE T forward(T x) const { return T(1) / (T(1) + M::exp(-x)); }
  FC_HOST_DEVICE T grad(T g, T y) const { return g * (T(1) - y) * y; }
};

template <typename M, typename T>
struct tanh {
  static constexpr bool kCheap = false;
  FC_HOST_DEVICE T forward(T x) const { return M::tanh(x); }
  FC_HOST_DEVICE T grad(T g, T y) const { return g * (T(1) - y * y); }
};

template <typename M, typename T>
struct softplus {
  static constexpr bool kCheap = false;
  T b, t;
  FC_HOST_DEVICE softplus(double beta, double threshold) : b(T(beta)), t(T(threshold)) {}
  // Above the threshold log1p(exp(x * beta)) / beta equals x to working precision.
  FC_HOST_DEVICE T forward(T x) const { return x * b > t ? x : M::log1p_exp(x * b) / b; }
  FC_HOST_DEVICE T backward(T g, T x) const {
    const T z = M::exp(x * b);
    return M::select(x * b > t, g, g * z / (z + T(1)));
  }
};

// PyTorch's approximate='none': x * cdf(x) with cdf(x) = (1 + erf(x / sqrt(2))) / 2, and
// gelu'(x) = cdf(x) + x * exp(-x^2 / 2) / sqrt(2 pi), in its operation order.
template <typename M, typename T>
struct gelu {
  static constexpr bool kCheap = false;
  FC_HOST_DEVICE T forward(T x) const {
    return x * T(0.5) * (T(1) + M::erf(x * T(0.70710678118654752440)));
  }
  FC_HOST_DEVICE T backward(T g, T x) const {
    const T cdf = T(0.5) * (T(1) + M::erf(x * T(0.70710678118654752440)));
    const T pdf = T(0.39894228040143267794) * M::exp(x * x * T(-0.5));
    return g * (cdf + x * pdf);
  }
};

// PyTorch's approximate='tanh': x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))) and its
// derivative, in its operation order.
template <typename M, typename T>
struct gelu_tanh {
  static constexpr bool kCheap = false;
  static constexpr T kBeta = T(0.79788456080286535588);  // sqrt(2 / pi)
  static constexpr T kKappa = T(0.044715);
  FC_HOST_DEVICE T forward(T x) const {
    const T inner = kBeta * (x + kKappa * (x * x * x));
    return T(0.5) * x * (T(1) + M::tanh(inner));
  }
  FC_HOST_DEVICE T backward(T g, T x) const {
    const T x_sq = x * x;
    const T t = M::tanh(kBeta * (x + kKappa * (x_sq * x)));
    const T left = T(0.5) * x, right = T(1) + t;
    const T dleft = T(0.5) * right;
    const T dright = left * (T(1) - t * t) * kBeta * (T(1) + T(3) * kKappa * x_sq);
    return g * (dleft + dright);
  }
};

// x * sigmoid(x) as PyTorch's x / (1 + exp(-x)): silu(-inf) and silu'(+-inf) are NaN there too.
template <typename M, typename T>
struct silu {
  static constexpr bool kCheap = false;
  FC_HOST_DEVICE T forward(T x) const { return x / (T(1) + M::exp(-x)); }
  FC_HOST_DEVICE T backward(T g, T x) const {
    const T s = T(1) / (T(1) + M::exp(-x));
    return g * s * (T(1) + x * (T(1) - s));
  }
};

// x * tanh(softplus(x)) with softplus log1p(exp(x)) (no threshold), as PyTorch's.
template <typename M, typename T>
struct mish {
  static constexpr bool kCheap = false;
  FC_HOST_DEVICE T forward(T x) const { return x * M::tanh(M::log1p_exp(x)); }
  FC_HOST_DEVICE T backward(T g, T x) const {
    const T s = T(1) / (T(1) + M::exp(-x));
    const T t = M::tanh(M::log1p_exp(x));
    return g * (t + x * s * (T(1) - t * t));
  }
};

// min(max(v, 0), 6) keeping a NaN (a select on each compare, false for NaN), as PyTorch's
// vectorised clamps do.
template <typename M, typename T>
FC_HOST_DEVICE T clamp_0_6(T v) {
  v = M::select(v < T(0), T(0), v);
  return M::select(v > T(6), T(6), v);
}

// x * relu6(x + 3) / 6. The gradient is 0 at and below -3, g at and above 3, as PyTorch's; a
// NaN input gives NaN (its vectorised loop's blends; its scalar tail passes g).
template <typename M, typename T>
struct hardswish {
  static constexpr bool kCheap = true;
  FC_HOST_DEVICE T forward(T x) const { return x * clamp_0_6<M>(x + T(3)) / T(6); }
  FC_HOST_DEVICE T backward(T g, T x) const {
    const T inside = g * (x / T(3) + T(0.5));
    return M::select(x <= T(-3), T(0), M::select(x >= T(3), g, inside));
  }
};

// relu6(x + 3) / 6; the gradient g / 6 strictly inside (-3, 3), else 0 (NaN included). The
// gradient's 1/6 is PyTorch's float literal 1.0f / 6.0f in both dtypes (in float64 3e-8 off
// the exact sixth: its float64 hardsigmoid_backward is that far from g / 6, and so is this).
template <typename M, typename T>
struct hardsigmoid {
  static constexpr bool kCheap = true;
  FC_HOST_DEVICE T forward(T x) const { return clamp_0_6<M>(x + T(3)) / T(6); }
  FC_HOST_DEVICE T backward(T g, T x) const {
    return M::select(x > T(-3) && x < T(3), g * T(1.0f / 6.0f), T(0));
  }
};

// clamp(x, min_val, max_val) keeping NaN, and all NaN for a NaN bound (PyTorch's clamp); the
// gradient g strictly inside, else 0 (NaN included: PyTorch's vectorised loop). relu6 is
// hardtanh(0, 6).
template <typename M, typename T>
struct hardtanh {
  static constexpr bool kCheap = true;
  T lo, hi;
  bool nan_bound;
  FC_HOST_DEVICE hardtanh(double min_val, double max_val)
      : lo(T(min_val)), hi(T(max_val)), nan_bound(min_val != min_val || max_val != max_val) {}
  FC_HOST_DEVICE T forward(T x) const {
    return M::select(nan_bound, lo + hi, M::select(x < lo, lo, M::select(x > hi, hi, x)));
  }
  FC_HOST_DEVICE T backward(T g, T x) const { return M::select(x > lo && x < hi, g, T(0)); }
};

template <typename M, typename T>
struct relu6 : hardtanh<M, T> {
  FC_HOST_DEVICE relu6() : hardtanh<M, T>(0.0, 6.0) {}
};

// scale * elu(x, alpha) with SELU's constants, the negative side's coefficient alpha * scale
// rounded to T first, as PyTorch's elu kernel forms it.
template <typename M, typename T>
struct selu {
  static constexpr bool kCheap = false;
  static constexpr T kScale = T(1.0507009873554804934193349852946);
  static constexpr T kNeg = T(1.6732632423543772848170429916717) * kScale;
  FC_HOST_DEVICE T forward(T x) const {
    return M::select(x >= T(0), x * kScale, M::expm1(x) * kNeg);
  }
  FC_HOST_DEVICE T backward(T g, T x) const {
    return M::select(x > T(0), g * kScale, g * kNeg * M::exp(x));
  }
};

// elu with the input scaled by 1 / alpha on the negative side: alpha * expm1(x / alpha), as
// PyTorch's celu (elu(x, alpha, 1, 1 / alpha), 1 / alpha rounded to T; elu's x >= 0 side). Its
// backward's input scale is 1 / float(alpha) (derivatives.yaml: 1.0 / alpha.toFloat()), so this
// one's is too.
template <typename M, typename T>
struct celu {
  static constexpr bool kCheap = false;
  T a, inv, inv_grad;
  FC_HOST_DEVICE explicit celu(double alpha)
      : a(T(alpha)), inv(T(1.0 / alpha)), inv_grad(T(1.0 / double(float(alpha)))) {}
  FC_HOST_DEVICE T forward(T x) const { return M::select(x >= T(0), x, M::expm1(x * inv) * a); }
  FC_HOST_DEVICE T backward(T g, T x) const {
    return M::select(x > T(0), g, g * inv_grad * a * M::exp(x * inv_grad));
  }
};

}  // namespace act

}  // namespace fc
