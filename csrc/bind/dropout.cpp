// Bindings of the dropout family, forward and backward, from its op list (dropout.h) through the
// generic binder. The arrays are seen as n contiguous elements; the input's (or grad_output's)
// device picks the _cpu or _cuda twin.
#include "bind/generic.h"

#include "dropout.h"

namespace fc::bind {
namespace {

void check_p(double p, const char* op) {
  FC_CHECK(p >= 0 && p <= 1, op, ": p (the probability of an element to be zeroed) must be "
           "between 0 and 1, got ", p);
}

// Python (out, mask or None, input, p, training, seed): kernel(out, mask, inp, n, p, seed); out
// may be input.
struct Dropout : OwnSignature<Dropout, 4> {
  template <typename Pick>
  static void call(Pick pick, py::handle out_, py::handle mask_, py::handle input, double p,
                   bool training, uint64_t seed) {
    const char* o = "dropout";
    Tensor x = read(input, o, "input"), out = read(out_, o, "out", true);
    std::optional<Tensor> mask;
    if (!mask_.is_none()) mask = read(mask_, o, "mask", true, kUInt8);
    check_p(p, o);
    same_dtype(out, x, o, "out", "input");
    FC_CHECK(out.shape == x.shape, o, ": out must have shape ", shape_str(x.shape),
             " for input of shape ", shape_str(x.shape), ", got ", shape_str(out.shape));
    if (mask) {
      same_device(*mask, x, o, "mask", "input");
      FC_CHECK(mask->shape == x.shape, o, ": mask must have shape ", shape_str(x.shape),
               " (the shape of input), got ", shape_str(mask->shape));
    }
    Launch(x).run(x.dtype, [&](auto t) {
      using T = decltype(t);
      // Evaluation mode is dropout with p = 0: every element kept and scaled by exactly 1.
      pick(x.device, t)(
          out.data<T>(),
          mask ? mask->data<uint8_t>() : nullptr, x.data<T>(), x.numel(), training ? p : 0.0, seed);
    });
  }
};

// Python (grad_input, grad_output, mask, p): kernel(dinp, dout, mask, n, p).
struct DropoutGrad : OwnSignature<DropoutGrad, 4> {
  template <typename Pick>
  static void call(Pick pick, py::handle dinp_, py::handle dout_, py::handle mask_, double p) {
    const char* o = "dropout_backward";
    Tensor dout = read(dout_, o, "grad_output"), dinp = read(dinp_, o, "grad_input", true);
    Tensor mask = read(mask_, o, "mask", false, kUInt8);
    check_p(p, o);
    same_device(mask, dout, o, "mask", "grad_output");
    FC_CHECK(mask.shape == dout.shape, o, ": mask must have shape ", shape_str(dout.shape),
             " (the shape of grad_output), got ", shape_str(mask.shape));
    same_dtype(dinp, dout, o, "grad_input", "grad_output");
    expect_shape(dinp, dout.shape, o, "grad_input");
    Launch(dout).run(dout.dtype, [&](auto t) {
      using T = decltype(t);
      pick(dout.device, t)(dinp.data<T>(), dout.data<T>(), mask.data<uint8_t>(), dout.numel(), p);
    });
  }
};

}  // namespace

void bind_dropout(py::module_& m) {
  FC_DROPOUT_OPS(FC_BIND_OP, T)
}

}  // namespace fc::bind
