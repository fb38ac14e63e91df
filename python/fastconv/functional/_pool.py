"""Pooling: max, min, average, power-average (lp), adaptive and mixed pooling, with backwards.

Inputs are (N, C, H, W) or (C, H, W) float32/float64 arrays; outputs keep the input's rank and
dtype. Max/min pooling follows PyTorch's CPU kernel: padding never wins, a NaN wins (among
NaNs the last one), otherwise the first extreme in row-major scan order; indices are int64 flat
positions h*W + w within each input plane, as torch's return_indices gives them.
"""

import math

from .._arrays import shared_view, empty, is_array, module_of
from .._loader import _C
from .._random import resolve
from ._args import as_bool, as_float, as_int, as_pair, contiguous

__all__ = [
    "max_pool2d", "max_pool2d_backward", "min_pool2d", "min_pool2d_backward",
    "avg_pool2d", "avg_pool2d_backward", "lp_pool2d", "lp_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
    "mixed_pool2d", "mixed_pool2d_backward",
]


def _window(op, kernel_size, stride, padding, dilation=1, ceil_mode=False):
    """The window arguments of a pooling call, as the extension takes them."""
    kernel = as_pair(kernel_size, "kernel_size", op, single=True)
    # torch: stride=None (or an empty list) means the kernel size.
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else as_pair(stride, "stride", op, single=True)
    return (kernel, stride, as_pair(padding, "padding", op, single=True),
            as_pair(dilation, "dilation", op, single=True), as_bool(ceil_mode, "ceil_mode", op))


def _output_size(value, op):
    """output_size -> (P, Q), None entries kept (the extension reads them as the input's)."""
    entries = value if isinstance(value, (tuple, list)) else (value, value)
    if len(entries) != 2:
        raise ValueError(f"{op}: output_size must be an int, None or a pair of them, got {value!r}")
    return tuple(None if v is None else as_int(v, "output_size", op) for v in entries)


def _abs(input):
    """|input| for lp_pool2d's norm_type=inf; anything else goes to the extension as is, which
    refuses it by name."""
    input = shared_view(input)
    # only a float array: abs would turn a complex one into its float magnitudes
    kind = getattr(getattr(input, "dtype", None), "kind", None)
    return abs(input) if is_array(input) and kind == "f" else input


def _extreme(forward, op, input, window, return_indices):
    """max/min pooling through `forward`; window: (kernel_size, stride, padding, dilation,
    ceil_mode) as the caller got them."""
    return_indices = as_bool(return_indices, "return_indices", op)
    # Without indices the kernel computes and writes none (inference: half the bytes written).
    out, indices = forward(empty, return_indices, contiguous(input), *_window(op, *window))
    return (out, indices) if return_indices else out


def _extreme_backward(backward, op, grad_output, input, window, indices):
    grad_output, input, indices = contiguous(grad_output), contiguous(input), contiguous(indices)
    return backward(empty, grad_output, indices, input, *_window(op, *window))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling, as torch.nn.functional.max_pool2d.

    Returns out (N, C, P, Q), or (out, indices) with return_indices=True; pass those indices
    to max_pool2d_backward to skip recomputing the argmax.
    """
    return _extreme(_C.max_pool2d_forward, "max_pool2d", input,
                    (kernel_size, stride, padding, dilation, ceil_mode), return_indices)


def max_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, indices=None):
    """Gradient of max_pool2d with respect to its input: grad_output added at each window's
    argmax (overlapping windows add). Uses `indices` from max_pool2d(..., return_indices=True)
    when given, else recomputes the argmax from `input`."""
    return _extreme_backward(_C.max_pool2d_backward, "max_pool2d_backward", grad_output, input,
                             (kernel_size, stride, padding, dilation, ceil_mode), indices)


def min_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Min pooling: -max_pool2d(-input) (padding never wins, a NaN wins, the first minimum in
    scan order wins ties). Arguments and return value as max_pool2d; indices are the argmin."""
    return _extreme(_C.min_pool2d_forward, "min_pool2d", input,
                    (kernel_size, stride, padding, dilation, ceil_mode), return_indices)


def min_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, indices=None):
    """Gradient of min_pool2d, as max_pool2d_backward with the argmin."""
    return _extreme_backward(_C.min_pool2d_backward, "min_pool2d_backward", grad_output, input,
                             (kernel_size, stride, padding, dilation, ceil_mode), indices)


def _divisor(divisor_override, op):
    return None if divisor_override is None else as_int(divisor_override, "divisor_override", op)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Average pooling, as torch.nn.functional.avg_pool2d (same divisor rules: with
    count_include_pad, a ceil-mode window that runs past the padding counts only its part
    inside the padded input; divisor_override, when given, replaces the divisor)."""
    op = "avg_pool2d"
    input = contiguous(input)
    return _C.avg_pool2d_forward(empty, input, *_window(op, kernel_size, stride, padding, 1,
                                                        ceil_mode),
                                 as_bool(count_include_pad, "count_include_pad", op),
                                 _divisor(divisor_override, op))


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """Gradient of avg_pool2d with respect to its input (input gives only the shape)."""
    op = "avg_pool2d_backward"
    grad_output, input = contiguous(grad_output), contiguous(input)
    return _C.avg_pool2d_backward(empty, grad_output, input,
                                  *_window(op, kernel_size, stride, padding, 1, ceil_mode),
                                  as_bool(count_include_pad, "count_include_pad", op),
                                  _divisor(divisor_override, op))


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling, as torch.nn.functional.lp_pool2d.

    out = (sign(a) * relu(|a|) * R*S) ** (1/norm_type) with a = avg_pool2d(input ** norm_type):
    the p-norm of each window; like torch, a negative window sum gives NaN unless 1/norm_type
    is an integer. norm_type=inf is max_pool2d(|input|), as torch; norm_type must be > 0
    (torch's -inf, the min of |input|, is rejected).
    """
    op = "lp_pool2d"
    input = contiguous(input)
    p = as_float(norm_type, "norm_type", op)
    window = _window(op, kernel_size, stride, 0, 1, ceil_mode)
    if p == math.inf:
        return _C.lp_pool2d_inf_forward(empty, False, _abs(input), *window)[0]
    return _C.lp_pool2d_forward(empty, input, *window, p)


def lp_pool2d_backward(grad_output, input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Gradient of lp_pool2d with respect to its input; zero through windows whose power sum
    is zero (torch's documented rule)."""
    op = "lp_pool2d_backward"
    grad_output, input = contiguous(grad_output), contiguous(input)
    p = as_float(norm_type, "norm_type", op)
    window = _window(op, kernel_size, stride, 0, 1, ceil_mode)
    if p == math.inf:
        grad_input = _C.lp_pool2d_inf_backward(empty, grad_output, None, _abs(input), *window)
        return grad_input * module_of(input).sign(input)
    return _C.lp_pool2d_backward(empty, grad_output, input, *window, p)


def adaptive_avg_pool2d(input, output_size):
    """Adaptive average pooling, as torch.nn.functional.adaptive_avg_pool2d: output row i
    averages input rows [floor(i*H/P), ceil((i+1)*H/P)); output_size is an int or a pair, a None
    entry keeps the input's size; (1, 1) is global average pooling."""
    op = "adaptive_avg_pool2d"
    input = contiguous(input)
    return _C.adaptive_avg_pool2d_forward(empty, input, *_output_size(output_size, op))


def adaptive_avg_pool2d_backward(grad_output, input, output_size):
    """Gradient of adaptive_avg_pool2d with respect to its input."""
    op = "adaptive_avg_pool2d_backward"
    grad_output, input = contiguous(grad_output), contiguous(input)
    return _C.adaptive_avg_pool2d_backward(empty, grad_output, input,
                                           *_output_size(output_size, op))


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Adaptive max pooling, as torch.nn.functional.adaptive_max_pool2d (windows as
    adaptive_avg_pool2d); (out, indices) with return_indices=True, for the backward."""
    op = "adaptive_max_pool2d"
    return_indices = as_bool(return_indices, "return_indices", op)
    input = contiguous(input)
    out, indices = _C.adaptive_max_pool2d_forward(empty, return_indices, input,
                                                  *_output_size(output_size, op))
    return (out, indices) if return_indices else out


def adaptive_max_pool2d_backward(grad_output, input, output_size, indices=None):
    """Gradient of adaptive_max_pool2d; uses `indices` when given, else recomputes them."""
    op = "adaptive_max_pool2d_backward"
    grad_output, input, indices = contiguous(grad_output), contiguous(input), contiguous(indices)
    return _C.adaptive_max_pool2d_backward(empty, grad_output, indices, input,
                                           *_output_size(output_size, op))


def mixed_pool2d(input, kernel_size, stride=None, padding=0, alpha=0.5, generator=None):
    """Mixed pooling: alpha * max_pool2d + (1 - alpha) * avg_pool2d (count_include_pad=True).

    alpha is a number in [0, 1], or None to draw alpha ~ U(0, 1) for this call from
    `generator` (fastconv's global generator when None). With alpha=None the result is
    (out, alpha_used): pass alpha_used to mixed_pool2d_backward. Otherwise it is out alone.
    """
    op = "mixed_pool2d"
    input = contiguous(input)
    window = _window(op, kernel_size, stride, padding)
    drawn = alpha is None
    alpha = float(resolve(generator, op).random()) if drawn else as_float(alpha, "alpha", op)
    out = _C.mixed_pool2d_forward(empty, input, *window, alpha)
    return (out, alpha) if drawn else out


def mixed_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, alpha=0.5):
    """Gradient of mixed_pool2d for a given alpha (the number the forward used):
    alpha * the max-pool gradient (argmax recomputed) + (1 - alpha) * the avg-pool gradient."""
    op = "mixed_pool2d_backward"
    grad_output, input = contiguous(grad_output), contiguous(input)
    return _C.mixed_pool2d_backward(empty, grad_output, input,
                                    *_window(op, kernel_size, stride, padding),
                                    as_float(alpha, "alpha", op))
