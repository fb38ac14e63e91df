// Bindings of the dense family: linear, forward and backward; its sizes are checked here
// (linear_dims).
#include "bind/binding.h"

#include "dense.h"
#include "geometry.h"

namespace fc::bind {
namespace {

struct LinearDims {
  int64_t M, IN, OUT;  // rows (product of the leading dimensions), in_features, out_features
  Shape out;           // input.shape[:-1] + (out_features,)
};

LinearDims linear_dims(const char* op, const Tensor& x, const Tensor& w) {
  FC_CHECK(w.shape.size() == 2, op, ": weight must be 2-D (out_features, in_features), got shape ",
           shape_str(w.shape));
  FC_CHECK(!x.shape.empty(), op,
           ": input must have at least 1 dimension (*, in_features), got a 0-d array");
  LinearDims d{1, w.shape[1], w.shape[0], Shape(x.shape.begin(), x.shape.end() - 1)};
  FC_CHECK(x.shape.back() == d.IN, op, ": input ", shape_str(x.shape), " has ", x.shape.back(),
           " features in its last dimension but weight ", shape_str(w.shape),
           " expects in_features = weight.shape[1] = ", d.IN);
  for (int64_t s : d.out) d.M *= s;
  d.out.push_back(d.OUT);
  check_linear_limits(op, x.shape, w.shape, d.M, d.IN, d.OUT, x.device);
  return d;
}

py::tuple linear_out_shape(const std::string& op, py::handle input, py::handle weight) {
  Tensor x = view(input, op.c_str(), "input"), w = view(weight, op.c_str(), "weight");
  same_dtype(w, x, op.c_str(), "weight", "input");
  return py::tuple(py::cast(linear_dims(op.c_str(), x, w).out));
}

void linear_forward(py::handle out_, py::handle input, py::handle weight, py::handle bias_) {
  const char* op = "linear";
  Tensor x = view(input, op, "input"), w = view(weight, op, "weight");
  same_dtype(w, x, op, "weight", "input");
  const LinearDims d = linear_dims(op, x, w);
  Tensor out = view_like(out_, x, d.out, op, "out", true);
  auto b = view_like_or_none(bias_, x, {d.OUT}, op, "bias");
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    FC_TWIN(x.device, linear_forward, T)(out.data<T>(), x.data<T>(), w.data<T>(), ptr<T>(b), d.M,
                                         d.IN, d.OUT);
  });
}

void linear_backward(py::handle dinp_, py::handle dweight_, py::handle dbias_, py::handle dout_,
                     py::handle input, py::handle weight) {
  const char* op = "linear_backward";
  Tensor x = view(input, op, "input"), w = view(weight, op, "weight");
  same_dtype(w, x, op, "weight", "input");
  const LinearDims d = linear_dims(op, x, w);
  Tensor dout = view_like(dout_, x, d.out, op, "grad_output", false,
                          "the linear output for this input and weight");
  auto dinp = view_like_or_none(dinp_, x, x.shape, op, "grad_input", true);
  auto dw = view_like_or_none(dweight_, x, w.shape, op, "grad_weight", true);
  auto db = view_like_or_none(dbias_, x, {d.OUT}, op, "grad_bias", true);
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    FC_TWIN(x.device, linear_backward, T)(ptr<T>(dinp), ptr<T>(dw), ptr<T>(db), dout.data<T>(),
                                          x.data<T>(), w.data<T>(), d.M, d.IN, d.OUT);
  });
}

}  // namespace

void bind_dense(py::module_& m) {
  m.def("linear_out_shape", &linear_out_shape, py::arg("op"), py::arg("input"), py::arg("weight"));
  m.def("linear_forward", &linear_forward);
  m.def("linear_backward", &linear_backward);
}

}  // namespace fc::bind
