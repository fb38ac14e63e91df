// The extension module fastconv._C: shared argument helpers, the exception mapping, the
// runtime facts, and one registration call per op family (bind/<family>.cpp). Each op reads
// its arrays into Tensor views, checks types, dtypes and shapes once, releases the GIL and
// calls the kernel for the arrays' dtype. Outputs are allocated by Python and passed in.
#include "bind/binding.h"

#include "blas.h"
#include "conv.h"
#include "runtime.h"

namespace fc::bind {

std::string type_name(py::handle obj) {
  py::handle t = py::type::of(obj);
  return std::string(py::str(t.attr("__module__"))) + "." +
         std::string(py::str(t.attr("__qualname__")));
}

Tensor view(py::handle obj, const char* op, const char* name, bool writable, unsigned accept) {
  if (!py::isinstance<py::array>(obj)) {
    throw TypeError(str(op, ": ", name, " must be a numpy.ndarray, got ", type_name(obj)));
  }
  auto a = py::reinterpret_borrow<py::array>(obj);
  Tensor t;
  const auto dt = a.dtype();
  if ((accept & kFloat) && dt.equal(py::dtype::of<float>())) {
    t.dtype = DType::f32;
  } else if ((accept & kFloat) && dt.equal(py::dtype::of<double>())) {
    t.dtype = DType::f64;
  } else if ((accept & kInt64) && dt.equal(py::dtype::of<int64_t>())) {
    t.dtype = DType::i64;
  } else if ((accept & kUInt8) && dt.equal(py::dtype::of<uint8_t>())) {
    t.dtype = DType::u8;
  } else {
    std::string want;
    if (accept & kFloat) want = "float32 or float64";
    if (accept & kInt64) want += want.empty() ? "int64" : " or int64";
    if (accept & kUInt8) want += want.empty() ? "uint8" : " or uint8";
    throw TypeError(str(op, ": ", name, " must be ", want, ", got ", std::string(py::str(dt))));
  }
  FC_CHECK(a.flags() & py::array::c_style, op, ": ", name, " must be C-contiguous");
  FC_CHECK(!writable || a.writeable(), op, ": ", name, " must be writable");
  t.ptr = const_cast<void*>(a.data());
  t.shape.assign(a.shape(), a.shape() + a.ndim());
  return t;
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

Tensor view_like(py::handle obj, const Tensor& ref, const Shape& shape, const char* op,
                 const char* name, bool writable, const char* note) {
  Tensor t = view(obj, op, name, writable);
  same_dtype(t, ref, op, name, "input");
  FC_CHECK(t.shape == shape, op, ": ", name, " must have shape ", shape_str(shape),
           note ? str(" (", note, ")") : std::string(), ", got ", shape_str(t.shape));
  return t;
}

void bind_runtime(py::module_& m) {
  m.def("set_num_threads", &set_num_threads);
  m.def("get_num_threads", &get_num_threads);
  m.def("build_info", [] {
    py::dict d;
    d["blas"] = blas::name();
    d["blas_core"] = blas::core();
    const std::string omp = openmp_version();
    d["openmp"] = omp.empty() ? py::object(py::none()) : py::object(py::str(omp));
    d["simd"] = simd_compiled();
    d["cpu_simd"] = simd_cpu();
    d["compiler"] = compiler();
    d["cuda_built"] = cuda_built();
    d["cuda_version"] = cuda_built() ? py::object(py::str(cuda_version())) : py::object(py::none());
    d["cuda_archs"] = cuda_archs();
    d["cuda_device"] = cuda_device();
    d["workspace_bytes_per_thread"] = kColBudgetBytes;
    return d;
  });
}

}  // namespace fc::bind

PYBIND11_MODULE(_C, m) {
  namespace py = pybind11;
  m.doc() = "fastconv kernels (C++/CUDA); use fastconv.functional, not this module";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fc::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });
  // fastconv's only threading layer is OpenMP; the BLAS runs single-threaded inside it.
  fc::blas::set_threads(1);
  fc::bind::bind_runtime(m);
  fc::bind::bind_conv(m);
  fc::bind::bind_optim(m);
  fc::bind::bind_dense(m);
  fc::bind::bind_norm(m);
  fc::bind::bind_pool(m);
  fc::bind::bind_act(m);
  fc::bind::bind_loss(m);
}
