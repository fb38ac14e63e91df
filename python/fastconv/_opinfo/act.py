"""Float64 NumPy references for the activation family (tests/test_act*.py).

Written from the formulas (PyTorch's definitions, kink conventions and overflow guards), with
no shared code with the C++ kernels. Inputs of any float dtype are computed in float64.
Softmax works on a moved axis with NumPy reductions; its backward is the Jacobian-vector
product written per row.
"""

import math

import numpy as np

from ._spec import ActSpec, OpSpec, Sample

__all__ = ["relu_ref", "relu_backward_ref", "leaky_relu_ref", "leaky_relu_backward_ref",
           "elu_ref", "elu_backward_ref", "sigmoid_ref", "sigmoid_backward_ref", "tanh_ref",
           "tanh_backward_ref", "softplus_ref", "softplus_backward_ref", "gelu_ref",
           "gelu_backward_ref", "silu_ref", "silu_backward_ref", "mish_ref", "mish_backward_ref",
           "hardswish_ref", "hardswish_backward_ref", "hardsigmoid_ref",
           "hardsigmoid_backward_ref", "hardtanh_ref", "hardtanh_backward_ref", "relu6_ref",
           "relu6_backward_ref", "selu_ref", "selu_backward_ref", "celu_ref", "celu_backward_ref",
           "softmax_ref",
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
        return np.where(x >= 0, x, np.expm1(np.minimum(x, 0.0)) * alpha)


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


_GELU_BETA, _GELU_KAPPA = math.sqrt(2.0 / math.pi), 0.044715


def gelu_ref(x, approximate="none"):
    (x,) = _f64(x)
    with np.errstate(invalid="ignore", over="ignore"):
        if approximate == "tanh":
            return 0.5 * x * (1.0 + np.tanh(_GELU_BETA * (x + _GELU_KAPPA * x ** 3)))
        return x * _normal_cdf(x)  # -inf * 0 is NaN, as PyTorch


def gelu_backward_ref(g, x, approximate="none"):
    g, x = _f64(g, x)
    with np.errstate(invalid="ignore", over="ignore"):
        if approximate == "tanh":
            t = np.tanh(_GELU_BETA * (x + _GELU_KAPPA * x ** 3))
            return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _GELU_BETA
                        * (1.0 + 3.0 * _GELU_KAPPA * x * x))
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return g * (_normal_cdf(x) + x * pdf)  # +-inf * 0 is NaN, as PyTorch


def silu_ref(x):
    (x,) = _f64(x)
    with np.errstate(invalid="ignore"):
        return x * sigmoid_ref(x)  # silu(-inf) = -inf * 0: NaN, as PyTorch


def silu_backward_ref(g, x):
    g, x = _f64(g, x)
    s = sigmoid_ref(x)
    with np.errstate(invalid="ignore"):
        return g * s * (1.0 + x * (1.0 - s))  # NaN at +-inf, as PyTorch


def _softplus1(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def mish_ref(x):
    (x,) = _f64(x)
    with np.errstate(invalid="ignore"):
        return x * np.tanh(_softplus1(x))


def mish_backward_ref(g, x):
    g, x = _f64(g, x)
    t = np.tanh(_softplus1(x))
    with np.errstate(invalid="ignore"):
        return g * (t + x * sigmoid_ref(x) * (1.0 - t * t))


def hardswish_ref(x):
    (x,) = _f64(x)
    with np.errstate(invalid="ignore"):
        return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0  # -inf * 0: NaN, as PyTorch


def hardswish_backward_ref(g, x):
    # PyTorch's kinks: 0 at -3, g at 3
    g, x = _f64(g, x)
    return np.where(x <= -3.0, 0.0, np.where(x >= 3.0, g, g * (x / 3.0 + 0.5)))


def hardsigmoid_ref(x):
    (x,) = _f64(x)
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


# PyTorch's hardsigmoid gradient multiplies by the float literal 1.0f / 6.0f in both dtypes.
_SIXTH_F32 = float(np.float32(1.0) / np.float32(6.0))


def hardsigmoid_backward_ref(g, x):
    g, x = _f64(g, x)
    return np.where((x > -3.0) & (x < 3.0), g * _SIXTH_F32, 0.0)


def hardtanh_ref(x, min_val=-1.0, max_val=1.0):
    (x,) = _f64(x)
    return np.where(x < min_val, min_val, np.where(x > max_val, max_val, x))  # keeps NaN


def hardtanh_backward_ref(g, x, min_val=-1.0, max_val=1.0):
    g, x = _f64(g, x)
    return np.where((x > min_val) & (x < max_val), g, 0.0)  # 0 at the ends and for NaN


def relu6_ref(x):
    return hardtanh_ref(x, 0.0, 6.0)


def relu6_backward_ref(g, x):
    return hardtanh_backward_ref(g, x, 0.0, 6.0)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def selu_ref(x):
    (x,) = _f64(x)
    with np.errstate(invalid="ignore"):
        return _SELU_SCALE * np.where(x >= 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))


def selu_backward_ref(g, x):
    g, x = _f64(g, x)
    with np.errstate(invalid="ignore"):
        return np.where(x > 0, g * _SELU_SCALE,
                        g * _SELU_ALPHA * _SELU_SCALE * np.exp(np.minimum(x, 0.0)))


def celu_ref(x, alpha=1.0):
    (x,) = _f64(x)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0.0) / alpha))


def celu_backward_ref(g, x, alpha=1.0):
    # PyTorch's celu gradient scales the input by 1 / float(alpha) (derivatives.yaml: 1.0 /
    # alpha.toFloat()), float64 included.
    g, x = _f64(g, x)
    inv = 1.0 / float(np.float32(alpha))
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(x > 0, g, g * inv * alpha * np.exp(np.minimum(x, 0.0) * inv))


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


# ---------------------------------------------------------------------------
# The specs: one ActSpec per elementwise activation drives test_act.py, test_cuda_act.py,
# test_act_torch.py, test_properties_act.py and the benchmark.
# ---------------------------------------------------------------------------

_X = {"x": (2, 3, 5, 7)}


def _real(v):
    return v


def _at_zero(kwargs):
    return (0.0,)


def _samples(*cases):
    return tuple(Sample(id, _X, kw) for id, kw in cases)


ACTS = (
    ActSpec("relu", reference=relu_ref, reference_backward=relu_backward_ref,
            samples=_samples(("relu", {})), torch_samples=_samples(("relu", {})),
            kinks=_at_zero, torch="torch.nn.functional.relu", module="ReLU", inplace=True),
    ActSpec("leaky_relu", reference=leaky_relu_ref, reference_backward=leaky_relu_backward_ref,
            samples=_samples(("leaky_relu", {"negative_slope": 0.2}), ("leaky_relu_default", {})),
            torch_samples=_samples(("leaky_relu", {}), ("leaky_relu_0.2", {"negative_slope": 0.2}),
                                   ("leaky_relu_neg", {"negative_slope": -0.5})),
            params={"negative_slope": _real},
            kernel_kwargs={"negative_slope": 0.1}, kinks=_at_zero,
            torch="torch.nn.functional.leaky_relu", module="LeakyReLU", inplace=True),
    ActSpec("elu", reference=elu_ref, reference_backward=elu_backward_ref,
            samples=_samples(("elu", {"alpha": 1.3}), ("elu_default", {})),
            torch_samples=_samples(("elu", {}), ("elu_2", {"alpha": 2.0}),
                                   ("elu_0.3", {"alpha": 0.3})),
            params={"alpha": _real}, kernel_kwargs={"alpha": 0.7},
            kinks=_at_zero, torch="torch.nn.functional.elu", module="ELU", inplace=True),
    ActSpec("sigmoid", reference=sigmoid_ref, reference_backward=sigmoid_backward_ref,
            samples=_samples(("sigmoid", {})), torch_samples=_samples(("sigmoid", {})),
            torch="torch.sigmoid", module="Sigmoid", output_backward=True),
    ActSpec("tanh", reference=tanh_ref, reference_backward=tanh_backward_ref,
            samples=_samples(("tanh", {})), torch_samples=_samples(("tanh", {})),
            torch="torch.tanh", module="Tanh", output_backward=True),
    ActSpec("softplus", reference=softplus_ref, reference_backward=softplus_backward_ref,
            # threshold 3 / beta 1.5: |x| up to ~9 crosses the identity switch at x = 2
            samples=_samples(("softplus", {}),
                             ("softplus_beta_threshold", {"beta": 1.5, "threshold": 3.0})),
            torch_samples=_samples(("softplus", {}),
                                   ("softplus_2_5", {"beta": 2.0, "threshold": 5.0}),
                                   ("softplus_0.5_1", {"beta": 0.5, "threshold": 1.0}),
                                   ("softplus_neg", {"beta": -1.5, "threshold": 2.0})),
            params={"beta": lambda v: v or 1.0, "threshold": lambda v: 10 * v},
            kernel_kwargs={"beta": 2.0, "threshold": 5.0},
            kinks=lambda kw: (kw.get("threshold", 20.0) / kw.get("beta", 1.0),),
            torch="torch.nn.functional.softplus", module="Softplus"),
    ActSpec("gelu", reference=gelu_ref, reference_backward=gelu_backward_ref,
            samples=_samples(("gelu", {}), ("gelu_tanh", {"approximate": "tanh"})),
            torch_samples=_samples(("gelu", {}), ("gelu_none", {"approximate": "none"}),
                                   ("gelu_tanh", {"approximate": "tanh"})),
            torch="torch.nn.functional.gelu", module="GELU"),
    ActSpec("silu", reference=silu_ref, reference_backward=silu_backward_ref,
            samples=_samples(("silu", {})), torch_samples=_samples(("silu", {})),
            torch="torch.nn.functional.silu", module="SiLU", inplace=True),
    ActSpec("mish", reference=mish_ref, reference_backward=mish_backward_ref,
            samples=_samples(("mish", {})), torch_samples=_samples(("mish", {})),
            torch="torch.nn.functional.mish", module="Mish", inplace=True),
    ActSpec("hardswish", reference=hardswish_ref, reference_backward=hardswish_backward_ref,
            samples=_samples(("hardswish", {})), torch_samples=_samples(("hardswish", {})),
            kinks=lambda kw: (-3.0, 3.0), torch="torch.nn.functional.hardswish",
            module="Hardswish", inplace=True),
    ActSpec("hardsigmoid", reference=hardsigmoid_ref,
            reference_backward=hardsigmoid_backward_ref,
            samples=_samples(("hardsigmoid", {})), torch_samples=_samples(("hardsigmoid", {})),
            kinks=lambda kw: (-3.0, 3.0), torch="torch.nn.functional.hardsigmoid",
            module="Hardsigmoid", inplace=True),
    ActSpec("hardtanh", reference=hardtanh_ref, reference_backward=hardtanh_backward_ref,
            samples=_samples(("hardtanh", {"min_val": -0.5, "max_val": 2.0}),
                             ("hardtanh_default", {})),
            torch_samples=_samples(("hardtanh", {}),
                                   ("hardtanh_-2_0.5", {"min_val": -2.0, "max_val": 0.5})),
            params={"min_val": lambda v: -abs(v) - 0.1, "max_val": lambda v: abs(v) + 0.1},
            kernel_kwargs={"min_val": -0.5, "max_val": 2.0},
            kinks=lambda kw: (kw.get("min_val", -1.0), kw.get("max_val", 1.0)),
            torch="torch.nn.functional.hardtanh", module="Hardtanh", inplace=True),
    ActSpec("relu6", reference=relu6_ref, reference_backward=relu6_backward_ref,
            samples=_samples(("relu6", {})), torch_samples=_samples(("relu6", {})),
            kinks=lambda kw: (0.0, 6.0), torch="torch.nn.functional.relu6", module="ReLU6",
            inplace=True),
    ActSpec("selu", reference=selu_ref, reference_backward=selu_backward_ref,
            samples=_samples(("selu", {})), torch_samples=_samples(("selu", {})),
            kinks=_at_zero, torch="torch.nn.functional.selu", module="SELU", inplace=True),
    ActSpec("celu", reference=celu_ref, reference_backward=celu_backward_ref,
            samples=_samples(("celu", {"alpha": 0.7}), ("celu_default", {})),
            torch_samples=_samples(("celu", {}), ("celu_0.7", {"alpha": 0.7}),
                                   ("celu_2.5", {"alpha": 2.5})),
            params={"alpha": lambda v: abs(v) + 0.1}, kernel_kwargs={"alpha": 0.7},
            kinks=_at_zero, torch="torch.nn.functional.celu", module="CELU", inplace=True),
)
ACT_BY_NAME = {s.name: s for s in ACTS}

_SOFTMAX_SAMPLES = (Sample("dim1", {"x": (2, 5, 3)}, {"dim": 1}),
                    Sample("dim_last", {"x": (3, 7)}, {"dim": -1}),
                    Sample("batch1_dim0", {"x": (1, 4, 3)}, {"dim": 0}))

SPECS = ACTS + (
    OpSpec("softmax", "act", softmax_ref, softmax_backward_ref, _SOFTMAX_SAMPLES,
           torch="torch.softmax", module="Softmax", backward_from_output=True),
    OpSpec("log_softmax", "act", log_softmax_ref, log_softmax_backward_ref, _SOFTMAX_SAMPLES,
           torch="torch.log_softmax", module="LogSoftmax", backward_from_output=True),
)
