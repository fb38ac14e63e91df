// Bindings of the fused optimizer updates, from the op list (optim.h) through the generic
// binder, one kind per optimizer (its Python scalars become the twin's Args). The parameter, its
// gradient and every state buffer must share one shape and dtype; state buffers are updated in
// place.
#include "bind/generic.h"

#include "optim.h"

namespace fc::bind {
namespace {

// The parameter view plus the checked state views (absent ones stay null).
struct Step {
  Tensor param, grad;
  std::optional<Tensor> state[3];
};

Step read_step(const char* op, py::handle param, py::handle grad,
               std::initializer_list<std::pair<py::handle, const char*>> state) {
  Step s{read(param, op, "param", true), read(grad, op, "grad"), {}};
  same_dtype(s.grad, s.param, op, "grad", "param");
  expect_shape(s.grad, s.param.shape, op, "grad");
  int i = 0;
  for (const auto& [obj, name] : state) {
    if (!obj.is_none()) s.state[i] = read(obj, op, name, true);
    if (s.state[i]) {
      same_dtype(*s.state[i], s.param, op, name, "param");
      expect_shape(*s.state[i], s.param.shape, op, name);
    }
    ++i;
  }
  return s;
}

template <typename T>
T* st(const Step& s, int i) { return ptr<T>(s.state[i]); }

// Python (param, its state buffers (None when absent), grad, the optimizer's scalars): each
// kind below checks its buffers, packs the scalars into the twin's Args, and calls
// kernel(param, state..., grad, n, args). The optimizer's name is its messages' prefix.
struct SgdStep : OwnSignature<SgdStep, 4> {
  template <typename Pick>
  static void call(Pick pick, py::handle param, py::handle buf, py::handle grad, double lr,
                   double momentum, double dampening, double weight_decay, bool nesterov,
                   bool maximize, bool first_step) {
    Step s = read_step("SGD", param, grad, {{buf, "momentum_buffer"}});
    FC_CHECK(momentum == 0 || s.state[0], "SGD: momentum_buffer is required when momentum != 0");
    const SgdArgs a{lr, momentum, dampening, weight_decay, nesterov, maximize, first_step};
    Launch(s.param).run(s.param.dtype, [&](auto t) {
      using T = decltype(t);
      pick(s.param.device, t)(s.param.data<T>(), momentum == 0 ? nullptr : st<T>(s, 0),
                              s.grad.data<T>(), s.param.numel(), a);
    });
  }
};

struct AdagradStep : OwnSignature<AdagradStep, 4> {
  template <typename Pick>
  static void call(Pick pick, py::handle param, py::handle sum, py::handle grad, double clr,
                   double weight_decay, double eps, bool maximize) {
    Step s = read_step("Adagrad", param, grad, {{sum, "sum"}});
    FC_CHECK(s.state[0], "Adagrad: the sum buffer is required");
    const AdagradArgs a{clr, weight_decay, eps, maximize};
    Launch(s.param).run(s.param.dtype, [&](auto t) {
      using T = decltype(t);
      pick(s.param.device, t)(s.param.data<T>(), st<T>(s, 0), s.grad.data<T>(), s.param.numel(), a);
    });
  }
};

struct RmspropStep : OwnSignature<RmspropStep, 6> {
  template <typename Pick>
  static void call(Pick pick, py::handle param, py::handle square_avg, py::handle grad_avg,
                   py::handle buf, py::handle grad, double lr, double alpha, double eps,
                   double weight_decay, double momentum, bool centered, bool maximize) {
    Step s = read_step("RMSprop", param, grad,
                       {{square_avg, "square_avg"}, {grad_avg, "grad_avg"},
                        {buf, "momentum_buffer"}});
    FC_CHECK(s.state[0], "RMSprop: square_avg is required");
    FC_CHECK(!centered || s.state[1], "RMSprop: grad_avg is required when centered");
    FC_CHECK(momentum <= 0 || s.state[2],
             "RMSprop: momentum_buffer is required when momentum > 0");
    const RmspropArgs a{lr, alpha, eps, weight_decay, momentum, centered, maximize};
    Launch(s.param).run(s.param.dtype, [&](auto t) {
      using T = decltype(t);
      pick(s.param.device, t)(s.param.data<T>(), st<T>(s, 0), centered ? st<T>(s, 1) : nullptr,
                              momentum > 0 ? st<T>(s,
                              2) : nullptr, s.grad.data<T>(), s.param.numel(), a);
    });
  }
};

struct AdamStep : OwnSignature<AdamStep, 6> {
  template <typename Pick>
  static void call(Pick pick, py::handle param, py::handle exp_avg, py::handle exp_avg_sq,
                   py::handle max_exp_avg_sq, py::handle grad, double lr, double beta1,
                   double beta2, double eps, double weight_decay, double step_size,
                   double bias_correction2_sqrt, bool amsgrad, bool maximize, bool decoupled) {
    const char* op = decoupled ? "AdamW" : "Adam";
    Step s = read_step(op, param, grad,
                       {{exp_avg, "exp_avg"}, {exp_avg_sq, "exp_avg_sq"},
                        {max_exp_avg_sq, "max_exp_avg_sq"}});
    FC_CHECK(s.state[0] && s.state[1], op, ": exp_avg and exp_avg_sq are required");
    FC_CHECK(!amsgrad || s.state[2], op, ": max_exp_avg_sq is required with amsgrad");
    const AdamArgs a{lr, beta1, beta2, eps, weight_decay, step_size, bias_correction2_sqrt,
                     amsgrad, maximize, decoupled};
    Launch(s.param).run(s.param.dtype, [&](auto t) {
      using T = decltype(t);
      pick(s.param.device, t)(
          s.param.data<T>(), st<T>(s, 0), st<T>(s, 1), amsgrad ? st<T>(s, 2) : nullptr,
          s.grad.data<T>(), s.param.numel(), a);
    });
  }
};

}  // namespace

void bind_optim(py::module_& m) {
  FC_OPTIM_OPS(FC_BIND_OP, T)
}

}  // namespace fc::bind
