"""SGD, Adagrad, RMSprop, Adam and AdamW: torch.optim's defaults, checks and update math.

Each ``_update`` keeps the step count and computes the step-dependent scalars in Python
(double precision, as torch does) and hands one parameter to one fused C++ kernel.
"""

import math

from .._loader import _C
from .optimizer import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight
    decay, as torch.optim.SGD (the first step seeds the momentum buffer with the gradient)."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False):
        # As torch, on the defaults only: a group's nesterov without momentum is plain SGD.
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _check_group(self, group):
        super()._check_group(group)
        self._at_least_zero(group, "momentum")

    def _update(self, p, grad, group, state):
        first = "momentum_buffer" not in state or state["momentum_buffer"] is None
        if group["momentum"] != 0 and first:
            state["momentum_buffer"] = self._zeros(p)
        _C.sgd_step(p.data, state.get("momentum_buffer"), grad, group["lr"], group["momentum"],
                    group["dampening"], group["weight_decay"], group["nesterov"],
                    group["maximize"], first)


class Adagrad(Optimizer):
    """Adagrad with learning-rate decay and L2 weight decay, as torch.optim.Adagrad, except
    that a group's own initial_accumulator_value is honoured (torch starts every group's sums
    at the constructor's value) and the sums are made at a parameter's first step, not at
    construction (torch's state_dict has them, at step 0, before any step)."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))

    def _check_group(self, group):
        super()._check_group(group)
        self._at_least_zero(group, "lr_decay")
        self._at_least_zero(group, "initial_accumulator_value")

    def _update(self, p, grad, group, state):
        if not state:
            state["step"] = 0
            state["sum"] = self._zeros(p) + group["initial_accumulator_value"]
        state["step"] += 1
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        _C.adagrad_step(p.data, state["sum"], grad, clr, group["weight_decay"], group["eps"],
                        group["maximize"])


class RMSprop(Optimizer):
    """RMSprop with momentum and the centered variant, as torch.optim.RMSprop."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _check_group(self, group):
        super()._check_group(group)
        self._at_least_zero(group, "momentum")
        self._at_least_zero(group, "alpha")

    def _update(self, p, grad, group, state):
        if not state:
            state["step"] = 0
            state["square_avg"] = self._zeros(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = self._zeros(p)
            if group["centered"]:
                state["grad_avg"] = self._zeros(p)
        state["step"] += 1
        _C.rmsprop_step(p.data, state["square_avg"], state.get("grad_avg"),
                        state.get("momentum_buffer"), grad, group["lr"], group["alpha"],
                        group["eps"], group["weight_decay"], group["momentum"], group["centered"],
                        group["maximize"])


class Adam(Optimizer):
    """Adam with L2 weight decay and AMSGrad, as torch.optim.Adam."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False):
        betas = tuple(betas)
        if len(betas) != 2:
            raise ValueError(f"{type(self).__name__}: betas must be a pair (beta1, beta2), got "
                             f"{betas!r}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _check_group(self, group):
        super()._check_group(group)
        for i, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")

    def _update(self, p, grad, group, state):
        if not state:
            state["step"] = 0
            state["exp_avg"] = self._zeros(p)
            state["exp_avg_sq"] = self._zeros(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = self._zeros(p)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        step_size = group["lr"] / (1 - beta1 ** state["step"])
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** state["step"])
        _C.adam_step(p.data, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq"),
                     grad, group["lr"], beta1, beta2, group["eps"], group["weight_decay"],
                     step_size, bias_correction2_sqrt, group["amsgrad"], group["maximize"],
                     self._decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (the parameter shrinks by lr * weight_decay each step
    before the Adam update), as torch.optim.AdamW; weight_decay defaults to 1e-2."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
