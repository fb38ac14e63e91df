// Bindings of the normalisation family: batch_norm and local_response_norm, forward and
// backward, from its op list (norm.h) through the generic binder. Input (N, C, *) is seen by the
// kernels as (N, C, S), S the product of the rest; the input's device picks the _cpu or _cuda
// twin, every other array checked to be on it. Outputs are allocated here, after the checks.
#include "bind/generic.h"

#include "norm.h"

namespace fc::bind {
namespace {

struct NCS {
  int64_t N, C, S;
};

NCS ncs(const Tensor& x, size_t min_ndim, const char* op, const char* layout) {
  FC_CHECK(x.shape.size() >= min_ndim, op, ": input must be ", layout, ", got shape ",
           shape_str(x.shape));
  int64_t S = 1;
  for (size_t i = 2; i < x.shape.size(); ++i) S *= x.shape[i];
  return {x.shape[0], x.shape[1], S};
}

// t is a float array of x's dtype and of shape s: x's own, or (C,) for a per-channel vector.
void like(const Tensor& t, const Tensor& x, const Shape& s, const char* op, const char* name) {
  same_dtype(t, x, op, name, "input");
  FC_CHECK(t.shape == s, op, ": ", name, " must have shape ", shape_str(s), " for input of shape ",
           shape_str(x.shape), ", got ", shape_str(t.shape));
}

void channel_vector(const std::optional<Tensor>& t, const Tensor& x, int64_t C, const char* op,
                    const char* name) {
  if (t) like(*t, x, {C}, op, name);
}

// Python (empty, running_mean, running_var, input, weight, bias, training, momentum, eps) ->
// (out, save_mean, save_invstd), allocated here with `empty`: kernel(out, save_mean,
// save_invstd, running_mean, running_var, inp, weight, bias, N, C, S, training, momentum, eps).
struct BatchNorm : OwnSignature<BatchNorm, 12> {
  template <typename Pick>
  static py::tuple call(Pick pick, py::handle alloc, py::handle running_mean_,
                        py::handle running_var_, py::handle input, py::handle weight_,
                        py::handle bias_, bool training, double momentum, double eps) {
    const char* op = "batch_norm";
    Tensor x = read(input, op, "input");
    const NCS d = ncs(x, 2, op, "(N, C) or (N, C, *)");
    auto rm = read_or_none(running_mean_, op, "running_mean", training);
    auto rv = read_or_none(running_var_, op, "running_var", training);
    auto w = read_or_none(weight_, op, "weight"), b = read_or_none(bias_, op, "bias");
    channel_vector(rm, x, d.C, op, "running_mean");
    channel_vector(rv, x, d.C, op, "running_var");
    channel_vector(w, x, d.C, op, "weight");
    channel_vector(b, x, d.C, op, "bias");
    FC_CHECK(rm.has_value() == rv.has_value(), op, ": running_mean and running_var must both be "
             "None or neither be None, got ", rm ? "running_var" : "running_mean", "=None");
    if (training) {
      FC_CHECK(d.N * d.S != 1, op, ": expected more than 1 value per channel when training, got "
               "input of shape ", shape_str(x.shape));
      FC_CHECK(eps > 0, op, ": eps must be positive when training, got ", eps);
    } else {
      FC_CHECK(rm, op,
               ": running_mean and running_var are required when training=False, got None");
      FC_CHECK(eps >= 0, op, ": eps must be non-negative, got ", eps);
    }
    Output out = allocate(alloc, input, x, x.shape, op, "out");
    Output save_mean = allocate(alloc, input, x, {d.C}, op, "save_mean");
    Output save_invstd = allocate(alloc, input, x, {d.C}, op, "save_invstd");
    if (training && d.N * d.S == 0) {
      // As torch: no values, no statistics; the running ones stay as they are.
      save_mean.array.attr("fill")(0);
      save_invstd.array.attr("fill")(0);
      return py::make_tuple(out.array, save_mean.array, save_invstd.array);
    }
    Launch(x).run(x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(x.device, t)(out.view.data<T>(), save_mean.view.data<T>(), save_invstd.view.data<T>(),
                        ptr<T>(rm), ptr<T>(rv), x.data<T>(), ptr<T>(w), ptr<T>(b), d.N, d.C, d.S,
                        training, momentum, eps);
    });
    return py::make_tuple(out.array, save_mean.array, save_invstd.array);
  }
};

// Python (empty, zeros, grad_output, input, weight, save_mean, save_invstd, training,
// need_input, need_weight, need_bias, grad_weight or None, grad_bias or None) ->
// (grad_input, grad_weight, grad_bias), None where not needed (grad_weight also when weight is
// None), allocated by grad_outputs(): kernel(dinp, dweight, dbias, dout, inp, weight, save_mean,
// save_invstd, N, C, S, training).
struct BatchNormGrad : OwnSignature<BatchNormGrad, 12> {
  template <typename Pick>
  static py::tuple call(Pick pick, py::handle alloc, py::handle zeros, py::handle dout_,
                        py::handle input, py::handle weight_, py::handle save_mean_,
                        py::handle save_invstd_, bool training, bool need_input,
                        bool need_weight, bool need_bias, py::handle grad_weight,
                        py::handle grad_bias) {
    const char* op = "batch_norm_backward";
    Tensor x = read(input, op, "input");
    const NCS d = ncs(x, 2, op, "(N, C) or (N, C, *)");
    Tensor dout = read(dout_, op, "grad_output");
    Tensor save_mean = read(save_mean_, op, "save_mean");
    Tensor save_invstd = read(save_invstd_, op, "save_invstd");
    auto w = read_or_none(weight_, op, "weight");
    like(dout, x, x.shape, op, "grad_output");
    channel_vector(save_mean, x, d.C, op, "save_mean");
    channel_vector(save_invstd, x, d.C, op, "save_invstd");
    channel_vector(w, x, d.C, op, "weight");
    if (training) {
      FC_CHECK(d.N * d.S != 1, op, ": expected more than 1 value per channel when training, got "
               "input of shape ", shape_str(x.shape));
    }
    const GradOutputs g = grad_outputs(alloc, zeros, input, x, op, need_input, x.shape,
                                       need_weight && w, grad_weight, {d.C}, need_bias, grad_bias,
                                       {d.C});
    // No values: an empty grad_input, and nothing to add to the parameters' gradients.
    if (d.N * d.S == 0) return g.arrays;
    Launch(x).run(x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(x.device, t)(
          ptr<T>(g.input), ptr<T>(g.weight), ptr<T>(g.bias), dout.data<T>(), x.data<T>(),
          ptr<T>(w), save_mean.data<T>(), save_invstd.data<T>(), d.N, d.C, d.S, training);
    });
    return g.arrays;
  }
};

NCS lrn_check(const Tensor& x, int64_t size, const char* op) {
  const NCS d = ncs(x, 3, op, "3-D or more, (N, C, *)");
  FC_CHECK(size >= 1, op, ": size must be at least 1, got ", size);
  return d;
}

// Python (empty, input, size, alpha, beta, k) -> out: kernel(out, inp, N, C, S, size, alpha,
// beta, k).
struct ChannelWindow : OwnSignature<ChannelWindow, 5> {
  template <typename Pick>
  static py::object call(Pick pick, py::handle alloc, py::handle input, int64_t size,
                         double alpha, double beta, double k) {
    const char* op = "local_response_norm";
    Tensor x = read(input, op, "input");
    const NCS d = lrn_check(x, size, op);
    Output out = allocate(alloc, input, x, x.shape, op, "out");
    Launch(x).run(x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(x.device, t)(out.view.data<T>(), x.data<T>(), d.N, d.C, d.S, size, alpha, beta, k);
    });
    return out.array;
  }
};

// Python (empty, grad_output, input, size, alpha, beta, k) -> grad_input: kernel(dinp, dout,
// inp, N, C, S, size, alpha, beta, k).
struct ChannelWindowGrad : OwnSignature<ChannelWindowGrad, 6> {
  template <typename Pick>
  static py::object call(Pick pick, py::handle alloc, py::handle dout_, py::handle input,
                         int64_t size, double alpha, double beta, double k) {
    const char* op = "local_response_norm_backward";
    Tensor x = read(input, op, "input"), dout = read(dout_, op, "grad_output");
    const NCS d = lrn_check(x, size, op);
    like(dout, x, x.shape, op, "grad_output");
    Output dinp = allocate(alloc, input, x, x.shape, op, "grad_input");
    Launch(x).run(x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(x.device, t)(dinp.view.data<T>(), dout.data<T>(), x.data<T>(), d.N, d.C, d.S, size,
                        alpha, beta, k);
    });
    return dinp.array;
  }
};

}  // namespace

void bind_norm(py::module_& m) {
  FC_NORM_OPS(FC_BIND_OP, T)
}

}  // namespace fc::bind
