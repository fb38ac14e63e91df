// The extension module fastconv._C: shared argument helpers, the exception mapping, the
// runtime facts, and one registration call per op family (bind/<family>.cpp). Each op reads
// its arrays into Tensor views, checks types, dtypes and shapes once, releases the GIL and
// calls the kernel for the arrays' dtype. Outputs are passed in, or made through the caller's
// allocator in the same crossing (allocate()).
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

namespace {

// have() names the array's dtype; it is called only for the error message.
template <typename Have>
DType accepted_dtype(Have have, bool is_float32, bool is_float64, bool is_int64,
                     bool is_uint8, unsigned accept, const char* op, const char* name) {
  if ((accept & kFloat) && is_float32) return DType::f32;
  if ((accept & kFloat) && is_float64) return DType::f64;
  if ((accept & kInt64) && is_int64) return DType::i64;
  if ((accept & kUInt8) && is_uint8) return DType::u8;
  std::string want;
  if (accept & kFloat) want = "float32 or float64";
  if (accept & kInt64) want += want.empty() ? "int64" : " or int64";
  if (accept & kUInt8) want += want.empty() ? "uint8" : " or uint8";
  throw TypeError(str(op, ": ", name, " must be ", want, ", got ", have()));
}

#ifdef FC_CUDA
// The interface's fields, read as the protocol defines them (version 2 or 3).
Tensor read_interface(py::handle obj, const char* op, const char* name, bool writable,
                      unsigned accept) {
  py::dict cai = obj.attr("__cuda_array_interface__");
  Tensor t;
  t.device = Device::cuda;
  for (py::handle d : cai["shape"]) t.shape.push_back(d.cast<int64_t>());
  // The shape comes from an arbitrary producer: the kernels' size arithmetic needs it sane.
  bool sane = true;
  for (int64_t d : t.shape) sane = sane && d >= 0;
  FC_CHECK(sane && numel_sat(t.shape) <= kMaxNumel, op, ": ", name,
           " (a CUDA array) declares shape ", shape_str(t.shape),
           ", which is not the shape of an array of at most ", kMaxNumel, " elements");
  const std::string ts = cai["typestr"].cast<std::string>();
  // Little-endian or byte-order-free codes only; the GPU is little-endian.
  const std::string code = ts.size() > 1 ? ts.substr(1) : ts;
  const bool le = !ts.empty() && (ts[0] == '<' || ts[0] == '|');
  // The name comes from the typestr, which every producer has (a .dtype attribute is optional).
  t.dtype = accepted_dtype([&] { return std::string(py::str(py::dtype(ts))); },
                           le && code == "f4", le && code == "f8", le && code == "i8",
                           le && code == "u1", accept, op, name);
  const size_t item = t.dtype == DType::f64 || t.dtype == DType::i64 ? 8 : t.dtype == DType::f32 ? 4 : 1;
  py::tuple data = cai["data"];
  FC_CHECK(data.size() == 2, op, ": ", name, " (a CUDA array) has a malformed "
           "__cuda_array_interface__: data must be (pointer, read_only), got ",
           std::string(py::repr(data)));
  const std::uintptr_t address = data[0].cast<std::uintptr_t>();
  t.ptr = reinterpret_cast<void*>(address);
  const bool readonly = data[1].cast<bool>();
  // A GPU faults on an element load from a misaligned address, and the fault is sticky: it
  // ends the CUDA context for the rest of the process (a host CPU would read it silently).
  FC_CHECK(t.numel() == 0 || address % item == 0, op, ": ", name, " (a CUDA array) starts at ",
           "address 0x", std::hex, address, std::dec, ", which is not a multiple of its ",
           item, "-byte element size");
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    // C order, ignoring the stride of any size-1 dimension (as NumPy's C_CONTIGUOUS flag does).
    int64_t expect = int64_t(item);
    py::tuple strides = cai["strides"];
    FC_CHECK(strides.size() == t.shape.size(), op, ": ", name, " (a CUDA array) has a "
             "malformed __cuda_array_interface__: ", strides.size(), " strides for shape ",
             shape_str(t.shape));
    bool ok = t.numel() == 0;
    if (!ok) {
      ok = true;
      for (int64_t d = int64_t(t.shape.size()) - 1; d >= 0; --d) {
        if (t.shape[d] != 1 && strides[d].cast<int64_t>() != expect) ok = false;
        expect *= t.shape[d];
      }
    }
    FC_CHECK(ok, op, ": ", name, " must be C-contiguous");
  }
  FC_CHECK(!writable || !readonly, op, ": ", name, " must be writable");
  if (cai.contains("stream") && !cai["stream"].is_none()) {
    t.stream = cai["stream"].cast<std::uintptr_t>();
  }
  return t;
}
#endif

// A GPU array through its __cuda_array_interface__: CuPy's, or any producer's.
Tensor cuda_view(py::handle obj, const char* op, const char* name, bool writable,
                 unsigned accept) {
#ifndef FC_CUDA
  (void)writable;
  (void)accept;
  throw std::runtime_error(str(op, ": ", name, " is a CUDA array (", type_name(obj),
                               ") but this fastconv was built without CUDA; reinstall with nvcc "
                               "on PATH, or pass a numpy.ndarray"));
#else
  // A producer's dict may lack a field or hold the wrong type in one: Python's KeyError or
  // IndexError, or a failed cast naming no argument, would say nothing of which array it was.
  try {
    return read_interface(obj, op, name, writable, accept);
  } catch (py::error_already_set& e) {
    throw std::invalid_argument(str(op, ": ", name, " (", type_name(obj), ") has a malformed "
                                    "__cuda_array_interface__: ", e.what()));
  } catch (py::cast_error& e) {
    throw std::invalid_argument(str(op, ": ", name, " (", type_name(obj), ") has a malformed "
                                    "__cuda_array_interface__: a field of the wrong type (",
                                    e.what(), ")"));
  }
#endif
}

}  // namespace

Tensor read(py::handle obj, const char* op, const char* name, bool writable, unsigned accept) {
  if (!py::isinstance<py::array>(obj)) {
    if (py::hasattr(obj, "__cuda_array_interface__")) return cuda_view(obj, op, name, writable, accept);
    throw TypeError(str(op, ": ", name, " must be a numpy.ndarray or a CUDA array (cupy.ndarray), "
                        "got ", type_name(obj)));
  }
  auto a = py::reinterpret_borrow<py::array>(obj);
  Tensor t;
  const auto dt = a.dtype();
  t.dtype = accepted_dtype([&] { return std::string(py::str(dt)); }, dt.equal(py::dtype::of<float>()),
                           dt.equal(py::dtype::of<double>()), dt.equal(py::dtype::of<int64_t>()),
                           dt.equal(py::dtype::of<uint8_t>()), accept, op, name);
  FC_CHECK(a.flags() & py::array::c_style, op, ": ", name, " must be C-contiguous");
  FC_CHECK(!writable || a.writeable(), op, ": ", name, " must be writable");
  t.ptr = const_cast<void*>(a.data());
  t.shape.assign(a.shape(), a.shape() + a.ndim());
  return t;
}

void same_device(const Tensor& t, const Tensor& ref, const char* op, const char* name,
                 const char* ref_name) {
  auto where = [](const Tensor& x) { return x.device == Device::cuda ? "the GPU (CUDA array)" : "the CPU (numpy.ndarray)"; };
  FC_CHECK(t.device == ref.device, op, ": ", name, " is on ", where(t), " but ", ref_name, " is on ",
           where(ref), "; move both to one device (cupy.asarray / cupy.asnumpy)");
}

void same_dtype(const Tensor& t, const Tensor& ref, const char* op, const char* name,
                const char* ref_name) {
  same_device(t, ref, op, name, ref_name);
  if (t.dtype != ref.dtype) {
    throw TypeError(str(op, ": ", name, " has dtype ", dtype_name(t.dtype), " but ", ref_name,
                        " has ", dtype_name(ref.dtype), "; pass arrays of one dtype"));
  }
}

void expect_shape(const Tensor& t, const Shape& s, const char* op, const char* name) {
  FC_CHECK(t.shape == s, op, ": ", name, " must have shape ", shape_str(s), ", got ",
           shape_str(t.shape));
}

Tensor read_like(py::handle obj, const Tensor& ref, const Shape& shape, const char* op,
                 const char* name, bool writable, const char* note) {
  Tensor t = read(obj, op, name, writable);
  same_dtype(t, ref, op, name, "input");
  FC_CHECK(t.shape == shape, op, ": ", name, " must have shape ", shape_str(shape),
           note ? str(" (", note, ")") : std::string(), ", got ", shape_str(t.shape));
  return t;
}

Output allocate(py::handle alloc, py::handle like, const Tensor& ref, const Shape& shape,
                const char* op, const char* name, bool int64) {
  py::tuple dims(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) dims[i] = py::int_(shape[i]);
  Output o;
  o.array = int64 ? alloc(like, dims, "int64") : alloc(like, dims);
  o.view = read(o.array, op, name, true, int64 ? kInt64 : kFloat);
  if (int64) same_device(o.view, ref, op, name, "input");
  else same_dtype(o.view, ref, op, name, "input");
  expect_shape(o.view, shape, op, name);
  return o;
}

GradOutputs grad_outputs(py::handle alloc, py::handle zeros, py::handle like, const Tensor& ref,
                         const char* op, bool need_input, const Shape& input_shape,
                         bool need_weight, py::handle grad_weight, const Shape& weight_shape,
                         bool need_bias, py::handle grad_bias, const Shape& bias_shape) {
  GradOutputs g;
  const bool given_w = need_weight && !grad_weight.is_none();
  const bool given_b = need_bias && !grad_bias.is_none();
  if (given_w) g.weight = read_like(grad_weight, ref, weight_shape, op, "grad_weight", true);
  if (given_b) g.bias = read_like(grad_bias, ref, bias_shape, op, "grad_bias", true);
  py::object in = py::none(), w = py::none(), b = py::none();
  auto fresh = [&](py::handle make, const Shape& shape, const char* name,
                   std::optional<Tensor>& view) {
    Output o = allocate(make, like, ref, shape, op, name);
    view = o.view;
    return o.array;
  };
  if (need_input) in = fresh(alloc, input_shape, "grad_input", g.input);
  if (given_w) w = py::reinterpret_borrow<py::object>(grad_weight);
  else if (need_weight) w = fresh(zeros, weight_shape, "grad_weight", g.weight);
  if (given_b) b = py::reinterpret_borrow<py::object>(grad_bias);
  else if (need_bias) b = fresh(zeros, bias_shape, "grad_bias", g.bias);
  g.arrays = py::make_tuple(in, w, b);
  return g;
}

void bind_runtime(py::module_& m) {
  m.def("set_num_threads", &set_num_threads);
  m.def("get_num_threads", &get_num_threads);
  m.def("set_cpu_isa", &set_cpu_isa);
  m.def("get_cpu_isa", [] { return cpu_isa_name(cpu_isa()); });
  m.def("set_allow_tf32", &set_allow_tf32);
  m.def("get_allow_tf32", &allow_tf32);
  m.def("build_info", [] {
    py::dict d;
    d["blas"] = blas::name();
    d["blas_core"] = blas::core();
    const std::string omp = openmp_version();
    d["openmp"] = omp.empty() ? py::object(py::none()) : py::object(py::str(omp));
    d["simd"] = simd_compiled();
    d["cpu_simd"] = simd_cpu();
    py::list isas;
    for (int i = int(cpu_isa_best()); i >= 0; --i) isas.append(cpu_isa_name(CpuIsa(i)));
    d["cpu_isas"] = isas;
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
    } catch (const fc::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });
  // fastconv's only threading layer is OpenMP; the BLAS runs single-threaded inside it.
  fc::blas::set_threads(1);
  fc::bind::bind_runtime(m);
  fc::bind::bind_conv(m);
  fc::bind::bind_optim(m);
  fc::bind::bind_dense(m);
  fc::bind::bind_norm(m);
  fc::bind::bind_dropout(m);
  fc::bind::bind_pool(m);
  fc::bind::bind_act(m);
  fc::bind::bind_loss(m);
}
