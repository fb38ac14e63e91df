// Bindings of the convolution family: the op list (conv.h) through the generic binder, one
// crossing per call. Each binding reads its arrays, computes the geometry from their shapes and
// the Python scalars, allocates its outputs through the caller's allocator and returns them.
// conv_transpose2d's geometry (conv_transpose2d_geom) is the equivalent conv2d's: its in_shape
// is the transposed conv's OUTPUT shape and its out_shape the transposed conv's input shape, so
// both ops share one binder, with the roles of the two shapes swapped (Direct, Transposed).
#include "bind/generic.h"

#include "conv.h"
#include "geometry.h"

namespace fc::bind {
namespace {

PadMode pad_mode(const std::string& s) {
  if (s == "same") return PadMode::same;
  if (s == "valid") return PadMode::valid;
  FC_CHECK(s == "explicit", "padding mode must be 'explicit', 'valid' or 'same', got '", s, "'");
  return PadMode::explicit_;
}

std::string pair_str(int64_t a, int64_t b) { return str("(", a, ", ", b, ")"); }

// The geometry of a conv-kind op from its input x, weight w and Python scalars (Scalars), and
// the shapes it reads: its input is `in`, its output `out`, its bias per `channels`.
struct ConvShapes {
  Conv2dGeom g;
  Shape in, out;
  int64_t channels;
};

// conv2d: (stride, padding mode, padding, dilation, groups).
struct Direct {
  using Scalars = std::tuple<Pair, std::string, Pair, Pair, int64_t>;
  static ConvShapes shapes(const char* op, const Tensor& x, const Tensor& w, Pair stride,
                           const std::string& mode, Pair padding, Pair dilation, int64_t groups) {
    Conv2dGeom g = conv2d_geom(op, x.shape, w.shape, stride, pad_mode(mode), padding, dilation,
                               groups, x.device);
    return {g, g.in_shape(), g.out_shape(), g.K};
  }
};

// conv_transpose2d: (stride, padding, output_padding, dilation, groups).
struct Transposed {
  using Scalars = std::tuple<Pair, Pair, Pair, Pair, int64_t>;
  static ConvShapes shapes(const char* op, const Tensor& x, const Tensor& w, Pair stride,
                           Pair padding, Pair output_padding, Pair dilation, int64_t groups) {
    Conv2dGeom g = conv_transpose2d_geom(op, x.shape, w.shape, stride, padding, output_padding,
                                         dilation, groups, x.device);
    return {g, g.out_shape(), g.in_shape(), g.C};
  }
};

// The geometry of a window op from its input x and Python scalars, and its output's shape.
struct WindowShapes {
  Conv2dGeom g;
  Shape out;
};

// unfold: (kernel_size, dilation, padding, stride); x is (N, C, H, W).
struct Unfold {
  using Scalars = std::tuple<Pair, Pair, Pair, Pair>;
  static WindowShapes shapes(const char* op, const Tensor& x, Pair kernel, Pair dilation,
                             Pair padding, Pair stride) {
    FC_CHECK(x.shape.size() == 4, op, ": input must be 4-D (N, C, H, W), got shape ",
             shape_str(x.shape));
    Conv2dGeom g = window_geom(op, x.shape[0], x.shape[1], x.shape[2], x.shape[3], kernel,
                               stride, padding, dilation, kUnfoldRoles, x.device);
    return {g, {g.N, g.C * g.RS(), g.PQ()}};
  }
};

// fold: (output_size, kernel_size, dilation, padding, stride); x is (N, C*R*S, L).
struct Fold {
  using Scalars = std::tuple<Pair, Pair, Pair, Pair, Pair>;
  static WindowShapes shapes(const char* op, const Tensor& x, Pair size, Pair kernel,
                             Pair dilation, Pair padding, Pair stride) {
    FC_CHECK(x.shape.size() == 3, op, ": input must be 3-D (N, C*R*S, L), got shape ",
             shape_str(x.shape));
    const auto [R, S] = kernel;
    FC_CHECK(R >= 1 && S >= 1, op, ": kernel_size must be positive, got ", pair_str(R, S));
    const int64_t CRS = x.shape[1], RS = mul_sat(R, S);
    FC_CHECK(CRS >= RS && CRS % RS == 0, op, ": input.shape[1] = ", CRS,
             " must be a positive multiple of the kernel area ", R, "*", S);
    Conv2dGeom g = window_geom(op, x.shape[0], CRS / RS, size[0], size[1], kernel, stride,
                               padding, dilation, kFoldRoles, x.device);
    FC_CHECK(x.shape[2] == g.PQ(), op, ": input.shape[2] = ", x.shape[2],
             " must equal the number of sliding blocks ", g.P, "*", g.Q, " = ", g.PQ(),
             " for output_size ", pair_str(size[0], size[1]));
    return {g, g.in_shape()};
  }
};

// Which scalars and shapes an op takes, by its tag.
Direct roles(decltype(FC_TAG(conv2d_forward))) { return {}; }
Direct roles(decltype(FC_TAG(conv2d_backward))) { return {}; }
Transposed roles(decltype(FC_TAG(conv_transpose2d_forward))) { return {}; }
Transposed roles(decltype(FC_TAG(conv_transpose2d_backward))) { return {}; }
Unfold roles(decltype(FC_TAG(unfold))) { return {}; }
Fold roles(decltype(FC_TAG(fold))) { return {}; }

// Registers `name` as the binding Make::make<Roles, G...>(op, pick), G the Roles' Python scalars.
template <typename Make, typename Roles, typename Pick, typename... G>
void def_roles(py::module_& m, const char* name, std::string op, Pick pick, std::tuple<G...>*) {
  m.def(name, Make::template make<Roles, G...>(std::move(op), pick));
}

// A kind's def() for bind_op: the op's roles (by its tag) give the Python scalars, with which
// Kind::make builds the binding.
template <typename Kind>
struct ByRoles {
  template <typename... S, typename Pick, typename Tag>
  static void def(py::module_& m, const char* name, std::string op, Pick pick, Tag tag) {
    using Roles = decltype(roles(tag));
    def_roles<Kind, Roles>(m, name, std::move(op), pick,
                           static_cast<typename Roles::Scalars*>(nullptr));
  }
};

// Python (empty, input, scalars...) -> out: kernel(out, inp, g).
struct Window : ByRoles<Window> {
  static constexpr size_t kArrays = 3;
  template <typename Roles, typename... G, typename Pick>
  static auto make(std::string op, Pick pick) {
    return [op, pick](py::handle alloc, py::handle input, G... geo) {
      const char* o = op.c_str();
      Tensor x = read(input, o, "input");
      const WindowShapes s = Roles::shapes(o, x, geo...);
      Output out = allocate(alloc, input, x, s.out, o, "out");
      Launch(x).run(x.dtype, [&](auto t) {
        using T = decltype(t);
        pick(x.device, t)(out.view.data<T>(), x.data<T>(), s.g);
      });
      return out.array;
    };
  }
};

// Reads a conv-kind op's input and weight and computes its geometry.
template <typename Roles, typename... G>
ConvShapes conv_inputs(const char* op, py::handle input, py::handle weight, Tensor& x,
                       Tensor& w, G... geo) {
  x = read(input, op, "input");
  w = read(weight, op, "weight");
  same_dtype(w, x, op, "weight", "input");
  return Roles::shapes(op, x, w, geo...);
}

// Python (empty, input, weight, bias or None, scalars...) -> out:
// kernel(out, inp, weight, bias or null, g).
struct Conv : ByRoles<Conv> {
  static constexpr size_t kArrays = 5;
  template <typename Roles, typename... G, typename Pick>
  static auto make(std::string op, Pick pick) {
    return [op, pick](py::handle alloc, py::handle input, py::handle weight, py::handle bias_,
                      G... geo) {
      const char* o = op.c_str();
      Tensor x, w;
      const ConvShapes s = conv_inputs<Roles>(o, input, weight, x, w, geo...);
      std::optional<Tensor> b;
      if (!bias_.is_none()) b = read_like(bias_, x, {s.channels}, o, "bias");
      Output out = allocate(alloc, input, x, s.out, o, "out");
      Launch(x).run(x.dtype, [&](auto t) {
        using T = decltype(t);
        pick(x.device, t)(out.view.data<T>(), x.data<T>(), w.data<T>(), ptr<T>(b), s.g);
      });
      return out.array;
    };
  }
};

// Python (empty, zeros, grad_output, input, weight, need_input, need_weight, need_bias,
// grad_weight or None, grad_bias or None, scalars...) -> (grad_input, grad_weight, grad_bias),
// None where not needed: kernel(dinp, dweight, dbias, dout, inp, weight, g). A parameter
// gradient is a fresh zeros array, or the caller's to accumulate into (returned as given).
struct ConvGrad : ByRoles<ConvGrad> {
  static constexpr size_t kArrays = 7;

  template <typename Roles, typename... G, typename Pick>
  static auto make(std::string op, Pick pick) {
    // The forward's name, for where grad_output's shape comes from.
    const std::string note =
        "the " + op.substr(0, op.size() - std::strlen("_backward")) +
        " output for this input, weight and geometry";
    return [op, note, pick](py::handle alloc, py::handle zeros, py::handle dout_,
                            py::handle input, py::handle weight, bool need_input,
                            bool need_weight, bool need_bias, py::handle grad_weight,
                            py::handle grad_bias, G... geo) {
      const char* o = op.c_str();
      Tensor x, w;
      const ConvShapes s = conv_inputs<Roles>(o, input, weight, x, w, geo...);
      Tensor dout = read_like(dout_, x, s.out, o, "grad_output", false, note.c_str());
      const GradOutputs g = grad_outputs(alloc, zeros, input, x, o, need_input, s.in, need_weight,
                                         grad_weight, s.g.weight_shape(), need_bias, grad_bias,
                                         {s.channels});
      Launch(x).run(x.dtype, [&](auto t) {
        using T = decltype(t);
        pick(x.device, t)(ptr<T>(g.input), ptr<T>(g.weight), ptr<T>(g.bias), dout.data<T>(),
                          x.data<T>(), w.data<T>(), s.g);
      });
      return g.arrays;
    };
  }
};

}  // namespace

void bind_conv(py::module_& m) {
  FC_CONV_OPS(FC_BIND_OP, T)
  // (input, weight, conv2d's scalars) -> {pass: algorithm} for CPU arrays; conv2d_algorithm_cpu.
  m.def("conv2d_algorithm", [](py::handle input, py::handle weight, Pair stride,
                               const std::string& mode, Pair padding, Pair dilation,
                               int64_t groups) {
    const char* o = "conv2d_algorithm";
    Tensor x, w;
    const ConvShapes s = conv_inputs<Direct>(o, input, weight, x, w, stride, mode, padding,
                                             dilation, groups);
    if (x.device != Device::cpu) {
      throw TypeError(str(o, ": input must be a CPU array (NumPy), got a GPU array: the CUDA ",
                          "kernels have one algorithm per pass"));
    }
    std::array<const char*, 3> names{};
    dispatch(x.dtype, [&](auto t) { names = conv2d_algorithm_cpu<decltype(t)>(s.g); });
    py::dict d;
    d["forward"] = names[0];
    d["grad_input"] = names[1];
    d["grad_weight"] = names[2];
    return d;
  });
}

}  // namespace fc::bind
