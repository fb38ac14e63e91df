// Bindings of the activation family: the op list (act.h) through the generic binder. The kinds
// below read each argument layout once; forwards write `out` (the input itself for inplace=True)
// and every binding returns the array it wrote, so a functional call is one crossing.
#include "bind/generic.h"

#include "act.h"

namespace fc::bind {
namespace {

// grad_output like `ref` (the input, or the forward's output).
Tensor grad_like(const char* op, py::handle dout_, const Tensor& ref, const char* ref_name) {
  Tensor dout = read(dout_, op, "grad_output");
  same_dtype(dout, ref, op, "grad_output", ref_name);
  FC_CHECK(dout.shape == ref.shape, op, ": grad_output must have shape ", shape_str(ref.shape),
           " (the shape of ", ref_name, "), got ", shape_str(dout.shape));
  return dout;
}

// An output like ref (its dtype and shape), returned to the caller.
py::object output_like(const char* op, const char* name, py::handle obj, const Tensor& ref,
                       Tensor& out) {
  out = read_like(obj, ref, ref.shape, op, name, true);
  return py::reinterpret_borrow<py::object>(obj);
}

// Python (out, input, scalars...): kernel(out, inp, n, scalars...); out may be input.
struct Elementwise {
  static constexpr size_t kArrays = 3;
  template <typename... S, typename Pick, typename Tag>
  static void def(py::module_& m, const char* name, std::string op, Pick pick, Tag tag) {
    m.def(name, [op, pick, tag](py::handle out_, py::handle input, S... s) {
      check(tag, op.c_str(), s...);
      const bool inplace = out_.is(input);
      Tensor x = read(input, op.c_str(), "input", inplace), out = x;
      py::object o = inplace ? py::reinterpret_borrow<py::object>(input)
                             : output_like(op.c_str(), "out", out_, x, out);
      Launch(x).run(x.dtype, [&](auto t) {
        using T = decltype(t);
        pick(x.device, t)(out.data<T>(), x.data<T>(), x.numel(), s...);
      });
      return o;
    });
  }
};

// Python (grad_input, grad_output, input, scalars...): kernel(dinp, dout, inp, n, scalars...).
struct ElementwiseGrad {
  static constexpr size_t kArrays = 4;
  template <typename... S, typename Pick, typename Tag>
  static void def(py::module_& m, const char* name, std::string op, Pick pick, Tag tag) {
    m.def(name, [op, pick, tag](py::handle dinp_, py::handle dout_, py::handle input, S... s) {
      const char* o = op.c_str();
      check(tag, o, s...);
      Tensor x = read(input, o, "input"), dout = grad_like(o, dout_, x, "input"), dinp;
      py::object d = output_like(o, "grad_input", dinp_, x, dinp);
      Launch(x).run(x.dtype, [&](auto t) {
        using T = decltype(t);
        pick(x.device, t)(dinp.data<T>(), dout.data<T>(), x.data<T>(), x.numel(), s...);
      });
      return d;
    });
  }
};

// Python (grad_input, grad_output, input, output, scalars...): kernel(dinp, dout, out, inp, n,
// scalars...) from the forward's output when given (inp null), else from its input (out null).
struct ElementwiseGradOut {
  static constexpr size_t kArrays = 5;
  template <typename... S, typename Pick, typename Tag>
  static void def(py::module_& m, const char* name, std::string op, Pick pick, Tag tag) {
    m.def(name, [op, pick, tag](py::handle dinp_, py::handle dout_, py::handle input,
                                py::handle output, S... s) {
      const char* o = op.c_str();
      check(tag, o, s...);
      FC_CHECK(!input.is_none() || !output.is_none(), o, ": pass input or output=");
      std::optional<Tensor> x, y;
      if (!input.is_none()) x = read(input, o, "input");
      if (!output.is_none()) y = read(output, o, "output");
      if (x && y) {
        same_dtype(*y, *x, o, "output", "input");
        expect_shape(*y, x->shape, o, "output");
      }
      const Tensor& ref = y ? *y : *x;
      Tensor dout = grad_like(o, dout_, ref, y ? "output" : "input"), dinp;
      py::object d = output_like(o, "grad_input", dinp_, ref, dinp);
      Launch(ref).run(ref.dtype, [&](auto t) {
        using T = decltype(t);
        pick(ref.device, t)(dinp.data<T>(), dout.data<T>(), ptr<T>(y), y ? nullptr : x->data<T>(),
                            ref.numel(), s...);
      });
      return d;
    });
  }
};

// Softmax geometry: the array as [outer, D, inner] around dim; a 0-d array is one element.
struct SoftmaxDims {
  int64_t outer = 1, D = 1, inner = 1;
};

SoftmaxDims softmax_dims(const char* op, const Shape& shape, int64_t dim) {
  const int64_t ndim = int64_t(shape.size()), lim = std::max<int64_t>(ndim, 1);
  FC_CHECK(dim >= -lim && dim < lim, op, ": dim must be in [", -lim, ", ", lim - 1,
           "] for an input of shape ", shape_str(shape), ", got ", dim);
  SoftmaxDims s;
  if (ndim == 0) return s;
  if (dim < 0) dim += ndim;
  for (int64_t i = 0; i < dim; ++i) s.outer *= shape[i];
  s.D = shape[dim];
  for (int64_t i = dim + 1; i < ndim; ++i) s.inner *= shape[i];
  return s;
}

// Python (out, input, dim): kernel(out, inp, outer, D, inner).
struct Softmax {
  static constexpr size_t kArrays = 5;
  template <typename... S, typename Pick, typename Tag>
  static void def(py::module_& m, const char* name, std::string op, Pick pick, Tag) {
    m.def(name, [op, pick](py::handle out_, py::handle input, int64_t dim) {
      const char* o = op.c_str();
      const bool inplace = out_.is(input);
      Tensor x = read(input, o, "input", inplace), out = x;
      py::object r = inplace ? py::reinterpret_borrow<py::object>(input)
                             : output_like(o, "out", out_, x, out);
      const SoftmaxDims d = softmax_dims(o, x.shape, dim);
      Launch(x).run(x.dtype, [&](auto t) {
        using T = decltype(t);
        pick(x.device, t)(out.data<T>(), x.data<T>(), d.outer, d.D, d.inner);
      });
      return r;
    });
  }
};

// Python (grad_input, grad_output, output, dim): kernel(dinp, dout, out, outer, D, inner).
struct SoftmaxGrad {
  static constexpr size_t kArrays = 6;
  template <typename... S, typename Pick, typename Tag>
  static void def(py::module_& m, const char* name, std::string op, Pick pick, Tag) {
    m.def(name, [op, pick](py::handle dinp_, py::handle dout_, py::handle output, int64_t dim) {
      const char* o = op.c_str();
      Tensor y = read(output, o, "output"), dout = grad_like(o, dout_, y, "output");
      const SoftmaxDims d = softmax_dims(o, y.shape, dim);
      Tensor dinp;
      py::object r = output_like(o, "grad_input", dinp_, y, dinp);
      Launch(y).run(y.dtype, [&](auto t) {
        using T = decltype(t);
        pick(y.device, t)(dinp.data<T>(), dout.data<T>(), y.data<T>(), d.outer, d.D, d.inner);
      });
      return r;
    });
  }
};

}  // namespace

// softplus divides by beta.
void check(OpTag<&softplus_forward_cpu<float>>, const char* op, double beta, double) {
  FC_CHECK(beta != 0, op, ": beta must be nonzero, got ", beta);
}
void check(OpTag<&softplus_backward_cpu<float>>, const char* op, double beta, double) {
  FC_CHECK(beta != 0, op, ": beta must be nonzero, got ", beta);
}

// celu divides by alpha; hardtanh's range must not be reversed (torch's F.hardtanh's check: a
// NaN bound passes it, and gives NaN; its backward, as aten's, checks nothing: all zeros).
void check(OpTag<&celu_forward_cpu<float>>, const char* op, double alpha) {
  FC_CHECK(alpha != 0, op, ": alpha must be nonzero, got ", alpha);
}
void check(OpTag<&celu_backward_cpu<float>>, const char* op, double alpha) {
  FC_CHECK(alpha != 0, op, ": alpha must be nonzero, got ", alpha);
}
void check(OpTag<&hardtanh_forward_cpu<float>>, const char* op, double lo, double hi) {
  FC_CHECK(!(lo > hi), op, ": min_val must not be greater than max_val, got ", lo, " and ", hi);
}

void bind_act(py::module_& m) {
  FC_ACT_OPS(FC_BIND_OP, T)
}

}  // namespace fc::bind
