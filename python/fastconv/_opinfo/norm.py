"""Op specs of the normalisation family: batch_norm and local_response_norm, with their
float64 NumPy references.

Written from the formulas, not from fastconv's kernels: batch-norm statistics with
numpy mean/var over (N, *), local-response-norm windows and their gradients by
explicit loops over channels. All results are float64 whatever the input dtype.
"""

import numpy as np

from ._spec import OpSpec, Sample

__all__ = [
    "batch_norm_ref",
    "batch_norm_backward_ref",
    "lrn_window",
    "local_response_norm_ref",
    "local_response_norm_backward_ref",
]


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _per_channel(v, ndim):
    """(C,) -> broadcastable against (N, C, *)."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm_ref(x, running_mean, running_var, weight=None, bias=None, training=False,
                   momentum=0.1, eps=1e-5):
    """Returns (out, mean, invstd, new_running_mean, new_running_var).

    training: batch mean and biased variance over every axis but 1; the running statistics
    (if given) are updated as running = (1 - momentum) * running + momentum * stat with the
    unbiased variance. Eval: mean and variance are the running ones. new_running_* are None
    when the running statistics are None.
    """
    x = _f64(x)
    rm, rv, w, b = _f64(running_mean), _f64(running_var), _f64(weight), _f64(bias)
    axes = (0,) + tuple(range(2, x.ndim))
    if training:
        n = x.size // x.shape[1]
        mean = x.mean(axis=axes)
        var = ((x - _per_channel(mean, x.ndim)) ** 2).mean(axis=axes)
        if rm is not None:
            rm = (1 - momentum) * rm + momentum * mean
            rv = (1 - momentum) * rv + momentum * var * n / (n - 1)
    else:
        mean, var = rm, rv
    invstd = 1.0 / np.sqrt(var + eps)
    out = (x - _per_channel(mean, x.ndim)) * _per_channel(invstd, x.ndim)
    if w is not None:
        out = out * _per_channel(w, x.ndim)
    if b is not None:
        out = out + _per_channel(b, x.ndim)
    return out, mean, invstd, rm, rv


def batch_norm_backward_ref(dout, x, weight, mean, invstd, training):
    """(dx, dweight, dbias) of batch_norm given its mean and invstd (batch or running).

    training: xhat = (x - mean) * invstd with mean and invstd functions of x, so
    dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)); eval: dx = w * invstd * dy.
    dweight = sum(dy * xhat), dbias = sum(dy) in both modes.
    """
    dout, x, mean, invstd = _f64(dout), _f64(x), _f64(mean), _f64(invstd)
    C = x.shape[1]
    w = np.ones(C) if weight is None else _f64(weight)
    axes = (0,) + tuple(range(2, x.ndim))
    xhat = (x - _per_channel(mean, x.ndim)) * _per_channel(invstd, x.ndim)
    dweight = (dout * xhat).sum(axis=axes)
    dbias = dout.sum(axis=axes)
    scale = _per_channel(w * invstd, x.ndim)
    if training:
        n = x.size // C
        dx = scale * (dout - _per_channel(dbias / n, x.ndim)
                      - xhat * _per_channel(dweight / n, x.ndim))
    else:
        dx = scale * dout
    return dx, dweight, dbias


def lrn_window(c, C, size):
    """Channels summed for output channel c: size // 2 before, (size - 1) // 2 after."""
    return range(max(0, c - size // 2), min(C, c + (size - 1) // 2 + 1))


def _lrn_den(x, size, alpha, k):
    C = x.shape[1]
    den = np.empty_like(x)
    for c in range(C):
        sq = np.zeros_like(x[:, c])
        for j in lrn_window(c, C, size):
            sq += x[:, j] ** 2
        den[:, c] = k + alpha / size * sq
    return den


def local_response_norm_ref(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """out[:, c] = x[:, c] / (k + alpha / size * sum_{j in window(c)} x[:, j]^2)^beta."""
    x = _f64(x)
    return x / _lrn_den(x, size, alpha, k) ** beta


def local_response_norm_backward_ref(dout, x, size, alpha=1e-4, beta=0.75, k=1.0):
    """dx by the chain rule, channel by channel: out_c depends on x_c directly and on every x_j
    of its window through den_c, d den_c / d x_j = 2 alpha / size * x_j."""
    dout, x = _f64(dout), _f64(x)
    C = x.shape[1]
    den = _lrn_den(x, size, alpha, k)
    dx = dout / den ** beta
    for c in range(C):
        dden = dout[:, c] * x[:, c] * -beta * den[:, c] ** (-beta - 1)
        for j in lrn_window(c, C, size):
            dx[:, j] += dden * 2 * alpha / size * x[:, j]
    return dx


def _stats(C):
    return {"running_mean": lambda rng: rng.standard_normal(C),
            "running_var": lambda rng: rng.uniform(0.5, 2.0, C)}


SPECS = (
    # the backward takes the forward's mean and invstd: tests call it by hand (grad_inputs 0)
    OpSpec("batch_norm", "norm", batch_norm_ref, batch_norm_backward_ref, (
        Sample("train_odd", {"x": (3, 4, 5, 7), **_stats(4), "weight": (4,), "bias": (4,)},
               {"training": True}),
        Sample("eval_batch1", {"x": (1, 3, 6, 5), **_stats(3), "weight": (3,), "bias": (3,)},
               {"training": False}),
        Sample("train_2d", {"x": (5, 6), **_stats(6)}, {"training": True, "momentum": 0.3}),
    ), torch="torch.nn.functional.batch_norm", module="BatchNorm2d", grad_inputs=0),
    OpSpec("local_response_norm", "norm", local_response_norm_ref,
           local_response_norm_backward_ref, (
               Sample("size5_odd", {"x": (2, 7, 5, 3)},
                      {"size": 5, "alpha": 1e-2, "beta": 0.75, "k": 2.0}),
               Sample("size2_batch1", {"x": (1, 4, 3, 3)}, {"size": 2, "alpha": 0.1}),
           ), torch="torch.nn.functional.local_response_norm", module="LocalResponseNorm"),
)
