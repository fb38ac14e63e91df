"""Weight initialisation, in place, with torch.nn.init's names, formulas and defaults.

Each function takes a Parameter or an ndarray and a ``generator`` (np.random.Generator;
None means fastconv's global one, reseeded by fastconv.manual_seed).
"""

import math
import warnings

import numpy as np

from .._random import resolve
from .parameter import Parameter

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_",
           "ones_", "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "orthogonal_", "default_bias"]


def _array(tensor):
    a = tensor.data if isinstance(tensor, Parameter) else tensor
    if not isinstance(a, np.ndarray):
        raise TypeError(f"init: expected a Parameter or numpy.ndarray, got {type(tensor).__name__}")
    return a


def _fill(tensor, values):
    a = _array(tensor)
    a[...] = values
    return tensor


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is not None and (isinstance(param, bool) or not isinstance(param, (int, float))):
            raise ValueError(f"calculate_gain: negative_slope {param!r} not a valid number")
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fans(a):
    if a.ndim < 2:
        raise ValueError(f"init: fan in and fan out need at least 2 dimensions, got shape {a.shape}")
    receptive = int(np.prod(a.shape[2:])) if a.ndim > 2 else 1
    return a.shape[1] * receptive, a.shape[0] * receptive


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    a_ = _array(tensor)
    return _fill(tensor, resolve(generator, "uniform_").uniform(a, b, a_.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    a_ = _array(tensor)
    return _fill(tensor, resolve(generator, "normal_").normal(mean, std, a_.shape))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """N(mean, std^2) restricted to [a, b], as torch.nn.init.trunc_normal_: values outside are
    drawn again; where [a, b] holds less than 30 % of the mass, draws are uniform on [a, b]
    kept with the normal density's ratio to its peak (torch's two samplers)."""
    x = _array(tensor)
    if not (std > 0 and a <= b):
        raise ValueError(f"trunc_normal_: need std > 0 and a <= b, got std={std}, a={a}, b={b}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The "
                      "distribution of values may be incorrect.", stacklevel=2)
    rng = resolve(generator, "trunc_normal_")

    def cdf(v):
        return (1.0 + math.erf(v / math.sqrt(2.0))) / 2.0

    if cdf((b - mean) / std) - cdf((a - mean) / std) > 0.3:
        values = rng.normal(mean, std, x.shape)
        outside = (values < a) | (values > b)
        while outside.any():
            values[outside] = rng.normal(mean, std, int(outside.sum()))
            outside = (values < a) | (values > b)
    else:
        peak = max(a, min(mean, b))
        values = np.empty(x.shape)
        pending = np.ones(x.shape, bool)
        while pending.any():
            draw = rng.uniform(a, b, int(pending.sum()))
            density = -0.5 * (((draw - mean) / std) ** 2 - ((peak - mean) / std) ** 2)
            accept = np.log(rng.uniform(size=draw.size)) <= density
            idx = np.flatnonzero(pending)[accept]
            values.flat[idx] = draw[accept]
            pending.flat[idx] = False
    return _fill(tensor, values)


def constant_(tensor, val):
    return _fill(tensor, val)


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


def eye_(tensor):
    """The identity matrix in a 2-D array (as many inputs kept as the shape allows)."""
    x = _array(tensor)
    if x.ndim != 2:
        raise ValueError(f"eye_: only arrays with 2 dimensions are supported, got shape {x.shape}")
    return _fill(tensor, np.eye(*x.shape))


def dirac_(tensor, groups=1):
    """The Dirac delta in a 3-, 4- or 5-D convolution weight: each group's first channels
    passed through at the kernel's centre, as torch.nn.init.dirac_."""
    x = _array(tensor)
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only arrays with 3, 4 or 5 dimensions are supported, got "
                         f"shape {x.shape}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"dirac_: groups must be a positive int, got {groups!r}")
    if x.shape[0] % groups:
        raise ValueError(f"dirac_: dim 0 ({x.shape[0]}) must be divisible by groups ({groups})")
    per_group = x.shape[0] // groups
    centre = tuple(n // 2 for n in x.shape[2:])
    x[...] = 0
    for g in range(groups):
        for d in range(min(per_group, x.shape[1])):
            x[(g * per_group + d, d) + centre] = 1
    return tensor


def orthogonal_(tensor, gain=1.0, generator=None):
    """A (semi-)orthogonal matrix, the trailing dimensions flattened, times gain: the Q of a
    Gaussian matrix's QR with R's diagonal made positive (Saxe et al. 2013), as torch's."""
    x = _array(tensor)
    if x.ndim < 2:
        raise ValueError(f"orthogonal_: only arrays with 2 or more dimensions are supported, "
                         f"got shape {x.shape}")
    if x.size == 0:
        return tensor
    rows, cols = x.shape[0], x.size // x.shape[0]
    flat = resolve(generator, "orthogonal_").normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, (gain * q).reshape(x.shape))


def _empty(tensor):
    """A zero-element array has nothing to initialise (and fans of 0): a no-op, as in torch,
    so that layers such as Linear(0, n) construct."""
    return _array(tensor).size == 0


def xavier_uniform_(tensor, gain=1.0, generator=None):
    if _empty(tensor):
        return tensor
    fan_in, fan_out = _fans(_array(tensor))
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    if _empty(tensor):
        return tensor
    fan_in, fan_out = _fans(_array(tensor))
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(_array(tensor))
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    if _empty(tensor):
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    if _empty(tensor):
        return tensor
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


def default_bias(size, fan_in, dtype=np.float32, generator=None):
    """A new bias Parameter initialised as torch.nn's layers do: U(-1/sqrt(fan_in),
    1/sqrt(fan_in)), all zeros when fan_in is 0."""
    bias = Parameter(np.empty(size, dtype=dtype))
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform_(bias, -bound, bound, generator)
