"""Float64 NumPy references for batch_norm, local_response_norm and dropout.

Written from the formulas, not from fastconv's kernels: batch-norm statistics with
numpy mean/var over (N, *), local-response-norm windows and their gradients by
explicit loops over channels, dropout as a product with a given mask. All results
are float64 whatever the input dtype.

This module must never import fastconv.
"""

import numpy as np

__all__ = [
    "batch_norm_ref",
    "batch_norm_backward_ref",
    "lrn_window",
    "local_response_norm_ref",
    "local_response_norm_backward_ref",
    "dropout_ref",
    "dropout_backward_ref",
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


def dropout_ref(x, mask, p):
    """x * mask / (1 - p); x * 0 everywhere when p = 1."""
    x = _f64(x)
    keep = np.asarray(mask, dtype=bool)
    if p == 1:
        return x * 0.0
    return np.where(keep, x / (1 - p), x * 0.0)


def dropout_backward_ref(dout, mask, p):
    return dropout_ref(dout, mask, p)
