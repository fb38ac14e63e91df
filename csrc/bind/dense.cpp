// Bindings of the dense family: linear and conv_transpose2d, forward and backward. linear's
// sizes are checked here (linear_dims); conv_transpose2d's by conv_transpose2d_geom, whose
// result is the equivalent conv2d: its in_shape is the transposed conv's OUTPUT shape and its
// out_shape the transposed conv's input shape.
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

Conv2dGeom conv_transpose2d_geometry(const std::string& op, py::handle input, py::handle weight,
                                     Pair stride, Pair padding, Pair output_padding,
                                     Pair dilation, int64_t groups) {
  Tensor x = view(input, op.c_str(), "input"), w = view(weight, op.c_str(), "weight");
  same_dtype(w, x, op.c_str(), "weight", "input");
  return conv_transpose2d_geom(op.c_str(), x.shape, w.shape, stride, padding, output_padding,
                               dilation, groups, x.device);
}

void conv_transpose2d_forward(py::handle out_, py::handle input, py::handle weight,
                              py::handle bias_, const Conv2dGeom& g) {
  const char* op = "conv_transpose2d";
  Tensor x = view(input, op, "input");
  expect_shape(x, g.out_shape(), op, "input");
  Tensor w = view_like(weight, x, g.weight_shape(), op, "weight");
  Tensor out = view_like(out_, x, g.in_shape(), op, "out", true);
  auto b = view_like_or_none(bias_, x, {g.C}, op, "bias");
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    FC_TWIN(x.device, conv_transpose2d_forward, T)(out.data<T>(), x.data<T>(), w.data<T>(),
                                                   ptr<T>(b), g);
  });
}

void conv_transpose2d_backward(py::handle dinp_, py::handle dweight_, py::handle dbias_,
                               py::handle dout_, py::handle input, py::handle weight,
                               const Conv2dGeom& g) {
  const char* op = "conv_transpose2d_backward";
  Tensor x = view(input, op, "input");
  expect_shape(x, g.out_shape(), op, "input");
  Tensor w = view_like(weight, x, g.weight_shape(), op, "weight");
  Tensor dout = view_like(dout_, x, g.in_shape(), op, "grad_output", false,
                          "the conv_transpose2d output for this input, weight and geometry");
  auto dinp = view_like_or_none(dinp_, x, g.out_shape(), op, "grad_input", true);
  auto dw = view_like_or_none(dweight_, x, g.weight_shape(), op, "grad_weight", true);
  auto db = view_like_or_none(dbias_, x, {g.C}, op, "grad_bias", true);
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    FC_TWIN(x.device, conv_transpose2d_backward, T)(ptr<T>(dinp), ptr<T>(dw), ptr<T>(db),
                                                    dout.data<T>(), x.data<T>(), w.data<T>(), g);
  });
}

}  // namespace

void bind_dense(py::module_& m) {
  m.def("linear_out_shape", &linear_out_shape, py::arg("op"), py::arg("input"), py::arg("weight"));
  m.def("linear_forward", &linear_forward);
  m.def("linear_backward", &linear_backward);
  m.def("conv_transpose2d_geometry", &conv_transpose2d_geometry, py::arg("op"), py::arg("input"),
        py::arg("weight"), py::arg("stride"), py::arg("padding"), py::arg("output_padding"),
        py::arg("dilation"), py::arg("groups"));
  m.def("conv_transpose2d_forward", &conv_transpose2d_forward);
  m.def("conv_transpose2d_backward", &conv_transpose2d_backward);
}

}  // namespace fc::bind
