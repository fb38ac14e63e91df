"""Activations and softmax: relu, leaky_relu, elu, sigmoid, tanh, softplus, gelu, silu, mish,
hardswish, hardsigmoid, hardtanh, relu6, selu, celu, softmax and log_softmax, with
torch.nn.functional's signatures, and their backwards.

Elementwise ops take arrays of any shape (0-d included); non-contiguous inputs are copied.
inplace=True writes into the input (which must be writable) and returns it; a strided one (a
slice, a transpose) is computed in a contiguous copy and written back, as PyTorch writes
through a view. Backward functions return the input gradient as a new array.

Each call crosses into the extension once: the result is allocated here, with the input's array
module (NumPy or CuPy), and the extension checks every argument, writes the result and returns it.
"""

import numpy as np

from .._arrays import (c_contiguous, empty, is_array, module_of, shared_view, torch_spelled,
                       writable)
from .._loader import _C
from ._args import as_float, as_int, contiguous

__all__ = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "gelu", "silu", "mish",
           "hardswish", "hardsigmoid", "hardtanh", "relu6", "selu", "celu", "softmax",
           "log_softmax", "relu_backward", "leaky_relu_backward", "elu_backward",
           "sigmoid_backward", "tanh_backward", "softplus_backward", "gelu_backward",
           "silu_backward", "mish_backward", "hardswish_backward", "hardsigmoid_backward",
           "hardtanh_backward", "relu6_backward", "selu_backward", "celu_backward",
           "softmax_backward", "log_softmax_backward"]


def _like(x):
    """A new array for a result shaped like x; None lets the extension reject a non-array x."""
    return empty(x, x.shape) if is_array(x) else None


def _forward(op, kernel, input, inplace, *scalars):
    """kernel(out, input, *scalars) into a new array, or into the input itself when inplace."""
    if not isinstance(inplace, (bool, np.bool_)):
        raise TypeError(f"{op}: inplace must be a bool, got {inplace!r}")
    if not inplace:
        input = contiguous(input)
        return kernel(_like(input), input, *scalars)
    target = shared_view(input)  # a DLPack tensor is written through its shared memory
    flags = getattr(target, "flags", None)
    if flags is None or flags.c_contiguous:
        return kernel(target, target, *scalars)  # the extension checks the rest
    if not writable(target):
        raise ValueError(f"{op}: input must be writable for inplace=True, got a read-only view")
    work = c_contiguous(target)
    kernel(work, work, *scalars)
    module_of(target).copyto(target, work)
    return target


def relu(input, inplace=False):
    """max(input, 0) elementwise, as torch.nn.functional.relu; relu(NaN) is NaN."""
    return _forward("relu", _C.relu_forward, input, inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """input where input > 0, else input * negative_slope (torch.nn.functional.leaky_relu)."""
    negative_slope = as_float(negative_slope, "negative_slope", "leaky_relu")
    return _forward("leaky_relu", _C.leaky_relu_forward, input, inplace, negative_slope)


def elu(input, alpha=1.0, inplace=False):
    """input where input > 0, else alpha * expm1(input) (torch.nn.functional.elu)."""
    alpha = as_float(alpha, "alpha", "elu")
    return _forward("elu", _C.elu_forward, input, inplace, alpha)


def sigmoid(input):
    """1 / (1 + exp(-input)), as torch.sigmoid."""
    input = contiguous(input)
    return _C.sigmoid_forward(_like(input), input)


def tanh(input):
    """tanh(input), as torch.tanh."""
    input = contiguous(input)
    return _C.tanh_forward(_like(input), input)


def softplus(input, beta=1.0, threshold=20.0):
    """log1p(exp(beta * input)) / beta, and input itself where beta * input > threshold
    (torch.nn.functional.softplus). beta must be nonzero."""
    beta = as_float(beta, "beta", "softplus")
    threshold = as_float(threshold, "threshold", "softplus")
    input = contiguous(input)
    return _C.softplus_forward(_like(input), input, beta, threshold)


def _gelu_kernel(approximate, op, direction):
    """The kernel of gelu's form: 'none' (erf) or 'tanh'."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"{op}: approximate must be 'none' or 'tanh', got {approximate!r}")
    return getattr(_C, ("gelu_" if approximate == "none" else "gelu_tanh_") + direction)


def gelu(input, approximate="none"):
    """input * cdf(input), cdf the standard normal's: (1 + erf(input / sqrt(2))) / 2, as
    torch.nn.functional.gelu; approximate='tanh' is its tanh form,
    input / 2 * (1 + tanh(sqrt(2 / pi) * (input + 0.044715 * input**3)))."""
    kernel = _gelu_kernel(approximate, "gelu", "forward")
    input = contiguous(input)
    return kernel(_like(input), input)


def _plain(name, doc):
    """The functional form of an activation without scalar arguments: name(input, inplace)."""
    kernel = getattr(_C, name + "_forward")

    def op(input, inplace=False):
        return _forward(name, kernel, input, inplace)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


silu = _plain("silu", "input * sigmoid(input), as torch.nn.functional.silu (input / (1 + "
                      "exp(-input))).")
mish = _plain("mish", "input * tanh(log1p(exp(input))), as torch.nn.functional.mish.")
hardswish = _plain("hardswish", "input * relu6(input + 3) / 6, as "
                                "torch.nn.functional.hardswish.")
hardsigmoid = _plain("hardsigmoid", "relu6(input + 3) / 6, as torch.nn.functional.hardsigmoid.")
relu6 = _plain("relu6", "min(max(input, 0), 6): hardtanh(input, 0, 6), as "
                        "torch.nn.functional.relu6.")
selu = _plain("selu", "scale * elu(input, alpha) with SELU's alpha = 1.6732632423543772 and "
                      "scale = 1.0507009873554805, as torch.nn.functional.selu.")


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """input clamped to [min_val, max_val] (NaN kept), as torch.nn.functional.hardtanh;
    min_val must not be greater than max_val."""
    min_val = as_float(min_val, "min_val", "hardtanh")
    max_val = as_float(max_val, "max_val", "hardtanh")
    return _forward("hardtanh", _C.hardtanh_forward, input, inplace, min_val, max_val)


def celu(input, alpha=1.0, inplace=False):
    """input where input > 0, else alpha * expm1(input / alpha), as torch.nn.functional.celu;
    alpha must be nonzero."""
    alpha = as_float(alpha, "alpha", "celu")
    return _forward("celu", _C.celu_forward, input, inplace, alpha)


def _dim(dim, op):
    if dim is None:
        raise TypeError(f"{op}: dim is required (PyTorch's implicit choice of dim is "
                        f"deprecated); pass dim=")
    return as_int(dim, "dim", op)


def _cast(input, dtype, op):
    """input cast to dtype (None: unchanged) before the op, like torch's dtype= argument."""
    input = shared_view(input)
    if dtype is not None:
        try:
            dt = np.dtype(torch_spelled(dtype))
        except TypeError:
            raise TypeError(f"{op}: dtype must be float32 or float64, got {dtype!r}") from None
        if dt not in (np.float32, np.float64):
            raise TypeError(f"{op}: dtype must be float32 or float64, got {dt}")
        if is_array(input):
            input = input.astype(dt, copy=False)
    return contiguous(input)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(input) / sum(exp(input)) along dim, as torch.nn.functional.softmax.

    dim is required (any dim, negative counts from the end; a 0-d input takes dim 0 or -1).
    dtype (a NumPy float dtype, or torch.float32/float64) casts the input first. Stable for any logits: the row maximum
    is subtracted; -inf entries give 0 and a row of -inf gives NaN, as PyTorch. softmax_backward
    takes this function's output. _stacklevel is accepted for signature compatibility.
    """
    input = _cast(input, dtype, "softmax")
    dim = _dim(dim, "softmax")
    return _C.softmax_forward(_like(input), input, dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """input - log(sum(exp(input))) along dim, as torch.nn.functional.log_softmax.

    Arguments and edge cases as softmax; log_softmax_backward takes this function's output.
    """
    input = _cast(input, dtype, "log_softmax")
    dim = _dim(dim, "log_softmax")
    return _C.log_softmax_forward(_like(input), input, dim)


def relu_backward(grad_output, input):
    """Gradient of relu: grad_output where input > 0, else 0 (relu'(0) = 0; a NaN input passes
    the gradient, as PyTorch's threshold_backward)."""
    return _from_input(_C.relu_backward, grad_output, input)


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    """Gradient of leaky_relu: grad_output where input > 0, else grad_output * negative_slope
    (the slope at 0 is negative_slope, as PyTorch)."""
    negative_slope = as_float(negative_slope, "negative_slope", "leaky_relu_backward")
    return _from_input(_C.leaky_relu_backward, grad_output, input, negative_slope)


def elu_backward(grad_output, input, alpha=1.0):
    """Gradient of elu from its input: grad_output where input > 0, else
    grad_output * alpha * exp(input) (elu'(0) = alpha, as torch's elu_backward with
    is_result=False)."""
    alpha = as_float(alpha, "alpha", "elu_backward")
    return _from_input(_C.elu_backward, grad_output, input, alpha)


def _from_input(kernel, grad_output, input, *scalars):
    grad_output, input = contiguous(grad_output), contiguous(input)
    return kernel(_like(input), grad_output, input, *scalars)


def _from_output(op, grad_output, input, output):
    grad_output, input, output = contiguous(grad_output), contiguous(input), contiguous(output)
    return op(_like(output if output is not None else input), grad_output, input, output)


def sigmoid_backward(grad_output, input=None, *, output=None):
    """Gradient of sigmoid: grad_output * (1 - y) * y.

    y is recomputed from input; pass output=sigmoid(input) instead (input may then be None) to
    skip the recomputation, which is what torch's sigmoid_backward and the nn layer do.
    """
    return _from_output(_C.sigmoid_backward, grad_output, input, output)


def tanh_backward(grad_output, input=None, *, output=None):
    """Gradient of tanh: grad_output * (1 - y * y).

    y is recomputed from input; pass output=tanh(input) instead (input may then be None) to
    skip the recomputation, which is what torch's tanh_backward and the nn layer do.
    """
    return _from_output(_C.tanh_backward, grad_output, input, output)


def softplus_backward(grad_output, input, beta=1.0, threshold=20.0):
    """Gradient of softplus: grad_output * z / (z + 1) with z = exp(beta * input), and
    grad_output itself where beta * input > threshold."""
    op = "softplus_backward"
    beta, threshold = as_float(beta, "beta", op), as_float(threshold, "threshold", op)
    return _from_input(_C.softplus_backward, grad_output, input, beta, threshold)


def gelu_backward(grad_output, input, approximate="none"):
    """Gradient of gelu: grad_output * (cdf(input) + input * exp(-input**2 / 2) / sqrt(2 pi)),
    or of its tanh form with approximate='tanh' (PyTorch's formula)."""
    return _from_input(_gelu_kernel(approximate, "gelu_backward", "backward"), grad_output, input)


def silu_backward(grad_output, input):
    """Gradient of silu: grad_output * s * (1 + input * (1 - s)), s = sigmoid(input)."""
    return _from_input(_C.silu_backward, grad_output, input)


def mish_backward(grad_output, input):
    """Gradient of mish: grad_output * (t + input * sigmoid(input) * (1 - t * t)), t =
    tanh(log1p(exp(input)))."""
    return _from_input(_C.mish_backward, grad_output, input)


def hardswish_backward(grad_output, input):
    """Gradient of hardswish: 0 where input <= -3, grad_output where input >= 3, else
    grad_output * (input / 3 + 1 / 2) (PyTorch's conventions at the kinks; NaN for NaN)."""
    return _from_input(_C.hardswish_backward, grad_output, input)


def hardsigmoid_backward(grad_output, input):
    """Gradient of hardsigmoid: grad_output / 6 strictly inside (-3, 3), else 0."""
    return _from_input(_C.hardsigmoid_backward, grad_output, input)


def hardtanh_backward(grad_output, input, min_val=-1.0, max_val=1.0):
    """Gradient of hardtanh: grad_output strictly inside (min_val, max_val), else 0 (NaN
    inputs included)."""
    op = "hardtanh_backward"
    min_val, max_val = as_float(min_val, "min_val", op), as_float(max_val, "max_val", op)
    return _from_input(_C.hardtanh_backward, grad_output, input, min_val, max_val)


def relu6_backward(grad_output, input):
    """Gradient of relu6: grad_output strictly inside (0, 6), else 0."""
    return _from_input(_C.relu6_backward, grad_output, input)


def selu_backward(grad_output, input):
    """Gradient of selu from its input: grad_output * scale where input > 0, else
    grad_output * alpha * scale * exp(input)."""
    return _from_input(_C.selu_backward, grad_output, input)


def celu_backward(grad_output, input, alpha=1.0):
    """Gradient of celu from its input: grad_output where input > 0, else
    grad_output * exp(input / alpha)."""
    alpha = as_float(alpha, "alpha", "celu_backward")
    return _from_input(_C.celu_backward, grad_output, input, alpha)


def softmax_backward(grad_output, output, dim):
    """Gradient of softmax from its OUTPUT y (as torch's _softmax_backward_data):
    y * (grad_output - sum(grad_output * y, dim)). The result has output's dtype."""
    dim = _dim(dim, "softmax_backward")
    grad_output, output = contiguous(grad_output), contiguous(output)
    return _C.softmax_backward(_like(output), grad_output, output, dim)


def log_softmax_backward(grad_output, output, dim):
    """Gradient of log_softmax from its OUTPUT y (as torch's _log_softmax_backward_data):
    grad_output - exp(y) * sum(grad_output, dim). The result has output's dtype."""
    dim = _dim(dim, "log_softmax_backward")
    grad_output, output = contiguous(grad_output), contiguous(output)
    return _C.log_softmax_backward(_like(output), grad_output, output, dim)
