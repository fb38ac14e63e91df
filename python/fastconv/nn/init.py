"""Weight initialisation, in place, with torch.nn.init's names, formulas and defaults.

Each function takes a Parameter or an ndarray and a ``generator`` (np.random.Generator;
None means fastconv's global one, reseeded by fastconv.manual_seed).
"""

import math

import numpy as np

from .._random import resolve
from .parameter import Parameter

__all__ = ["calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
           "default_bias"]


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


def constant_(tensor, val):
    return _fill(tensor, val)


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


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
