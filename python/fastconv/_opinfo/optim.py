"""float64 NumPy reference of the optimizer updates, written from the published algorithms
(torch.optim's documentation), independent of fastconv's kernels. Each function takes the
parameter, gradient, a state dict and the hyperparameters, and returns the new parameter."""

import numpy as np

from ._spec import OpSpec


def sgd(p, g, s, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
        maximize=False):
    g = -g if maximize else g
    g = g + weight_decay * p
    if momentum:
        s["buf"] = g.copy() if "buf" not in s else momentum * s["buf"] + (1 - dampening) * g
        g = g + momentum * s["buf"] if nesterov else s["buf"]
    return p - lr * g


def adagrad(p, g, s, lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
            eps=1e-10, maximize=False):
    g = -g if maximize else g
    s["t"] = s.get("t", 0) + 1
    s.setdefault("sum", np.full_like(p, initial_accumulator_value))
    g = g + weight_decay * p
    s["sum"] = s["sum"] + g * g
    return p - lr / (1 + (s["t"] - 1) * lr_decay) * g / (np.sqrt(s["sum"]) + eps)


def rmsprop(p, g, s, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
            maximize=False):
    g = -g if maximize else g
    g = g + weight_decay * p
    s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g * g
    v = s["v"]
    if centered:
        s["gavg"] = alpha * s.get("gavg", 0.0) + (1 - alpha) * g
        v = v - s["gavg"] ** 2
    step = g / (np.sqrt(v) + eps)
    if momentum > 0:
        s["buf"] = momentum * s.get("buf", 0.0) + step
        step = s["buf"]
    return p - lr * step


def adam(p, g, s, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
         maximize=False, decoupled=False):
    b1, b2 = betas
    g = -g if maximize else g
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    s["t"] = s.get("t", 0) + 1
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    v = s["v"]
    if amsgrad:
        s["vmax"] = np.maximum(s.get("vmax", 0.0), v)
        v = s["vmax"]
    m_hat = s["m"] / (1 - b1 ** s["t"])
    v_hat = v / (1 - b2 ** s["t"])
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def adamw(p, g, s, lr, weight_decay=1e-2, **kw):
    return adam(p, g, s, lr, weight_decay=weight_decay, decoupled=True, **kw)


# An optimizer's "reference" is its update (p, g, state, lr, **hyperparameters) -> new p; the
# module factory names the fastconv.optim class, torch PyTorch's.
SPECS = tuple(OpSpec(name, "optim", fn, torch=f"torch.optim.{cls}", module=cls, grad_inputs=0)
              for name, fn, cls in (("sgd", sgd, "SGD"), ("adagrad", adagrad, "Adagrad"),
                                    ("rmsprop", rmsprop, "RMSprop"), ("adam", adam, "Adam"),
                                    ("adamw", adamw, "AdamW")))
