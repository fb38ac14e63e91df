// Bindings of the dense family: linear, forward and backward, from its op list (dense.h) through
// the generic binder; its sizes are checked here (linear_dims). Both passes allocate their outputs.
#include "bind/generic.h"

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

// Python (empty, input, weight, bias or None) -> out, allocated here with `empty` (the
// functional module's allocator): kernel(out, inp, weight, bias, M, IN, OUT).
struct Linear : OwnSignature<Linear, 4> {
  template <typename Pick>
  static py::object call(Pick pick, py::handle empty, py::handle input, py::handle weight,
                         py::handle bias_) {
    const char* o = "linear";
    Tensor x = read(input, o, "input"), w = read(weight, o, "weight");
    same_dtype(w, x, o, "weight", "input");
    const LinearDims d = linear_dims(o, x, w);
    Output out = allocate(empty, input, x, d.out, o, "out");
    std::optional<Tensor> b;
    if (!bias_.is_none()) b = read_like(bias_, x, {d.OUT}, o, "bias");
    Launch(x).run(x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(x.device, t)(out.view.data<T>(), x.data<T>(), w.data<T>(), ptr<T>(b), d.M, d.IN, d.OUT);
    });
    return out.array;
  }
};

// Python (empty, zeros, grad_output, input, weight, need_input, need_weight, need_bias,
// grad_weight or None, grad_bias or None) -> (grad_input, grad_weight, grad_bias), None where
// not needed, allocated by grad_outputs(): kernel(dinp, dweight, dbias, dout, inp, weight,
// M, IN, OUT).
struct LinearGrad : OwnSignature<LinearGrad, 6> {
  template <typename Pick>
  static py::tuple call(Pick pick, py::handle alloc, py::handle zeros, py::handle dout_,
                        py::handle input, py::handle weight, bool need_input, bool need_weight,
                        bool need_bias, py::handle grad_weight, py::handle grad_bias) {
    const char* o = "linear_backward";
    Tensor x = read(input, o, "input"), w = read(weight, o, "weight");
    same_dtype(w, x, o, "weight", "input");
    const LinearDims d = linear_dims(o, x, w);
    Tensor dout = read_like(dout_, x, d.out, o, "grad_output", false,
                            "the linear output for this input and weight");
    const GradOutputs g = grad_outputs(alloc, zeros, input, x, o, need_input, x.shape, need_weight,
                                       grad_weight, w.shape, need_bias, grad_bias, {d.OUT});
    Launch(x).run(x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(x.device, t)(ptr<T>(g.input), ptr<T>(g.weight), ptr<T>(g.bias), dout.data<T>(),
                        x.data<T>(), w.data<T>(), d.M, d.IN, d.OUT);
    });
    return g.arrays;
  }
};

}  // namespace

void bind_dense(py::module_& m) {
  FC_DENSE_OPS(FC_BIND_OP, T)
}

}  // namespace fc::bind
