// The only file that includes pybind11. Each op reads its arrays into Tensor views, checks
// their types, dtypes and shapes against the geometry once, releases the GIL and calls the
// kernel for the arrays' dtype. Outputs are allocated by Python and passed in.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>

#include "blas.h"
#include "common.h"
#include "conv.h"
#include "geometry.h"
#include "runtime.h"

namespace py = pybind11;
using namespace fc;

namespace {

std::string type_name(py::handle obj) {
  py::handle t = py::type::of(obj);
  return std::string(py::str(t.attr("__module__"))) + "." + std::string(py::str(t.attr("__qualname__")));
}

Tensor view(py::handle obj, const char* op, const char* name, bool writable = false) {
  if (!py::isinstance<py::array>(obj)) {
    throw TypeError(str(op, ": ", name, " must be a numpy.ndarray, got ", type_name(obj)));
  }
  auto a = py::reinterpret_borrow<py::array>(obj);
  Tensor t;
  if (a.dtype().equal(py::dtype::of<float>())) {
    t.dtype = DType::f32;
  } else if (a.dtype().equal(py::dtype::of<double>())) {
    t.dtype = DType::f64;
  } else {
    throw TypeError(str(op, ": ", name, " must be float32 or float64, got ",
                        std::string(py::str(a.dtype()))));
  }
  FC_CHECK(a.flags() & py::array::c_style, op, ": ", name, " must be C-contiguous");
  FC_CHECK(!writable || a.writeable(), op, ": ", name, " must be writable");
  t.ptr = const_cast<void*>(a.data());
  t.shape.assign(a.shape(), a.shape() + a.ndim());
  return t;
}

std::optional<Tensor> view_or_none(py::handle obj, const char* op, const char* name,
                                   bool writable = false) {
  if (obj.is_none()) return std::nullopt;
  return view(obj, op, name, writable);
}

void same_dtype(const Tensor& t, const Tensor& ref, const char* op, const char* name,
                const char* ref_name) {
  if (t.dtype != ref.dtype) {
    throw TypeError(str(op, ": ", name, " has dtype ", dtype_name(t.dtype), " but ", ref_name,
                        " has ", dtype_name(ref.dtype), "; pass arrays of one dtype"));
  }
}

void expect_shape(const Tensor& t, const Shape& s, const char* op, const char* name) {
  FC_CHECK(t.shape == s, op, ": ", name, " must have shape ", shape_str(s), ", got ",
           shape_str(t.shape));
}

// Runs f(T{}) with T the C++ type of dtype.
template <typename F>
void dispatch(DType dt, F&& f) {
  if (dt == DType::f32) f(float{});
  else f(double{});
}

template <typename T>
T* ptr(const std::optional<Tensor>& t) { return t ? t->data<T>() : nullptr; }

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
  return conv2d_geom(op.c_str(), x.shape, w.shape, stride, pad_mode(mode), padding, dilation, groups);
}

void conv2d_forward(py::handle out_, py::handle input, py::handle weight, py::handle bias_,
                    const Conv2dGeom& g) {
  const char* op = "conv2d";
  Tensor x = view(input, op, "input"), w = view(weight, op, "weight");
  Tensor out = view(out_, op, "out", true);
  auto b = view_or_none(bias_, op, "bias");
  expect_shape(x, g.in_shape(), op, "input");
  expect_shape(w, g.weight_shape(), op, "weight");
  expect_shape(out, g.out_shape(), op, "out");
  same_dtype(w, x, op, "weight", "input");
  same_dtype(out, x, op, "out", "input");
  if (b) {
    same_dtype(*b, x, op, "bias", "input");
    expect_shape(*b, {g.K}, op, "bias");
  }
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    conv2d_forward_cpu<T>(out.data<T>(), x.data<T>(), w.data<T>(), ptr<T>(b), g);
  });
}

void conv2d_backward(py::handle dinp_, py::handle dweight_, py::handle dbias_, py::handle dout_,
                     py::handle input, py::handle weight, const Conv2dGeom& g) {
  const char* op = "conv2d_backward";
  Tensor x = view(input, op, "input"), w = view(weight, op, "weight");
  Tensor dout = view(dout_, op, "grad_output");
  auto dinp = view_or_none(dinp_, op, "grad_input", true);
  auto dw = view_or_none(dweight_, op, "grad_weight", true);
  auto db = view_or_none(dbias_, op, "grad_bias", true);
  expect_shape(x, g.in_shape(), op, "input");
  expect_shape(w, g.weight_shape(), op, "weight");
  same_dtype(w, x, op, "weight", "input");
  same_dtype(dout, x, op, "grad_output", "input");
  FC_CHECK(dout.shape == g.out_shape(), op, ": grad_output must have shape ",
           shape_str(g.out_shape()), " (the conv2d output for this input, weight and geometry), got ",
           shape_str(dout.shape));
  if (dinp) { same_dtype(*dinp, x, op, "grad_input", "input"); expect_shape(*dinp, g.in_shape(), op, "grad_input"); }
  if (dw) { same_dtype(*dw, x, op, "grad_weight", "input"); expect_shape(*dw, g.weight_shape(), op, "grad_weight"); }
  if (db) { same_dtype(*db, x, op, "grad_bias", "input"); expect_shape(*db, {g.K}, op, "grad_bias"); }
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    conv2d_backward_cpu<T>(ptr<T>(dinp), ptr<T>(dw), ptr<T>(db), dout.data<T>(), x.data<T>(),
                           w.data<T>(), g);
  });
}

void unfold(py::handle col_, py::handle input, const Conv2dGeom& g) {
  const char* op = "unfold";
  Tensor x = view(input, op, "input"), col = view(col_, op, "out", true);
  expect_shape(x, g.in_shape(), op, "input");
  expect_shape(col, {g.N, g.C * g.RS(), g.PQ()}, op, "out");
  same_dtype(col, x, op, "out", "input");
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    unfold_cpu<T>(col.data<T>(), x.data<T>(), g);
  });
}

void fold(py::handle out_, py::handle input, const Conv2dGeom& g) {
  const char* op = "fold";
  Tensor col = view(input, op, "input"), out = view(out_, op, "out", true);
  expect_shape(col, {g.N, g.C * g.RS(), g.PQ()}, op, "input");
  expect_shape(out, g.in_shape(), op, "out");
  same_dtype(out, col, op, "out", "input");
  py::gil_scoped_release nogil;
  dispatch(col.dtype, [&](auto t) {
    using T = decltype(t);
    fold_cpu<T>(out.data<T>(), col.data<T>(), g);
  });
}

py::dict build_info() {
  py::dict d;
  d["blas"] = blas::name();
  d["blas_core"] = blas::core();
  d["openmp"] = openmp_version().empty() ? py::object(py::none()) : py::object(py::str(openmp_version()));
  d["simd"] = simd_compiled();
  d["cpu_simd"] = simd_cpu();
  d["compiler"] = compiler();
  d["cuda_built"] = cuda_built();
  d["cuda_version"] = cuda_built() ? py::object(py::str(cuda_version())) : py::object(py::none());
  d["cuda_archs"] = cuda_archs();
  d["cuda_device"] = cuda_device();
  d["workspace_bytes_per_thread"] = kColBudgetBytes;
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastconv kernels (C++/CUDA); use fastconv.functional, not this module";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });
  // fastconv's only threading layer is OpenMP; the BLAS runs single-threaded inside it.
  blas::set_threads(1);

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
  m.def("window_geometry", [](const std::string& op, int64_t N, int64_t C, int64_t H, int64_t W,
                              Pair kernel, Pair stride, Pair padding, Pair dilation) {
    return window_geom(op.c_str(), N, C, H, W, kernel, stride, padding, dilation);
  });
  m.def("conv2d_forward", &conv2d_forward);
  m.def("conv2d_backward", &conv2d_backward);
  m.def("unfold", &unfold);
  m.def("fold", &fold);
  m.def("set_num_threads", &set_num_threads);
  m.def("get_num_threads", &get_num_threads);
  m.def("build_info", &build_info);
}
