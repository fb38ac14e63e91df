// Bindings of the pooling family: the op list (pool.h) through the generic binder, one crossing
// per call. A binding reads the input, makes the geometry from the Python scalars (pool2d_geom
// or adaptive_pool2d_geom), checks the op's rules once, allocates its outputs through the
// caller's `empty` (allocate()) and returns them: Python (empty, arrays..., window...,
// scalars...).
#include "bind/generic.h"

#include <array>
#include <cmath>

#include "geometry.h"
#include "pool.h"

namespace fc::bind {

// How a call gives its windows, as Python arguments after the arrays.
// Window: kernel, stride, padding, dilation, ceil_mode; an op whose kernels ignore some of them
// refuses any but the neutral value (check_geometry) rather than misread them.
struct Window {
  using Args = std::tuple<Pair, Pair, Pair, Pair, bool>;
  static Pool2dGeom make(const char* op, const Shape& in, Pair kernel, Pair stride, Pair padding,
                         Pair dilation, bool ceil_mode) {
    return pool2d_geom(op, in, kernel, stride, padding, dilation, ceil_mode);
  }
};

// Adaptive: output_size (P, Q), None keeping the input's size.
struct Adaptive {
  using Args = std::tuple<std::optional<int64_t>, std::optional<int64_t>>;
  static Pool2dGeom make(const char* op, const Shape& in, std::optional<int64_t> P,
                         std::optional<int64_t> Q) {
    return adaptive_pool2d_geom(op, in, P, Q);
  }
};

// Geometry rules of one op, as check() is for its scalars (generic.h): the default accepts any.
template <auto Twin>
void check_geometry(OpTag<Twin>, const char*, const Pool2dGeom&) {}

namespace {

void check_window(const Pool2dGeom& g, const char* op, bool padding, bool ceil_mode) {
  FC_CHECK(g.dil_h == 1 && g.dil_w == 1, op, ": takes no dilation, got a geometry with dilation (",
           g.dil_h, ", ", g.dil_w, ")");
  FC_CHECK(padding || (g.pad_h == 0 && g.pad_w == 0), op,
           ": takes no padding, got a geometry with padding (", g.pad_h, ", ", g.pad_w, ")");
  FC_CHECK(ceil_mode || !g.ceil_mode, op, ": takes no ceil_mode, got a ceil_mode geometry");
}

void check_divisor(std::optional<int64_t> divisor_override, const char* op) {
  FC_CHECK(divisor_override.value_or(1) != 0, op, ": divisor_override must be nonzero, got 0");
}

void check_alpha(double alpha, const char* op) {
  FC_CHECK(alpha >= 0 && alpha <= 1, op, ": alpha must be in [0, 1], got ", alpha);
}

void check_norm_type(double p, const char* op) {
  FC_CHECK(p > 0 && std::isfinite(p), op,
           ": norm_type must be a positive finite number (or inf), got ", p);
}

}  // namespace

// avg, lp and mixed pooling have no dilation (and lp no padding, mixed no ceil_mode).
#define FC_POOL_RULES(name, padding, ceil_mode)                                  \
  void check_geometry(OpTag<&name##_cpu<float>>, const char* op, const Pool2dGeom& g) { \
    check_window(g, op, padding, ceil_mode);                                     \
  }
FC_POOL_RULES(avg_pool2d_forward, true, true)
FC_POOL_RULES(avg_pool2d_backward, true, true)
FC_POOL_RULES(lp_pool2d_forward, false, true)
FC_POOL_RULES(lp_pool2d_backward, false, true)
FC_POOL_RULES(mixed_pool2d_forward, true, false)
FC_POOL_RULES(mixed_pool2d_backward, true, false)
#undef FC_POOL_RULES

void check(OpTag<&avg_pool2d_forward_cpu<float>>, const char* op, bool,
           std::optional<int64_t> divisor_override) {
  check_divisor(divisor_override, op);
}
void check(OpTag<&avg_pool2d_backward_cpu<float>>, const char* op, bool,
           std::optional<int64_t> divisor_override) {
  check_divisor(divisor_override, op);
}
void check(OpTag<&lp_pool2d_forward_cpu<float>>, const char* op, double p) {
  check_norm_type(p, op);
}
void check(OpTag<&lp_pool2d_backward_cpu<float>>, const char* op, double p) {
  check_norm_type(p, op);
}
void check(OpTag<&mixed_pool2d_forward_cpu<float>>, const char* op, double alpha) {
  check_alpha(alpha, op);
}
void check(OpTag<&mixed_pool2d_backward_cpu<float>>, const char* op, double alpha) {
  check_alpha(alpha, op);
}

namespace {

// A twin's scalar as Python passes it: an int64_t (avg's divisor_override) is optional, None
// being the kernels' 0; check() sees the Python value, so an explicit 0 is refused.
template <typename T> struct Scalar {
  using Py = T;
  static T get(T v) { return v; }
};
template <> struct Scalar<int64_t> {
  using Py = std::optional<int64_t>;
  static int64_t get(std::optional<int64_t> v) { return v.value_or(0); }
};

template <size_t> using Handle = py::handle;

// Registers a pooling op: Python (empty, arrays..., geometry args..., scalars...), the input
// the last array. Reads the input, makes and checks the geometry and scalars, then
// Layout::call reads the other arrays, allocates the outputs, launches and returns them.
template <typename Layout, typename Geom, typename... S, typename Pick, typename Tag,
          typename... G, size_t... I>
void def_pool(py::module_& m, const char* name, std::string op, Pick pick, Tag tag,
              std::tuple<G...>*, std::index_sequence<I...>) {
  m.def(name, [op, pick, tag](py::handle alloc, Handle<I>... arrays, G... geometry,
                              typename Scalar<S>::Py... s) {
    const char* o = op.c_str();
    const std::array<py::handle, sizeof...(I)> a{arrays...};
    const Tensor x = read(a.back(), o, "input");
    const Pool2dGeom g = Geom::make(o, x.shape, geometry...);
    check_geometry(tag, o, g);
    check(tag, o, s...);
    return Layout::call(o, alloc, a, x, g, pick, Scalar<S>::get(s)...);
  });
}

// A kind of the op list: an argument layout on a way of giving windows.
template <typename Layout, typename Geom>
struct Kind {
  static constexpr size_t kArrays = Layout::kArrays;
  template <typename... S, typename Pick, typename Tag>
  static void def(py::module_& m, const char* name, std::string op, Pick pick, Tag tag) {
    def_pool<Layout, Geom, S...>(m, name, std::move(op), pick, tag,
                                 static_cast<typename Geom::Args*>(nullptr),
                                 std::make_index_sequence<Layout::kInputs>{});
  }
};

Tensor grad_output(const char* op, py::handle dout_, const Tensor& x, const Pool2dGeom& g) {
  return read_like(dout_, x, g.out_shape(), op, "grad_output", false,
                   "the pooled output for this input and geometry");
}

// (need_indices, input): kernel(out, idx or null, inp, g); returns (out, indices or None).
// need_indices is a Python bool in the arrays' place (the input must come last).
struct ArgPoolLayout {
  static constexpr size_t kArrays = 4, kInputs = 2;
  template <typename Pick>
  static py::tuple call(const char* op, py::handle alloc, const std::array<py::handle, 2>& a,
                        const Tensor& x, const Pool2dGeom& g, Pick pick) {
    FC_CHECK(py::isinstance<py::bool_>(a[0]), op, ": need_indices must be a bool");
    const bool need = a[0].cast<bool>();
    Output out = allocate(alloc, a[1], x, g.out_shape(), op, "out");
    std::optional<Output> idx;
    if (need) idx = allocate(alloc, a[1], x, g.out_shape(), op, "indices", true);
    Launch(x).run(x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(x.device, t)(out.view.data<T>(), idx ? idx->view.data<int64_t>() : nullptr,
                        x.data<T>(), g);
    });
    return py::make_tuple(out.array, idx ? py::object(idx->array) : py::none());
  }
};

// (grad_output, indices or None, input): kernel(dinp, dout, idx, inp, g, kMin); returns
// grad_input.
template <bool kMin>
struct ArgPoolGradLayout {
  static constexpr size_t kArrays = 6, kInputs = 3;
  template <typename Pick>
  static py::object call(const char* op, py::handle alloc, const std::array<py::handle, 3>& a,
                         const Tensor& x, const Pool2dGeom& g, Pick pick) {
    const Tensor dout = grad_output(op, a[0], x, g);
    std::optional<Tensor> idx;
    if (!a[1].is_none()) {
      idx = read(a[1], op, "indices", false, kInt64);
      FC_CHECK(idx->shape == g.out_shape(), op, ": indices must have shape ",
               shape_str(g.out_shape()), " (the pooled output's), got ", shape_str(idx->shape));
      same_device(*idx, x, op, "indices", "input");
    }
    Output dinp = allocate(alloc, a[2], x, g.in_shape(), op, "grad_input");
    Launch(x).run(x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(x.device, t)(dinp.view.data<T>(), dout.data<T>(), ptr<int64_t>(idx), x.data<T>(), g,
                        kMin);
    });
    return dinp.array;
  }
};

// (input): kernel(out, inp, g, scalars...); returns out.
struct PoolLayout {
  static constexpr size_t kArrays = 3, kInputs = 1;
  template <typename Pick, typename... S>
  static py::object call(const char* op, py::handle alloc, const std::array<py::handle, 1>& a,
                         const Tensor& x, const Pool2dGeom& g, Pick pick, S... s) {
    Output out = allocate(alloc, a[0], x, g.out_shape(), op, "out");
    Launch(x).run(x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(x.device, t)(out.view.data<T>(), x.data<T>(), g, s...);
    });
    return out.array;
  }
};

// (grad_output, input): kernel(dinp, dout, inp, g, scalars...), or for a linear pooling
// (kLinear: its adjoint needs no input) kernel(dinp, dout, g, scalars...); returns grad_input.
template <bool kLinear>
struct PoolGradLayout {
  static constexpr size_t kArrays = kLinear ? 3 : 4, kInputs = 2;
  template <typename Pick, typename... S>
  static py::object call(const char* op, py::handle alloc, const std::array<py::handle, 2>& a,
                         const Tensor& x, const Pool2dGeom& g, Pick pick, S... s) {
    const Tensor dout = grad_output(op, a[0], x, g);
    Output dinp = allocate(alloc, a[1], x, g.in_shape(), op, "grad_input");
    Launch(x).run(x.dtype, [&](auto t) {
      using T = decltype(t);
      if constexpr (kLinear) {
        pick(x.device, t)(dinp.view.data<T>(), dout.data<T>(), g, s...);
      } else {
        pick(x.device, t)(dinp.view.data<T>(), dout.data<T>(), x.data<T>(), g, s...);
      }
    });
    return dinp.array;
  }
};

// The kinds pool.h names.
using ArgPool = Kind<ArgPoolLayout, Window>;
using ArgPoolGrad = Kind<ArgPoolGradLayout<false>, Window>;
using Pool = Kind<PoolLayout, Window>;
using PoolGrad = Kind<PoolGradLayout<false>, Window>;
using LinearPoolGrad = Kind<PoolGradLayout<true>, Window>;
using AdaptivePool = Kind<PoolLayout, Adaptive>;
using AdaptiveLinearPoolGrad = Kind<PoolGradLayout<true>, Adaptive>;

}  // namespace

void bind_pool(py::module_& m) {
  FC_POOL_OPS(FC_BIND_OP, T)
  // Ops that run another op's twin: adaptive max pooling is max pooling on adaptive windows,
  // min pooling's gradient max pooling's with is_min.
  const auto max_fwd = FC_PICK(max_pool2d_forward);
  const auto max_bwd = FC_PICK(max_pool2d_backward);
  bind_op<Kind<ArgPoolLayout, Adaptive>>(m, "adaptive_max_pool2d_forward", max_fwd,
                                         FC_TAG(max_pool2d_forward));
  bind_op<Kind<ArgPoolGradLayout<false>, Adaptive>>(m, "adaptive_max_pool2d_backward", max_bwd,
                                                    FC_TAG(max_pool2d_backward));
  bind_op<Kind<ArgPoolGradLayout<true>, Window>>(m, "min_pool2d_backward", max_bwd,
                                                 FC_TAG(max_pool2d_backward));
  // lp pooling with norm_type=inf is max pooling of |input| (Python passes |input|), under
  // lp_pool2d's name.
  ArgPool::def<>(m, "lp_pool2d_inf_forward", "lp_pool2d", max_fwd, FC_TAG(max_pool2d_forward));
  ArgPoolGrad::def<>(m, "lp_pool2d_inf_backward", "lp_pool2d_backward", max_bwd,
                     FC_TAG(max_pool2d_backward));
}

}  // namespace fc::bind
