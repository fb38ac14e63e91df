// Bindings of the convolution family: geometry, conv2d forward/backward, unfold/fold.
#include "bind/binding.h"

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

Conv2dGeom conv2d_geometry(const std::string& op, py::handle input, py::handle weight,
                           Pair stride, const std::string& mode, Pair padding, Pair dilation,
                           int64_t groups) {
  Tensor x = view(input, op.c_str(), "input"), w = view(weight, op.c_str(), "weight");
  same_dtype(w, x, op.c_str(), "weight", "input");
  return conv2d_geom(op.c_str(), x.shape, w.shape, stride, pad_mode(mode), padding, dilation,
                     groups, x.device);
}

// unfold's or fold's geometry for (N, C, H, W) images; `input` (the op's input) gives the device.
Conv2dGeom window_geometry(const std::string& op, py::handle input, bool fold, int64_t N,
                           int64_t C, int64_t H, int64_t W, Pair kernel, Pair stride,
                           Pair padding, Pair dilation) {
  Tensor x = view(input, op.c_str(), "input");
  return window_geom(op.c_str(), N, C, H, W, kernel, stride, padding, dilation,
                     fold ? kFoldRoles : kUnfoldRoles, x.device);
}

void conv2d_forward(py::handle out_, py::handle input, py::handle weight, py::handle bias_,
                    const Conv2dGeom& g) {
  const char* op = "conv2d";
  Tensor x = view(input, op, "input");
  expect_shape(x, g.in_shape(), op, "input");
  Tensor w = view_like(weight, x, g.weight_shape(), op, "weight");
  Tensor out = view_like(out_, x, g.out_shape(), op, "out", true);
  auto b = view_like_or_none(bias_, x, {g.K}, op, "bias");
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    FC_TWIN(x.device, conv2d_forward, T)(out.data<T>(), x.data<T>(), w.data<T>(), ptr<T>(b),
                                         g);
  });
}

void conv2d_backward(py::handle dinp_, py::handle dweight_, py::handle dbias_, py::handle dout_,
                     py::handle input, py::handle weight, const Conv2dGeom& g) {
  const char* op = "conv2d_backward";
  Tensor x = view(input, op, "input");
  expect_shape(x, g.in_shape(), op, "input");
  Tensor w = view_like(weight, x, g.weight_shape(), op, "weight");
  Tensor dout = view_like(dout_, x, g.out_shape(), op, "grad_output", false,
                          "the conv2d output for this input, weight and geometry");
  auto dinp = view_like_or_none(dinp_, x, g.in_shape(), op, "grad_input", true);
  auto dw = view_like_or_none(dweight_, x, g.weight_shape(), op, "grad_weight", true);
  auto db = view_like_or_none(dbias_, x, {g.K}, op, "grad_bias", true);
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    FC_TWIN(x.device, conv2d_backward, T)(ptr<T>(dinp), ptr<T>(dw), ptr<T>(db), dout.data<T>(),
                                          x.data<T>(), w.data<T>(), g);
  });
}

void unfold(py::handle col_, py::handle input, const Conv2dGeom& g) {
  const char* op = "unfold";
  Tensor x = view(input, op, "input");
  expect_shape(x, g.in_shape(), op, "input");
  Tensor col = view_like(col_, x, {g.N, g.C * g.RS(), g.PQ()}, op, "out", true);
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    FC_TWIN(x.device, unfold, T)(col.data<T>(), x.data<T>(), g);
  });
}

void fold(py::handle out_, py::handle input, const Conv2dGeom& g) {
  const char* op = "fold";
  Tensor col = view(input, op, "input");
  expect_shape(col, {g.N, g.C * g.RS(), g.PQ()}, op, "input");
  Tensor out = view_like(out_, col, g.in_shape(), op, "out", true);
  py::gil_scoped_release nogil;
  dispatch(col.dtype, [&](auto t) {
    using T = decltype(t);
    FC_TWIN(col.device, fold, T)(out.data<T>(), col.data<T>(), g);
  });
}

}  // namespace

void bind_conv(py::module_& m) {
  py::class_<Conv2dGeom>(m, "Conv2dGeom")
      .def_readonly("N", &Conv2dGeom::N).def_readonly("C", &Conv2dGeom::C)
      .def_readonly("H", &Conv2dGeom::H).def_readonly("W", &Conv2dGeom::W)
      .def_readonly("K", &Conv2dGeom::K).def_readonly("R", &Conv2dGeom::R)
      .def_readonly("S", &Conv2dGeom::S).def_readonly("groups", &Conv2dGeom::groups)
      .def_readonly("P", &Conv2dGeom::P).def_readonly("Q", &Conv2dGeom::Q)
      .def_property_readonly("padding", [](const Conv2dGeom& g) {
        return py::make_tuple(g.pad_t, g.pad_b, g.pad_l, g.pad_r);
      })
      .def_property_readonly("out_shape", [](const Conv2dGeom& g) { return py::tuple(py::cast(g.out_shape())); })
      .def_property_readonly("in_shape", [](const Conv2dGeom& g) { return py::tuple(py::cast(g.in_shape())); })
      .def_property_readonly("weight_shape", [](const Conv2dGeom& g) { return py::tuple(py::cast(g.weight_shape())); })
      .def("__repr__", [](const Conv2dGeom& g) {
        return str("Conv2dGeom(in=", shape_str(g.in_shape()), ", weight=", shape_str(g.weight_shape()),
                   ", out=", shape_str(g.out_shape()), ", stride=(", g.stride_h, ", ", g.stride_w,
                   "), padding=(", g.pad_t, ", ", g.pad_b, ", ", g.pad_l, ", ", g.pad_r,
                   "), dilation=(", g.dil_h, ", ", g.dil_w, "), groups=", g.groups, ")");
      });

  m.def("conv2d_geometry", &conv2d_geometry, py::arg("op"), py::arg("input"), py::arg("weight"),
        py::arg("stride"), py::arg("mode"), py::arg("padding"), py::arg("dilation"), py::arg("groups"));
  m.def("window_geometry", &window_geometry, py::arg("op"), py::arg("input"), py::arg("fold"),
        py::arg("N"), py::arg("C"), py::arg("H"), py::arg("W"), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"));
  m.def("conv2d_forward", &conv2d_forward);
  m.def("conv2d_backward", &conv2d_backward);
  m.def("unfold", &unfold);
  m.def("fold", &fold);
}

}  // namespace fc::bind
