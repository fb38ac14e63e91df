"""Gradient and weight utilities: clip_grad_norm_ and clip_grad_value_ (torch.nn.utils's
math), a max-norm weight constraint (max_norm_) and an L1 penalty (l1_penalty).

`parameters` is a Parameter or an iterable of them (e.g. model.parameters()); everything is
done in place on .grad or .data.
"""

import math

import numpy as np

from .._arrays import module_of
from .module import Module
from .parameter import Parameter, accumulating_grads

__all__ = ["clip_grad_norm_", "clip_grad_value_", "max_norm_", "l1_penalty"]


def _params(parameters):
    return [parameters] if isinstance(parameters, Parameter) else list(parameters)


def _grads(parameters):
    return [p.grad for p in _params(parameters) if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale all gradients together so that their joint norm is at most max_norm.

    The total norm is the norm_type-norm of all gradients seen as one vector (inf: the largest
    |g|). Every gradient is multiplied by min(1, max_norm / (total + 1e-6)), as torch does.
    Returns the total norm (before clipping) as a float; 0.0 when no parameter has a gradient.
    error_if_nonfinite=True raises RuntimeError when that norm is NaN or infinite. foreach is
    accepted for torch compatibility and ignored (there is one implementation).
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return 0.0
    if norm_type == math.inf:
        # np.max, not max(): Python's max drops a NaN that does not come first
        total = float(np.max([float(abs(g).max()) if g.size else 0.0 for g in grads]))
    else:
        # The norm of the per-gradient norms equals the norm of everything concatenated.
        norms = [float(module_of(g).linalg.norm(g.ravel().astype(np.float64), ord=norm_type))
                 for g in grads]
        total = float(np.linalg.norm(np.array(norms), ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from "
                           "`parameters` is non-finite, so it cannot be clipped. To disable "
                           "this error and scale the gradients by the non-finite norm anyway, "
                           "set `error_if_nonfinite=False`")
    # A NaN norm scales by NaN, as torch's clamp keeps it (min(1.0, nan) would be 1.0): the
    # gradients become NaN rather than a step on the finite ones.
    scale = float(max_norm) / (total + 1e-6)
    scale = scale if math.isnan(scale) else min(1.0, scale)
    for g in grads:
        g *= g.dtype.type(scale)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient elementwise to [-clip_value, clip_value] (foreach is ignored)."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        module_of(g).clip(g, -clip_value, clip_value, out=g)


def max_norm_(parameters_or_module, max_norm, dim=0):
    """Max-norm constraint (keras MaxNorm, torch.renorm(w, 2, dim, max_norm)), in place.

    Each slice of a weight along `dim` (a row of a Linear weight, a filter of a Conv2d weight
    for dim=0) whose L2 norm exceeds max_norm is scaled by max_norm / (norm + 1e-7). Given a
    Module it constrains the weights with 2 or more dimensions (biases and batch-norm scales
    are left alone); given parameters it constrains each of them. Call after optimizer.step().
    """
    if isinstance(parameters_or_module, Module):
        params = [p for p in parameters_or_module.parameters() if p.data.ndim >= 2]
    else:
        params = _params(parameters_or_module)
    for p in params:
        w = p.data
        axes = tuple(a for a in range(w.ndim) if a != dim % w.ndim)
        xp = module_of(w)
        norms = xp.sqrt(xp.sum(xp.square(w.astype(np.float64)), axis=axes, keepdims=True))
        scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
        w *= scale.astype(w.dtype)
    return parameters_or_module


def l1_penalty(parameters, strength):
    """L1 weight penalty: returns strength * sum |p| over the parameters and accumulates its
    subgradient strength * sign(p) (0 at p = 0) into each trainable parameter's .grad.

    Call it after the loss's backward pass (which fills the gradients), and add the returned
    value to the reported loss. Frozen parameters (requires_grad=False) count in the value but
    get no gradient.
    """
    total = 0.0
    for p in _params(parameters):
        total += float(abs(p.data).sum(dtype=np.float64))
        (grad,) = accumulating_grads(p)
        if grad is not None:
            grad += strength * module_of(p.data).sign(p.data)
    return strength * total
