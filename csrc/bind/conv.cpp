// Bindings of the convolution family: geometry, conv2d and conv_transpose2d forward/backward,
// unfold/fold. conv_transpose2d's geometry (conv_transpose2d_geom) is the equivalent conv2d's:
// its in_shape is the transposed conv's OUTPUT shape and its out_shape the transposed conv's
// input shape, so both ops share one binder, with the roles of the two shapes swapped.
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

Conv2dGeom conv_transpose2d_geometry(const std::string& op, py::handle input, py::handle weight,
                                     Pair stride, Pair padding, Pair output_padding,
                                     Pair dilation, int64_t groups) {
  Tensor x = view(input, op.c_str(), "input"), w = view(weight, op.c_str(), "weight");
  same_dtype(w, x, op.c_str(), "weight", "input");
  return conv_transpose2d_geom(op.c_str(), x.shape, w.shape, stride, padding, output_padding,
                               dilation, groups, x.device);
}

// The shapes a conv-kind op reads: conv2d's input is g's in_shape, its output g's out_shape and
// its bias per output channel (g.K); conv_transpose2d's the other way round, its bias per g.C.
struct ConvShapes {
  Shape in, out;
  int64_t channels;
};

ConvShapes conv_shapes(const Conv2dGeom& g, bool transposed) {
  if (transposed) return {g.out_shape(), g.in_shape(), g.C};
  return {g.in_shape(), g.out_shape(), g.K};
}

// pick(device, T{}) returns the kernel twin to run.
template <typename Pick>
void conv_forward(const char* op, bool transposed, py::handle out_, py::handle input,
                  py::handle weight, py::handle bias_, const Conv2dGeom& g, Pick pick) {
  const ConvShapes s = conv_shapes(g, transposed);
  Tensor x = view(input, op, "input");
  expect_shape(x, s.in, op, "input");
  Tensor w = view_like(weight, x, g.weight_shape(), op, "weight");
  Tensor out = view_like(out_, x, s.out, op, "out", true);
  auto b = view_like_or_none(bias_, x, {s.channels}, op, "bias");
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    pick(x.device, t)(out.data<T>(), x.data<T>(), w.data<T>(), ptr<T>(b), g);
  });
}

// `note` says where grad_output's shape comes from.
template <typename Pick>
void conv_backward(const char* op, bool transposed, const char* note, py::handle dinp_,
                   py::handle dweight_, py::handle dbias_, py::handle dout_, py::handle input,
                   py::handle weight, const Conv2dGeom& g, Pick pick) {
  const ConvShapes s = conv_shapes(g, transposed);
  Tensor x = view(input, op, "input");
  expect_shape(x, s.in, op, "input");
  Tensor w = view_like(weight, x, g.weight_shape(), op, "weight");
  Tensor dout = view_like(dout_, x, s.out, op, "grad_output", false, note);
  auto dinp = view_like_or_none(dinp_, x, s.in, op, "grad_input", true);
  auto dw = view_like_or_none(dweight_, x, g.weight_shape(), op, "grad_weight", true);
  auto db = view_like_or_none(dbias_, x, {s.channels}, op, "grad_bias", true);
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    pick(x.device, t)(ptr<T>(dinp), ptr<T>(dw), ptr<T>(db), dout.data<T>(), x.data<T>(),
                      w.data<T>(), g);
  });
}

// Registers <op>_forward and <op>_backward of a conv-kind op (conv2d, conv_transpose2d);
// fwd/bwd(device, T{}) return the twins.
template <typename Fwd, typename Bwd>
void def_conv(py::module_& m, const std::string& op, bool transposed, Fwd fwd, Bwd bwd) {
  const std::string bop = op + "_backward";
  const std::string note = "the " + op + " output for this input, weight and geometry";
  m.def((op + "_forward").c_str(), [=](py::handle out, py::handle input, py::handle weight,
                                       py::handle bias, const Conv2dGeom& g) {
    conv_forward(op.c_str(), transposed, out, input, weight, bias, g, fwd);
  });
  m.def(bop.c_str(), [=](py::handle dinp, py::handle dweight, py::handle dbias, py::handle dout,
                         py::handle input, py::handle weight, const Conv2dGeom& g) {
    conv_backward(bop.c_str(), transposed, note.c_str(), dinp, dweight, dbias, dout, input,
                  weight, g, bwd);
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
  m.def("conv_transpose2d_geometry", &conv_transpose2d_geometry, py::arg("op"), py::arg("input"),
        py::arg("weight"), py::arg("stride"), py::arg("padding"), py::arg("output_padding"),
        py::arg("dilation"), py::arg("groups"));
  def_conv(m, "conv2d", false,
           []([[maybe_unused]] Device d, auto t) {
             return FC_TWIN(d, conv2d_forward, decltype(t));
           },
           []([[maybe_unused]] Device d, auto t) {
             return FC_TWIN(d, conv2d_backward, decltype(t));
           });
  def_conv(m, "conv_transpose2d", true,
           []([[maybe_unused]] Device d, auto t) {
             return FC_TWIN(d, conv_transpose2d_forward, decltype(t));
           },
           []([[maybe_unused]] Device d, auto t) {
             return FC_TWIN(d, conv_transpose2d_backward, decltype(t));
           });
  m.def("unfold", &unfold);
  m.def("fold", &fold);
}

}  // namespace fc::bind
