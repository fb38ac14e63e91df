// Shared by the binding files (csrc/bind/*.cpp, the only files that include pybind11): read a
// Python array into a Tensor view, check dtype/shape once, dispatch on dtype. Kernel headers
// never see pybind11.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <initializer_list>
#include <optional>

#include "common.h"

namespace fc::bind {

namespace py = pybind11;

// Which element types an argument accepts: the float types by default; index and mask
// arrays name their own.
enum Accept : unsigned { kFloat = 1u, kInt64 = 2u, kUInt8 = 4u };

std::string type_name(py::handle obj);

// A NumPy array (CPU) or an object with __cuda_array_interface__ (GPU, with its stream),
// C-contiguous, of an accepted dtype.
Tensor read(py::handle obj, const char* op, const char* name, bool writable = false,
            unsigned accept = kFloat);

inline std::optional<Tensor> read_or_none(py::handle obj, const char* op, const char* name,
                                          bool writable = false, unsigned accept = kFloat) {
  if (obj.is_none()) return std::nullopt;
  return read(obj, op, name, writable, accept);
}

// Both arrays on one device (ValueError otherwise); for index and mask arrays.
void same_device(const Tensor& t, const Tensor& ref, const char* op, const char* name,
                 const char* ref_name);
// Same device, then same dtype (TypeError).
void same_dtype(const Tensor& t, const Tensor& ref, const char* op, const char* name,
                const char* ref_name);

void expect_shape(const Tensor& t, const Shape& s, const char* op, const char* name);

// An op's secondary array (weight, bias, out, a gradient): it must have ref's dtype (TypeError,
// naming `name` and "input") and `shape` (ValueError; `note` says where that shape comes from).
// Reading an array never sets the CUDA stream: the launch does (bind/generic.h's Launch).
Tensor read_like(py::handle obj, const Tensor& ref, const Shape& shape, const char* op,
                 const char* name, bool writable = false, const char* note = nullptr);

// An output the binding allocates, in the same crossing that computes its shape: the caller
// passes its allocator, alloc(like, shape) or alloc(like, shape, "int64") (fastconv._arrays.empty,
// which makes it with like's array module on like's device, or a test's poisoned stand-in).
// The array is checked like any output (ref's device, ref's dtype unless int64, `shape`,
// writable) and returned to Python beside its view.
struct Output {
  py::object array;
  Tensor view;
};
Output allocate(py::handle alloc, py::handle like, const Tensor& ref, const Shape& shape,
                const char* op, const char* name, bool int64 = false);

// The outputs of a backward that computes (grad_input, grad_weight, grad_bias), each only when
// its need_* flag is set, as (arrays, views): grad_input fresh from alloc (empty); a parameter
// gradient the caller's array when given (the kernel accumulates into it and it is returned as
// given), else fresh from zeros. Given arrays are checked before anything is allocated.
struct GradOutputs {
  py::tuple arrays;
  std::optional<Tensor> input, weight, bias;
};
GradOutputs grad_outputs(py::handle alloc, py::handle zeros, py::handle like, const Tensor& ref,
                         const char* op, bool need_input, const Shape& input_shape,
                         bool need_weight, py::handle grad_weight, const Shape& weight_shape,
                         bool need_bias, py::handle grad_bias, const Shape& bias_shape);

// The _cpu or _cuda twin of kernel `name` for element type T, by the arrays' device (checked to
// agree by same_device/same_dtype). A build without CUDA never sees a CUDA array: read()
// refuses one.
#ifdef FC_CUDA
#ifdef FC_TRACE_TWINS
// Only the CUDA emulator's build defines FC_TRACE_TWINS (tools/cuda_emu/build.sh, which also
// defines these two): the CUDA twin is called through a recorder that notes its name and
// dtype, and whether the call launched a kernel, for the emulator's coverage check.
long trace_launches();
void trace_twin(const char* name, DType dtype, long launches_before);
#define FC_CUDA_TWIN(name, T)                                                   \
  static_cast<decltype(&name##_cpu<T>)>([](auto... args) {                      \
    const long before = ::fc::bind::trace_launches();                           \
    name##_cuda<T>(args...);                                                    \
    ::fc::bind::trace_twin(#name, sizeof(T) == 4 ? DType::f32 : DType::f64, before); \
  })
#else
#define FC_CUDA_TWIN(name, T) (&name##_cuda<T>)
#endif
#define FC_TWIN(device, name, T) \
  ((device) == ::fc::Device::cuda ? FC_CUDA_TWIN(name, T) : &name##_cpu<T>)
#else
#define FC_TWIN(device, name, T) (&name##_cpu<T>)
#endif

// Runs f(T{}) with T the C++ float type of dtype.
template <typename F>
void dispatch(DType dt, F&& f) {
  if (dt == DType::f32) f(float{});
  else if (dt == DType::f64) f(double{});
  else throw std::invalid_argument("dispatch: not a float dtype");
}

template <typename T>
T* ptr(const std::optional<Tensor>& t) { return t ? t->data<T>() : nullptr; }

// One registration function per op family, called from the module definition.
void bind_runtime(py::module_& m);
void bind_conv(py::module_& m);
void bind_optim(py::module_& m);
void bind_dense(py::module_& m);
void bind_norm(py::module_& m);
void bind_dropout(py::module_& m);
void bind_pool(py::module_& m);
void bind_act(py::module_& m);
void bind_loss(py::module_& m);

}  // namespace fc::bind
