// Bindings of the loss family: cross_entropy (class indices or probabilities), mse_loss and
// multi_margin_loss, forward and backward. Shapes, dtypes, target values, label_smoothing, p
// and the reduction string are all checked here, once; the kernels trust their arguments. The
// loss and the input gradient are then allocated here, through the caller's allocator. From
// the op list (loss.h) through the generic binder.
#include "bind/generic.h"

#include "loss.h"

namespace fc::bind {
namespace {

Reduction reduction_of(const char* op, const std::string& s) {
  if (s == "none") return Reduction::none;
  if (s == "mean") return Reduction::mean;
  FC_CHECK(s == "sum", op, ": reduction must be 'none', 'mean' or 'sum', got '", s, "'");
  return Reduction::sum;
}

std::string index_str(int64_t flat, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shape_str(idx);
}

// Every class index in [0, C), except entries equal to ignore_index (when allowed). GPU targets
// are scanned on the device and the first bad index read back: that sync is the price of the
// same ValueError on both devices (and of kernels that can trust every index they read).
void check_targets(const Tensor& t, int64_t C, const char* op, bool has_ignore,
                   int64_t ignore_index) {
  const int64_t n = t.numel();
  int64_t bad = -1, value = 0;
  if (t.device == Device::cuda) {
#ifdef FC_CUDA
    py::gil_scoped_release nogil;
    cuda::set_stream(t.stream);  // the scan runs on the target's stream, as the kernels will
    bad = first_bad_target_cuda(t.data<int64_t>(), n, C, has_ignore, ignore_index, &value);
#endif
  } else {
    const int64_t* v = t.data<int64_t>();
    for (int64_t i = 0; i < n && bad < 0; ++i) {
      if ((v[i] < 0 || v[i] >= C) && !(has_ignore && v[i] == ignore_index)) bad = i;
    }
    if (bad >= 0) value = v[bad];
  }
  if (bad < 0) return;
  throw std::invalid_argument(
      str(op, ": target value ", value, " at index ", index_str(bad, t.shape),
          " is out of range [0, ", C, ")",
          has_ignore ? str(" and is not ignore_index (", ignore_index, ")") : ""));
}

// A backward's grad_output (the loss's shape), read and checked, and its grad_input (the
// input's shape), allocated with `alloc` once the arguments are checked.
struct LossGrads {
  Tensor dout;
  Output dinp;
};

LossGrads loss_grads(py::handle alloc, py::handle dout_, py::handle input, const Tensor& x,
                     const Shape& loss_shape, Reduction r, const char* op) {
  Tensor dout = read(dout_, op, "grad_output");
  same_dtype(dout, x, op, "grad_output", "input");
  FC_CHECK(dout.shape == loss_shape, op, ": grad_output must have shape ", shape_str(loss_shape),
           r == Reduction::none ? " (the per-element loss)" : " (a scalar, for a reduced loss)",
           ", got ", shape_str(dout.shape));
  return {dout, allocate(alloc, input, x, x.shape, op, "grad_input")};
}

// cross_entropy's arguments, checked. Logits (C,), (N, C) or (N, C, d1, ...) are seen as
// [N, C, S]; class-index targets have the logits' shape without C, probabilities the same shape.
struct CrossEntropy {
  Tensor x, target;
  std::optional<Tensor> weight;
  int64_t N = 1, C = 0, S = 1;
  bool prob = false;
  Reduction reduction = Reduction::mean;
  Shape loss_shape;
};

CrossEntropy cross_entropy_args(const char* op, py::handle input, py::handle target,
                                py::handle weight, int64_t ignore_index, double label_smoothing,
                                const std::string& reduction) {
  CrossEntropy a;
  a.x = read(input, op, "input");
  a.target = read(target, op, "target", false, kFloat | kInt64);
  a.weight = read_or_none(weight, op, "weight");
  a.reduction = reduction_of(op, reduction);
  const Shape& xs = a.x.shape;
  FC_CHECK(!xs.empty(), op, ": input must be (C,), (N, C) or (N, C, d1, ...) logits, got shape ",
           shape_str(xs));
  const bool batched = xs.size() >= 2;
  a.C = xs[batched ? 1 : 0];
  FC_CHECK(a.C >= 1, op, ": input must have at least one class, got shape ", shape_str(xs));
  Shape per_item;  // the logits' shape without the class dimension
  if (batched) {
    a.N = xs[0];
    per_item.push_back(xs[0]);
    for (size_t d = 2; d < xs.size(); ++d) {
      a.S *= xs[d];
      per_item.push_back(xs[d]);
    }
  }
  a.prob = a.target.dtype != DType::i64;
  if (a.prob) {
    // As torch: ignoring a class has no meaning for probabilities; a negative index ignores none.
    FC_CHECK(ignore_index < 0, op, ": ignore_index must be negative with class-probability ",
             "targets (nothing is ignored), got ", ignore_index);
    same_dtype(a.target, a.x, op, "target", "input");
    FC_CHECK(a.target.shape == xs, op,
             ": target of class probabilities must have the input's shape ", shape_str(xs),
             ", got ", shape_str(a.target.shape));
  } else {
    FC_CHECK(a.target.shape == per_item, op, ": target of class indices must have shape ",
             shape_str(per_item), " (input ", shape_str(xs), " without the class dimension), got ",
             shape_str(a.target.shape));
    same_device(a.target, a.x, op, "target", "input");
    check_targets(a.target, a.C, op, true, ignore_index);
  }
  if (a.weight) {
    same_dtype(*a.weight, a.x, op, "weight", "input");
    FC_CHECK(a.weight->shape == Shape{a.C}, op, ": weight must have shape ", shape_str({a.C}),
             " (one per class), got ", shape_str(a.weight->shape));
  }
  FC_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, op,
           ": label_smoothing must be in [0, 1], got ", label_smoothing);
  if (a.reduction == Reduction::none) a.loss_shape = per_item;
  return a;
}

// Python (empty, input, target, weight, ignore_index, label_smoothing, reduction) -> the loss,
// allocated here: the index twin, or the probability twin (its op-list entry binds nothing:
// ProbTarget) for a float target.
struct CrossEntropyLoss : OwnSignature<CrossEntropyLoss, 4> {
  template <typename Pick>
  static py::object call(Pick pick, py::handle alloc, py::handle input, py::handle target,
                         py::handle weight, int64_t ignore_index, double label_smoothing,
                         const std::string& reduction) {
    const char* op = "cross_entropy";
    CrossEntropy a = cross_entropy_args(op, input, target, weight, ignore_index,
                                        label_smoothing, reduction);
    Output out = allocate(alloc, input, a.x, a.loss_shape, op, "out");
    Launch(a.x).run(a.x.dtype, [&](auto t) {
      using T = decltype(t);
      if (a.prob) {
        FC_PICK(cross_entropy_prob_forward)(a.x.device, t)(
            out.view.data<T>(), a.x.data<T>(), a.target.data<T>(), ptr<T>(a.weight), a.N, a.C,
            a.S, label_smoothing, a.reduction);
      } else {
        pick(a.x.device, t)(out.view.data<T>(), a.x.data<T>(), a.target.data<int64_t>(),
                            ptr<T>(a.weight), a.N, a.C, a.S, ignore_index, label_smoothing,
                            a.reduction);
      }
    });
    return out.array;
  }
};

// Python (empty, grad_output, input, target, weight, ignore_index, label_smoothing, reduction)
// -> grad_input, twins picked as by the forward.
struct CrossEntropyLossGrad : OwnSignature<CrossEntropyLossGrad, 5> {
  template <typename Pick>
  static py::object call(Pick pick, py::handle alloc, py::handle dout_, py::handle input,
                         py::handle target, py::handle weight, int64_t ignore_index,
                         double label_smoothing, const std::string& reduction) {
    const char* op = "cross_entropy_backward";
    CrossEntropy a = cross_entropy_args(op, input, target, weight, ignore_index,
                                        label_smoothing, reduction);
    const LossGrads g = loss_grads(alloc, dout_, input, a.x, a.loss_shape, a.reduction, op);
    Launch(a.x).run(a.x.dtype, [&](auto t) {
      using T = decltype(t);
      T* dinp = g.dinp.view.data<T>();
      if (a.prob) {
        FC_PICK(cross_entropy_prob_backward)(a.x.device, t)(
            dinp, g.dout.data<T>(), a.x.data<T>(), a.target.data<T>(), ptr<T>(a.weight), a.N,
            a.C, a.S, label_smoothing, a.reduction);
      } else {
        pick(a.x.device, t)(dinp, g.dout.data<T>(), a.x.data<T>(), a.target.data<int64_t>(),
                            ptr<T>(a.weight), a.N, a.C, a.S, ignore_index, label_smoothing,
                            a.reduction);
      }
    });
    return g.dinp.array;
  }
};

// mse_loss's arguments, checked: input and target of one shape and dtype (no broadcasting).
struct Mse {
  Tensor x, target;
  Reduction reduction;
  Shape loss_shape;
};

Mse mse_args(const char* op, py::handle input, py::handle target, const std::string& reduction) {
  Mse a{read(input, op, "input"), read(target, op, "target"), reduction_of(op, reduction), {}};
  same_dtype(a.target, a.x, op, "target", "input");
  FC_CHECK(a.target.shape == a.x.shape, op, ": target must have the input's shape ",
           shape_str(a.x.shape), " (fastconv does not broadcast), got ", shape_str(a.target.shape));
  if (a.reduction == Reduction::none) a.loss_shape = a.x.shape;
  return a;
}

// Python (empty, input, target, reduction) -> the loss: kernel(out, inp, target, n, reduction).
struct PairLoss : OwnSignature<PairLoss, 4> {
  template <typename Pick>
  static py::object call(Pick pick, py::handle alloc, py::handle input, py::handle target,
                         const std::string& reduction) {
    const char* op = "mse_loss";
    Mse a = mse_args(op, input, target, reduction);
    Output out = allocate(alloc, input, a.x, a.loss_shape, op, "out");
    Launch(a.x).run(a.x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(a.x.device, t)(out.view.data<T>(), a.x.data<T>(), a.target.data<T>(), a.x.numel(),
                          a.reduction);
    });
    return out.array;
  }
};

// Python (empty, grad_output, input, target, reduction) -> grad_input.
struct PairLossGrad : OwnSignature<PairLossGrad, 5> {
  template <typename Pick>
  static py::object call(Pick pick, py::handle alloc, py::handle dout_, py::handle input,
                         py::handle target, const std::string& reduction) {
    const char* op = "mse_loss_backward";
    Mse a = mse_args(op, input, target, reduction);
    const LossGrads g = loss_grads(alloc, dout_, input, a.x, a.loss_shape, a.reduction, op);
    Launch(a.x).run(a.x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(a.x.device, t)(g.dinp.view.data<T>(), g.dout.data<T>(), a.x.data<T>(),
                          a.target.data<T>(), a.x.numel(), a.reduction);
    });
    return g.dinp.array;
  }
};

// multi_margin_loss's arguments, checked: input (C,) or (N, C); target int64 with N elements,
// 0-d or 1-D as torch allows; the per-sample loss has the target's shape.
struct MultiMargin {
  Tensor x, target;
  std::optional<Tensor> weight;
  int64_t N = 1, C = 0;
  Reduction reduction;
  Shape loss_shape;
};

MultiMargin multi_margin_args(const char* op, py::handle input, py::handle target, int64_t p,
                              py::handle weight, const std::string& reduction) {
  MultiMargin a{read(input, op, "input"), read(target, op, "target", false, kInt64),
                read_or_none(weight, op, "weight"), 1, 0, reduction_of(op, reduction), {}};
  const Shape& xs = a.x.shape;
  FC_CHECK(xs.size() == 1 || xs.size() == 2, op, ": input must be (C,) or (N, C), got shape ",
           shape_str(xs));
  a.C = xs.back();
  if (xs.size() == 2) a.N = xs[0];
  FC_CHECK(a.C >= 1, op, ": input must have at least one class, got shape ", shape_str(xs));
  FC_CHECK(a.target.shape.size() <= 1 && a.target.numel() == a.N, op, ": target must have shape ",
           shape_str({a.N}), " (one class index per row of input ", shape_str(xs), "), got ",
           shape_str(a.target.shape));
  same_device(a.target, a.x, op, "target", "input");
  check_targets(a.target, a.C, op, false, 0);
  FC_CHECK(p == 1 || p == 2, op, ": p must be 1 or 2, got ", p);
  if (a.weight) {
    same_dtype(*a.weight, a.x, op, "weight", "input");
    FC_CHECK(a.weight->shape == Shape{a.C}, op, ": weight must have shape ", shape_str({a.C}),
             " (one per class), got ", shape_str(a.weight->shape));
  }
  if (a.reduction == Reduction::none) a.loss_shape = a.target.shape;
  return a;
}

// p arrives as int64, like every Python int, so that any p reaches the check (a C++ int made
// pybind11 refuse p >= 2**31 with a TypeError naming no argument); the kernels take it as int.
// Python (empty, input, target, p, margin, weight, reduction) -> the loss.
struct MarginLoss : OwnSignature<MarginLoss, 4> {
  template <typename Pick>
  static py::object call(Pick pick, py::handle alloc, py::handle input, py::handle target,
                         int64_t p, double margin, py::handle weight,
                         const std::string& reduction) {
    const char* op = "multi_margin_loss";
    MultiMargin a = multi_margin_args(op, input, target, p, weight, reduction);
    Output out = allocate(alloc, input, a.x, a.loss_shape, op, "out");
    Launch(a.x).run(a.x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(a.x.device, t)(out.view.data<T>(), a.x.data<T>(), a.target.data<int64_t>(),
                          ptr<T>(a.weight), a.N, a.C, int(p), margin, a.reduction);
    });
    return out.array;
  }
};

// Python (empty, grad_output, input, target, p, margin, weight, reduction) -> grad_input.
struct MarginLossGrad : OwnSignature<MarginLossGrad, 5> {
  template <typename Pick>
  static py::object call(Pick pick, py::handle alloc, py::handle dout_, py::handle input,
                         py::handle target, int64_t p, double margin, py::handle weight,
                         const std::string& reduction) {
    const char* op = "multi_margin_loss_backward";
    MultiMargin a = multi_margin_args(op, input, target, p, weight, reduction);
    const LossGrads g = loss_grads(alloc, dout_, input, a.x, a.loss_shape, a.reduction, op);
    Launch(a.x).run(a.x.dtype, [&](auto t) {
      using T = decltype(t);
      pick(a.x.device, t)(g.dinp.view.data<T>(), g.dout.data<T>(), a.x.data<T>(),
                          a.target.data<int64_t>(), ptr<T>(a.weight), a.N, a.C, int(p), margin,
                          a.reduction);
    });
    return g.dinp.array;
  }
};

// The probability twins of cross_entropy: bound by CrossEntropyLoss(Grad) under the op's one
// Python name, which picks them for a float target.
struct ProbTarget {
  static constexpr size_t kArrays = 0;
  template <typename... Scalars, typename Pick, typename Tag>
  static void def(py::module_&, const char*, std::string, Pick, Tag) {}
};

}  // namespace

void bind_loss(py::module_& m) {
  FC_LOSS_OPS(FC_BIND_OP, T)
}

}  // namespace fc::bind
