"""Float64 NumPy references for the activation family (tests/test_act*.py).

Written from the formulas (PyTorch's definitions, kink conventions and overflow guards), with
no shared code with the C++ kernels. Inputs of any float dtype are computed in float64.
Softmax works on a moved axis with NumPy reductions; its backward is the Jacobian-vector
product written per row. This module must never import fastconv.
"""

import math

import numpy as np

__all__ = ["relu_ref", "relu_backward_ref", "leaky_relu_ref", "leaky_relu_backward_ref",
           "elu_ref", "elu_backward_ref", "sigmoid_ref", "sigmoid_backward_ref", "tanh_ref",
           "tanh_backward_ref", "softplus_ref", "softplus_backward_ref", "gelu_ref",
           "gelu_backward_ref", "softmax_ref",
           "softmax_backward_ref", "log_softmax_ref", "log_softmax_backward_ref"]


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def relu_ref(x):
    (x,) = _f64(x)
    return np.where(x < 0, 0.0, x)  # keeps NaN


def relu_backward_ref(g, x):
    g, x = _f64(g, x)
    return np.where(x <= 0, 0.0, g)  # relu'(0) = 0; NaN input passes g


def leaky_relu_ref(x, negative_slope=0.01):
    (x,) = _f64(x)
    with np.errstate(invalid="ignore"):
        return np.where(x > 0, x, x * negative_slope)


def leaky_relu_backward_ref(g, x, negative_slope=0.01):
    g, x = _f64(g, x)
    return np.where(x > 0, g, g * negative_slope)


def elu_ref(x, alpha=1.0):
    (x,) = _f64(x)
    with np.errstate(invalid="ignore"):
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)) * alpha)


def elu_backward_ref(g, x, alpha=1.0):
    g, x = _f64(g, x)
    with np.errstate(invalid="ignore"):
        return np.where(x > 0, g, g * alpha * np.exp(np.minimum(x, 0.0)))


def sigmoid_ref(x):
    (x,) = _f64(x)
    # 1/(1+exp(-x)) for x >= 0 and exp(x)/(1+exp(x)) below: neither overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward_ref(g, x):
    g, x = _f64(g, x)
    s = sigmoid_ref(x)
    return g * s * (1.0 - s)


def tanh_ref(x):
    (x,) = _f64(x)
    return np.tanh(x)


def tanh_backward_ref(g, x):
    g, x = _f64(g, x)
    t = np.tanh(x)
    return g * (1.0 - t * t)


def softplus_ref(x, beta=1.0, threshold=20.0):
    (x,) = _f64(x)
    z = x * beta
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|), exact without overflow.
    with np.errstate(invalid="ignore"):
        sp = (np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))) / beta
        return np.where(z > threshold, x, sp)


def softplus_backward_ref(g, x, beta=1.0, threshold=20.0):
    g, x = _f64(g, x)
    z = x * beta
    return np.where(z > threshold, g, g * sigmoid_ref(z))


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _normal_cdf(x):
    # erfc, not 1 + erf: no cancellation in the left tail.
    return 0.5 * _erfc(-x / math.sqrt(2.0))


def gelu_ref(x):
    (x,) = _f64(x)
    with np.errstate(invalid="ignore"):
        return x * _normal_cdf(x)  # -inf * 0 is NaN, as PyTorch


def gelu_backward_ref(g, x):
    g, x = _f64(g, x)
    with np.errstate(invalid="ignore", over="ignore"):
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return g * (_normal_cdf(x) + x * pdf)  # +-inf * 0 is NaN, as PyTorch


def _moved(x, dim):
    """x with `dim` moved last (0-d arrays become shape (1,)) and a function to move it back."""
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape
    if x.ndim == 0:
        return x.reshape(1), lambda y: y.reshape(shape)
    m = np.moveaxis(x, dim, -1)
    return m, lambda y: np.moveaxis(y, -1, dim)


def softmax_ref(x, dim):
    m, back = _moved(x, dim)
    with np.errstate(invalid="ignore"):
        e = np.exp(m - m.max(axis=-1, keepdims=True, initial=-np.inf))
        return back(e / e.sum(axis=-1, keepdims=True))


def log_softmax_ref(x, dim):
    m, back = _moved(x, dim)
    with np.errstate(invalid="ignore", divide="ignore"):
        shifted = m - m.max(axis=-1, keepdims=True, initial=-np.inf)
        return back(shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True)))


def softmax_backward_ref(g, y, dim):
    """dx = J^T g with J = diag(y) - y y^T per row, built explicitly."""
    gm, back = _moved(g, dim)
    ym, _ = _moved(y, dim)
    out = np.empty_like(ym)
    for idx in np.ndindex(ym.shape[:-1]):
        yr = ym[idx]
        J = np.diag(yr) - np.outer(yr, yr)
        out[idx] = J.T @ gm[idx]
    return back(out)


def log_softmax_backward_ref(g, y, dim):
    """dx = J^T g with J = I - 1 softmax^T per row (y = log_softmax, softmax = exp(y))."""
    gm, back = _moved(g, dim)
    ym, _ = _moved(y, dim)
    out = np.empty_like(ym)
    for idx in np.ndindex(ym.shape[:-1]):
        p = np.exp(ym[idx])
        J = np.eye(p.size) - np.outer(np.ones(p.size), p)
        out[idx] = J.T @ gm[idx]
    return back(out)
