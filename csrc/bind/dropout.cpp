// Bindings of the dropout family, forward and backward. The arrays are seen as n contiguous
// elements; the input's (or grad_output's) device picks the _cpu or _cuda twin.
#include "bind/binding.h"

#include "dropout.h"

namespace fc::bind {
namespace {

void check_p(double p, const char* op) {
  FC_CHECK(p >= 0 && p <= 1, op, ": p (the probability of an element to be zeroed) must be "
           "between 0 and 1, got ", p);
}

void dropout_forward(py::handle out_, py::handle mask_, py::handle input, double p, bool training,
                     uint64_t seed) {
  const char* op = "dropout";
  Tensor x = view(input, op, "input"), out = view(out_, op, "out", true);
  auto mask = view_or_none(mask_, op, "mask", true, kUInt8);
  check_p(p, op);
  same_dtype(out, x, op, "out", "input");
  FC_CHECK(out.shape == x.shape, op, ": out must have shape ", shape_str(x.shape),
           " for input of shape ", shape_str(x.shape), ", got ", shape_str(out.shape));
  if (mask) {
    same_device(*mask, x, op, "mask", "input");
    FC_CHECK(mask->shape == x.shape, op, ": mask must have shape ", shape_str(x.shape),
             " (the shape of input), got ", shape_str(mask->shape));
  }
  py::gil_scoped_release nogil;
  dispatch(x.dtype, [&](auto t) {
    using T = decltype(t);
    // Evaluation mode is dropout with p = 0: every element kept and scaled by exactly 1.
    FC_TWIN(x.device, dropout_forward, T)(out.data<T>(),
                                          mask ? mask->data<uint8_t>() : nullptr, x.data<T>(),
                                          x.numel(), training ? p : 0.0, seed);
  });
}

void dropout_backward(py::handle dinp_, py::handle dout_, py::handle mask_, double p) {
  const char* op = "dropout_backward";
  Tensor dout = view(dout_, op, "grad_output"), dinp = view(dinp_, op, "grad_input", true);
  Tensor mask = view(mask_, op, "mask", false, kUInt8);
  check_p(p, op);
  same_device(mask, dout, op, "mask", "grad_output");
  FC_CHECK(mask.shape == dout.shape, op, ": mask must have shape ", shape_str(dout.shape),
           " (the shape of grad_output), got ", shape_str(mask.shape));
  same_dtype(dinp, dout, op, "grad_input", "grad_output");
  expect_shape(dinp, dout.shape, op, "grad_input");
  py::gil_scoped_release nogil;
  dispatch(dout.dtype, [&](auto t) {
    using T = decltype(t);
    FC_TWIN(dout.device, dropout_backward, T)(dinp.data<T>(), dout.data<T>(),
                                              mask.data<uint8_t>(), dout.numel(), p);
  });
}

}  // namespace

void bind_dropout(py::module_& m) {
  m.def("dropout_forward", &dropout_forward);
  m.def("dropout_backward", &dropout_backward);
}

}  // namespace fc::bind
