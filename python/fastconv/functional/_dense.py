"""Dense ops: linear and its backward."""

from .._arrays import empty, shared_view, zeros
from .._loader import _C
from ._args import as_mask, contiguous

__all__ = ["linear", "linear_backward"]


def linear(input, weight, bias=None):
    """y = input · weight^T + bias, as torch.nn.functional.linear.

    input (*, in_features) with any number of leading dimensions (1-D included), weight
    (out_features, in_features), bias (out_features,) or None -> (*, out_features), float32 or
    float64 throughout. Unlike torch, weight must be 2-D and bias 1-D.
    """
    input, weight, bias = contiguous(input), contiguous(weight), contiguous(bias)
    return _C.linear_forward(empty, input, weight, bias)


def linear_backward(grad_output, input, weight, output_mask=(True, True, True), *,
                    grad_weight=None, grad_bias=None):
    """Gradients of linear with respect to its input, weight and bias.

    Takes grad_output (*, out_features) and the input and weight linear took; returns
    (grad_input, grad_weight, grad_bias), None where output_mask is False. grad_input is always
    a new array; grad_weight and grad_bias sum over every leading dimension. When grad_weight
    (out_features, in_features) or grad_bias (out_features,) arrays are passed, the gradients
    are accumulated into them (+=) and they are returned.
    """
    need_input, need_weight, need_bias = as_mask(output_mask, "linear_backward")
    return _C.linear_backward(empty, zeros, contiguous(grad_output), contiguous(input),
                              contiguous(weight), need_input, need_weight, need_bias,
                              shared_view(grad_weight), shared_view(grad_bias))
