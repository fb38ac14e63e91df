// Bindings of the pooling family: geometry, and forward/backward of max, min, avg, lp,
// adaptive avg/max and mixed pooling. Arrays and values are validated here, once.
#include "bind/binding.h"

#include <cmath>

#include "geometry.h"
#include "pool.h"

namespace fc::bind {
namespace {

Pool2dGeom pool2d_geometry(const std::string& op, py::handle input, Pair kernel, Pair stride,
                           Pair padding, Pair dilation, bool ceil_mode) {
  Tensor x = view(input, op.c_str(), "input");
  return pool2d_geom(op.c_str(), x.shape, kernel, stride, padding, dilation, ceil_mode);
}

Pool2dGeom adaptive_pool2d_geometry(const std::string& op, py::handle input,
                                    std::optional<int64_t> P, std::optional<int64_t> Q) {
  Tensor x = view(input, op.c_str(), "input");
  return adaptive_pool2d_geom(op.c_str(), x.shape, P, Q);
}

// The input of a forward or backward pass, checked against the geometry it was measured for.
Tensor input_view(py::handle input, const Pool2dGeom& g, const char* op) {
  Tensor x = view(input, op, "input");
  expect_shape(x, g.in_shape(), op, "input");
  return x;
}

Tensor out_view(py::handle out_, const Tensor& x, const Pool2dGeom& g, const char* op) {
  return view_like(out_, x, g.out_shape(), op, "out", true);
}

Tensor grad_output_view(py::handle dout_, const Tensor& x, const Pool2dGeom& g, const char* op) {
  return view_like(dout_, x, g.out_shape(), op, "grad_output", false,
                   "the pooled output for this input and geometry");
}

Tensor grad_input_view(py::handle dinp_, const Tensor& x, const Pool2dGeom& g, const char* op) {
  return view_like(dinp_, x, g.in_shape(), op, "grad_input", true);
}

Tensor indices_view(py::handle idx_, const Pool2dGeom& g, const char* op, bool writable) {
  Tensor idx = view(idx_, op, "indices", writable, kInt64);
  FC_CHECK(idx.shape == g.out_shape(), op, ": indices must have shape ", shape_str(g.out_shape()),
           " (the pooled output's), got ", shape_str(idx.shape));
  return idx;
}

void check_pool(const Pool2dGeom& g, bool adaptive, const char* op) {
  FC_CHECK(g.adaptive == adaptive, op, ": geometry from ",
           g.adaptive ? "adaptive_pool2d_geometry" : "pool2d_geometry", " does not fit this op");
}

// divisor_override as the kernels take it: 0 for none.
int64_t check_divisor(std::optional<int64_t> divisor_override, const char* op) {
  FC_CHECK(divisor_override.value_or(1) != 0, op, ": divisor_override must be nonzero, got 0");
  return divisor_override.value_or(0);
}

// avg, lp and mixed pooling have no dilation (and lp no padding, mixed no ceil_mode); their
// kernels ignore those fields, so a geometry carrying them is refused rather than misread.
void check_window(const Pool2dGeom& g, const char* op, bool padding, bool ceil_mode) {
  check_pool(g, false, op);
  FC_CHECK(g.dil_h == 1 && g.dil_w == 1, op, ": takes no dilation, got a geometry with dilation (",
           g.dil_h, ", ", g.dil_w, ")");
  FC_CHECK(padding || (g.pad_h == 0 && g.pad_w == 0), op,
           ": takes no padding, got a geometry with padding (", g.pad_h, ", ", g.pad_w, ")");
  FC_CHECK(ceil_mode || !g.ceil_mode, op, ": takes no ceil_mode, got a ceil_mode geometry");
}

void check_alpha(double alpha, const char* op) {
  FC_CHECK(alpha >= 0 && alpha <= 1, op, ": alpha must be in [0, 1], got ", alpha);
}

void check_norm_type(double p, const char* op) {
  FC_CHECK(p > 0 && std::isfinite(p), op,
           ": norm_type must be a positive finite number (or inf), got ", p);
}

void extreme_forward(py::handle out_, py::handle idx_, py::handle input, const Pool2dGeom& g,
                     bool is_min, const char* op) {
  Tensor x = input_view(input, g, op), out = out_view(out_, x, g, op);
  Tensor idx = indices_view(idx_, g, op, true);
  same_device(idx, x, op, "indices", "input");
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    auto kernel = is_min ? FC_TWIN(x.device, min_pool2d_forward, T)
                         : FC_TWIN(x.device, max_pool2d_forward, T);
    kernel(out.data<T>(), idx.data<int64_t>(), x.data<T>(), g);
  });
}

void extreme_backward(py::handle dinp_, py::handle dout_, py::handle idx_, py::handle input,
                      const Pool2dGeom& g, bool is_min, const char* op) {
  Tensor x = input_view(input, g, op), dinp = grad_input_view(dinp_, x, g, op);
  Tensor dout = grad_output_view(dout_, x, g, op);
  std::optional<Tensor> idx;
  if (!idx_.is_none()) {
    idx = indices_view(idx_, g, op, false);
    same_device(*idx, x, op, "indices", "input");
  }
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    FC_TWIN(x.device, max_pool2d_backward, T)(dinp.data<T>(), dout.data<T>(), ptr<int64_t>(idx),
                                              x.data<T>(), g, is_min);
  });
}

}  // namespace

void bind_pool(py::module_& m) {
  py::class_<Pool2dGeom>(m, "Pool2dGeom")
      .def_readonly("N", &Pool2dGeom::N).def_readonly("C", &Pool2dGeom::C)
      .def_readonly("H", &Pool2dGeom::H).def_readonly("W", &Pool2dGeom::W)
      .def_readonly("R", &Pool2dGeom::R).def_readonly("S", &Pool2dGeom::S)
      .def_readonly("P", &Pool2dGeom::P).def_readonly("Q", &Pool2dGeom::Q)
      .def_property_readonly("out_shape",
                             [](const Pool2dGeom& g) { return py::tuple(py::cast(g.out_shape())); })
      .def_property_readonly("in_shape",
                             [](const Pool2dGeom& g) { return py::tuple(py::cast(g.in_shape())); })
      .def("__repr__", [](const Pool2dGeom& g) {
        if (g.adaptive) {
          return str("Pool2dGeom(in=", shape_str(g.in_shape()), ", out=", shape_str(g.out_shape()),
                     ", adaptive)");
        }
        return str("Pool2dGeom(in=", shape_str(g.in_shape()), ", out=", shape_str(g.out_shape()),
                   ", kernel=(", g.R, ", ", g.S, "), stride=(", g.stride_h, ", ", g.stride_w,
                   "), padding=(", g.pad_h, ", ", g.pad_w, "), dilation=(", g.dil_h, ", ", g.dil_w,
                   "), ceil_mode=", g.ceil_mode ? "True" : "False", ")");
      });

  m.def("pool2d_geometry", &pool2d_geometry, py::arg("op"), py::arg("input"), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"));
  m.def("adaptive_pool2d_geometry", &adaptive_pool2d_geometry, py::arg("op"), py::arg("input"),
        py::arg("P"), py::arg("Q"));

  m.def("max_pool2d_forward", [](py::handle out, py::handle idx, py::handle x,
                                 const Pool2dGeom& g) {
    check_pool(g, false, "max_pool2d");
    extreme_forward(out, idx, x, g, false, "max_pool2d");
  });
  m.def("min_pool2d_forward", [](py::handle out, py::handle idx, py::handle x,
                                 const Pool2dGeom& g) {
    check_pool(g, false, "min_pool2d");
    extreme_forward(out, idx, x, g, true, "min_pool2d");
  });
  m.def("adaptive_max_pool2d_forward", [](py::handle out, py::handle idx, py::handle x,
                                          const Pool2dGeom& g) {
    check_pool(g, true, "adaptive_max_pool2d");
    extreme_forward(out, idx, x, g, false, "adaptive_max_pool2d");
  });
  m.def("max_pool2d_backward", [](py::handle dinp, py::handle dout, py::handle idx, py::handle x,
                                  const Pool2dGeom& g) {
    check_pool(g, false, "max_pool2d_backward");
    extreme_backward(dinp, dout, idx, x, g, false, "max_pool2d_backward");
  });
  m.def("min_pool2d_backward", [](py::handle dinp, py::handle dout, py::handle idx, py::handle x,
                                  const Pool2dGeom& g) {
    check_pool(g, false, "min_pool2d_backward");
    extreme_backward(dinp, dout, idx, x, g, true, "min_pool2d_backward");
  });
  m.def("adaptive_max_pool2d_backward", [](py::handle dinp, py::handle dout, py::handle idx,
                                           py::handle x, const Pool2dGeom& g) {
    check_pool(g, true, "adaptive_max_pool2d_backward");
    extreme_backward(dinp, dout, idx, x, g, false, "adaptive_max_pool2d_backward");
  });

  m.def("avg_pool2d_forward", [](py::handle out_, py::handle input, const Pool2dGeom& g,
                                 bool count_include_pad, std::optional<int64_t> divisor_override) {
    const char* op = "avg_pool2d";
    check_window(g, op, true, true);
    const int64_t divisor = check_divisor(divisor_override, op);
    Tensor x = input_view(input, g, op), out = out_view(out_, x, g, op);
    py::gil_scoped_release nogil;
    dispatch(x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(x.device, avg_pool2d_forward, T)(out.data<T>(), x.data<T>(), g, count_include_pad,
                                               divisor);
    });
  });
  m.def("avg_pool2d_backward", [](py::handle dinp_, py::handle dout_, py::handle input,
                                  const Pool2dGeom& g, bool count_include_pad,
                                  std::optional<int64_t> divisor_override) {
    const char* op = "avg_pool2d_backward";
    check_window(g, op, true, true);
    const int64_t divisor = check_divisor(divisor_override, op);
    Tensor x = input_view(input, g, op), dinp = grad_input_view(dinp_, x, g, op);
    Tensor dout = grad_output_view(dout_, x, g, op);
    py::gil_scoped_release nogil;
    dispatch(x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(x.device, avg_pool2d_backward, T)(dinp.data<T>(), dout.data<T>(), g,
                                                count_include_pad, divisor);
    });
  });

  m.def("lp_pool2d_forward", [](py::handle out_, py::handle input, const Pool2dGeom& g, double p) {
    const char* op = "lp_pool2d";
    check_window(g, op, false, true);
    check_norm_type(p, op);
    Tensor x = input_view(input, g, op), out = out_view(out_, x, g, op);
    py::gil_scoped_release nogil;
    dispatch(x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(x.device, lp_pool2d_forward, T)(out.data<T>(), x.data<T>(), g, p);
    });
  });
  m.def("lp_pool2d_backward", [](py::handle dinp_, py::handle dout_, py::handle input,
                                 const Pool2dGeom& g, double p) {
    const char* op = "lp_pool2d_backward";
    check_window(g, op, false, true);
    check_norm_type(p, op);
    Tensor x = input_view(input, g, op), dinp = grad_input_view(dinp_, x, g, op);
    Tensor dout = grad_output_view(dout_, x, g, op);
    py::gil_scoped_release nogil;
    dispatch(x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(x.device, lp_pool2d_backward, T)(dinp.data<T>(), dout.data<T>(), x.data<T>(), g,
                                               p);
    });
  });

  m.def("adaptive_avg_pool2d_forward", [](py::handle out_, py::handle input, const Pool2dGeom& g) {
    const char* op = "adaptive_avg_pool2d";
    check_pool(g, true, op);
    Tensor x = input_view(input, g, op), out = out_view(out_, x, g, op);
    py::gil_scoped_release nogil;
    dispatch(x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(x.device, adaptive_avg_pool2d_forward, T)(out.data<T>(), x.data<T>(), g);
    });
  });
  m.def("adaptive_avg_pool2d_backward", [](py::handle dinp_, py::handle dout_, py::handle input,
                                           const Pool2dGeom& g) {
    const char* op = "adaptive_avg_pool2d_backward";
    check_pool(g, true, op);
    Tensor x = input_view(input, g, op), dinp = grad_input_view(dinp_, x, g, op);
    Tensor dout = grad_output_view(dout_, x, g, op);
    py::gil_scoped_release nogil;
    dispatch(x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(x.device, adaptive_avg_pool2d_backward, T)(dinp.data<T>(), dout.data<T>(), g);
    });
  });

  m.def("mixed_pool2d_forward", [](py::handle out_, py::handle input, const Pool2dGeom& g,
                                   double alpha) {
    const char* op = "mixed_pool2d";
    check_window(g, op, true, false);
    check_alpha(alpha, op);
    Tensor x = input_view(input, g, op), out = out_view(out_, x, g, op);
    py::gil_scoped_release nogil;
    dispatch(x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(x.device, mixed_pool2d_forward, T)(out.data<T>(), x.data<T>(), g, alpha);
    });
  });
  m.def("mixed_pool2d_backward", [](py::handle dinp_, py::handle dout_, py::handle input,
                                    const Pool2dGeom& g, double alpha) {
    const char* op = "mixed_pool2d_backward";
    check_window(g, op, true, false);
    check_alpha(alpha, op);
    Tensor x = input_view(input, g, op), dinp = grad_input_view(dinp_, x, g, op);
    Tensor dout = grad_output_view(dout_, x, g, op);
    py::gil_scoped_release nogil;
    dispatch(x.dtype, [&](auto t) {
      using T = decltype(t);
      FC_TWIN(x.device, mixed_pool2d_backward, T)(dinp.data<T>(), dout.data<T>(), x.data<T>(), g,
                                                  alpha);
    });
  });
}

}  // namespace fc::bind
