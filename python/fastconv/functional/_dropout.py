"""Dropout: dropout and its backward."""

from .. import _random
from .._arrays import shared_view, empty, is_array, module_of
from .._loader import _C
from ._args import as_bool, as_float, contiguous, ndarray

__all__ = ["dropout", "dropout_backward"]


def dropout(input, p=0.5, training=True, inplace=False, *, generator=None, return_mask=False):
    """Dropout, as torch.nn.functional.dropout: out = input * mask / (1 - p).

    mask is 1 with probability 1 - p, drawn by a counter-based generator from a seed taken from
    `generator` (a numpy.random.Generator; None: fastconv's, see fastconv.manual_seed), so a
    seed gives the same mask whatever the thread count. Dropped elements are input * 0, so NaN
    and Inf give NaN there, as in PyTorch. p = 1 drops everything; p = 0 or training=False
    return input unchanged, as a new array unless inplace=True (PyTorch returns input itself).
    inplace=True writes into input and returns it. return_mask=True (keyword-only, not in
    torch) returns (out, mask), mask a uint8 0/1 array of input's shape for dropout_backward.
    """
    op = "dropout"
    input = shared_view(input)
    if not is_array(input):
        raise TypeError(f"{op}: input must be a numpy.ndarray or a cupy.ndarray, got "
                        f"{type(input).__module__}.{type(input).__qualname__}")
    p = as_float(p, "p", op)
    training = as_bool(training, "training", op)
    inplace = as_bool(inplace, "inplace", op)
    return_mask = as_bool(return_mask, "return_mask", op)
    gen = _random.resolve(generator, op)
    seed = _random.draw_seed(gen, op) if training and 0 < p < 1 else 0
    mask = empty(input, input.shape, dtype="uint8") if return_mask else None

    x = contiguous(input)
    out = x if inplace else empty(x, x.shape)
    _C.dropout_forward(out, mask, x, p, training, seed)
    if inplace and x is not input:
        # A strided input was processed in a contiguous copy: write the result back into it.
        module_of(input).copyto(input, x)
        out = input
    return (out, mask) if return_mask else out


def dropout_backward(grad_output, mask, p):
    """grad_output * mask / (1 - p) with the mask dropout(..., return_mask=True) returned
    (uint8 or bool; any non-zero value counts as kept); grad_output * 0 when p = 1. A forward
    with training=False was the identity: its backward is this with p = 0."""
    op = "dropout_backward"
    grad_output = ndarray(grad_output, "grad_output", op)
    mask = contiguous(mask)
    if is_array(mask) and mask.dtype == bool:
        mask = mask.view("uint8")
    dinp = empty(grad_output, grad_output.shape)
    _C.dropout_backward(dinp, grad_output, mask, as_float(p, "p", op))
    return dinp
