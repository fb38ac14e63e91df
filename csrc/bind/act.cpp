// Bindings of the activation family: elementwise activations (forward writes `out`, which is
// the input itself for inplace=True), their backwards, and softmax/log_softmax along one dim.
#include "bind/binding.h"

#include "act.h"

namespace fc::bind {
namespace {

// Forward: input and out of one dtype and shape; out is the input array when inplace.
struct Unary {
  Tensor x, out;
};

Unary unary(const char* op, py::handle out_, py::handle input) {
  const bool inplace = out_.is(input);
  Tensor x = view(input, op, "input", inplace);
  if (inplace) return {x, x};
  return {x, view_like(out_, x, x.shape, op, "out", true)};
}

// Backward: grad_output like `ref` (the input, or the forward's output); grad_input like ref.
Tensor grad_like(const char* op, py::handle dout_, const Tensor& ref, const char* ref_name) {
  Tensor dout = view(dout_, op, "grad_output");
  same_dtype(dout, ref, op, "grad_output", ref_name);
  FC_CHECK(dout.shape == ref.shape, op, ": grad_output must have shape ", shape_str(ref.shape),
           " (the shape of ", ref_name, "), got ", shape_str(dout.shape));
  return dout;
}

Tensor grad_input(const char* op, py::handle dinp_, const Tensor& ref) {
  return view_like(dinp_, ref, ref.shape, op, "grad_input", true);
}

// Elementwise ops with no scalar argument (relu, sigmoid, tanh); pick(device, T{}) returns the
// kernel twin to run.
template <typename Pick>
void forward0(const char* op, py::handle out_, py::handle input, Pick pick) {
  Unary u = unary(op, out_, input);
  py::gil_scoped_release nogil;
  dispatch(u.x.dtype, [&](auto t) {
    using T = decltype(t);
    pick(u.x.device, t)(u.out.data<T>(), u.x.data<T>(), u.x.numel());
  });
}

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

template <bool Log>
void softmax_fwd(py::handle out_, py::handle input, int64_t dim) {
  const char* op = Log ? "log_softmax" : "softmax";
  Unary u = unary(op, out_, input);
  const SoftmaxDims s = softmax_dims(op, u.x.shape, dim);
  py::gil_scoped_release nogil;
  dispatch(u.x.dtype, [&](auto t) {
    using T = decltype(t);
    auto kernel = Log ? FC_TWIN(u.x.device, log_softmax_forward, T)
                      : FC_TWIN(u.x.device, softmax_forward, T);
    kernel(u.out.data<T>(), u.x.data<T>(), s.outer, s.D, s.inner);
  });
}

template <bool Log>
void softmax_bwd(py::handle dinp_, py::handle dout_, py::handle output, int64_t dim) {
  const char* op = Log ? "log_softmax_backward" : "softmax_backward";
  Tensor y = view(output, op, "output");
  Tensor dout = grad_like(op, dout_, y, "output");
  const SoftmaxDims s = softmax_dims(op, y.shape, dim);
  Tensor dinp = grad_input(op, dinp_, y);
  py::gil_scoped_release nogil;
  dispatch(y.dtype, [&](auto t) {
    using T = decltype(t);
    auto kernel = Log ? FC_TWIN(y.device, log_softmax_backward, T)
                      : FC_TWIN(y.device, softmax_backward, T);
    kernel(dinp.data<T>(), dout.data<T>(), y.data<T>(), s.outer, s.D, s.inner);
  });
}

}  // namespace

void bind_act(py::module_& m) {
  m.def("relu_forward", [](py::handle out, py::handle input) {
    forward0("relu", out, input,
             [](Device d, auto t) { return FC_TWIN(d, relu_forward, decltype(t)); });
  });
  m.def("sigmoid_forward", [](py::handle out, py::handle input) {
    forward0("sigmoid", out, input,
             [](Device d, auto t) { return FC_TWIN(d, sigmoid_forward, decltype(t)); });
  });
  m.def("tanh_forward", [](py::handle out, py::handle input) {
    forward0("tanh", out, input,
             [](Device d, auto t) { return FC_TWIN(d, tanh_forward, decltype(t)); });
  });
  m.def("leaky_relu_forward", [](py::handle out, py::handle input, double negative_slope) {
    const char* op = "leaky_relu";
    Unary u = unary(op, out, input);
    py::gil_scoped_release nogil;
    dispatch(u.x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(u.x.device, leaky_relu_forward, T)(u.out.data<T>(), u.x.data<T>(), u.x.numel(),
                                                 negative_slope);
    });
  });
  m.def("elu_forward", [](py::handle out, py::handle input, double alpha) {
    const char* op = "elu";
    Unary u = unary(op, out, input);
    py::gil_scoped_release nogil;
    dispatch(u.x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(u.x.device, elu_forward, T)(u.out.data<T>(), u.x.data<T>(), u.x.numel(), alpha);
    });
  });
  m.def("softplus_forward", [](py::handle out, py::handle input, double beta, double threshold) {
    const char* op = "softplus";
    FC_CHECK(beta != 0, op, ": beta must be nonzero, got ", beta);
    Unary u = unary(op, out, input);
    py::gil_scoped_release nogil;
    dispatch(u.x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(u.x.device, softplus_forward, T)(u.out.data<T>(), u.x.data<T>(), u.x.numel(), beta,
                                               threshold);
    });
  });

  m.def("relu_backward", [](py::handle dinp_, py::handle dout_, py::handle input) {
    const char* op = "relu_backward";
    Tensor x = view(input, op, "input"), dout = grad_like(op, dout_, x, "input");
    Tensor dinp = grad_input(op, dinp_, x);
    py::gil_scoped_release nogil;
    dispatch(x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(x.device, relu_backward, T)(dinp.data<T>(), dout.data<T>(), x.data<T>(), x.numel());
    });
  });
  m.def("leaky_relu_backward", [](py::handle dinp_, py::handle dout_, py::handle input,
                                  double negative_slope) {
    const char* op = "leaky_relu_backward";
    Tensor x = view(input, op, "input"), dout = grad_like(op, dout_, x, "input");
    Tensor dinp = grad_input(op, dinp_, x);
    py::gil_scoped_release nogil;
    dispatch(x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(x.device, leaky_relu_backward, T)(dinp.data<T>(), dout.data<T>(), x.data<T>(),
                                                x.numel(), negative_slope);
    });
  });
  m.def("elu_backward", [](py::handle dinp_, py::handle dout_, py::handle input, double alpha) {
    const char* op = "elu_backward";
    Tensor x = view(input, op, "input"), dout = grad_like(op, dout_, x, "input");
    Tensor dinp = grad_input(op, dinp_, x);
    py::gil_scoped_release nogil;
    dispatch(x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(x.device, elu_backward, T)(dinp.data<T>(), dout.data<T>(), x.data<T>(), x.numel(),
                                         alpha);
    });
  });
  m.def("softplus_backward", [](py::handle dinp_, py::handle dout_, py::handle input,
                                double beta, double threshold) {
    const char* op = "softplus_backward";
    FC_CHECK(beta != 0, op, ": beta must be nonzero, got ", beta);
    Tensor x = view(input, op, "input"), dout = grad_like(op, dout_, x, "input");
    Tensor dinp = grad_input(op, dinp_, x);
    py::gil_scoped_release nogil;
    dispatch(x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(x.device, softplus_backward, T)(dinp.data<T>(), dout.data<T>(), x.data<T>(),
                                              x.numel(), beta, threshold);
    });
  });
  // sigmoid/tanh backward from the forward's output when given, else from the input.
  for (const char* name : {"sigmoid_backward", "tanh_backward"}) {
    const bool is_sigmoid = name[0] == 's';
    m.def(name, [name, is_sigmoid](py::handle dinp_, py::handle dout_, py::handle input,
                                   py::handle output) {
      const char* op = name;
      FC_CHECK(!input.is_none() || !output.is_none(), op, ": pass input or output=");
      auto x = view_or_none(input, op, "input"), y = view_or_none(output, op, "output");
      if (x && y) {
        same_dtype(*y, *x, op, "output", "input");
        expect_shape(*y, x->shape, op, "output");
      }
      const Tensor& ref = y ? *y : *x;
      const char* ref_name = y ? "output" : "input";
      Tensor dout = grad_like(op, dout_, ref, ref_name);
      Tensor dinp = grad_input(op, dinp_, ref);
      py::gil_scoped_release nogil;
      dispatch(ref.dtype, [&](auto t) {
        using T = decltype(t);
        const T* yp = y ? y->data<T>() : nullptr;
        const T* xp = y ? nullptr : x->data<T>();
        if (is_sigmoid) FC_TWIN(ref.device, sigmoid_backward, T)(dinp.data<T>(), dout.data<T>(),
                                                                 yp, xp, ref.numel());
        else FC_TWIN(ref.device, tanh_backward, T)(dinp.data<T>(), dout.data<T>(), yp, xp,
                                                   ref.numel());
      });
    });
  }

  m.def("softmax_forward", &softmax_fwd<false>);
  m.def("log_softmax_forward", &softmax_fwd<true>);
  m.def("softmax_backward", &softmax_bwd<false>);
  m.def("log_softmax_backward", &softmax_bwd<true>);
}

}  // namespace fc::bind
