"""Dense ops: linear and conv_transpose2d, with their backward functions.

conv_transpose2d is computed on the equivalent conv2d, whose geometry the extension returns:
that geometry's in_shape is the transposed conv's output shape and its out_shape the
transposed conv's input shape.
"""

from .._arrays import empty
from .._loader import _C
from ._args import as_int, as_mask, as_pair, contiguous, param_grads

__all__ = ["linear", "linear_backward", "conv_transpose2d", "conv_transpose2d_backward"]


def linear(input, weight, bias=None):
    """y = input · weight^T + bias, as torch.nn.functional.linear.

    input (*, in_features) with any number of leading dimensions (1-D included), weight
    (out_features, in_features), bias (out_features,) or None -> (*, out_features), float32 or
    float64 throughout. Unlike torch, weight must be 2-D and bias 1-D.
    """
    input, weight, bias = contiguous(input), contiguous(weight), contiguous(bias)
    shape = _C.linear_out_shape("linear", input, weight)
    out = empty(input, shape)
    _C.linear_forward(out, input, weight, bias)
    return out


def linear_backward(grad_output, input, weight, output_mask=(True, True, True), *,
                    grad_weight=None, grad_bias=None):
    """Gradients of linear with respect to its input, weight and bias.

    Takes grad_output (*, out_features) and the input and weight linear took; returns
    (grad_input, grad_weight, grad_bias), None where output_mask is False. grad_input is always
    a new array; grad_weight and grad_bias sum over every leading dimension. When grad_weight
    (out_features, in_features) or grad_bias (out_features,) arrays are passed, the gradients
    are accumulated into them (+=) and they are returned.
    """
    op = "linear_backward"
    need_input, need_weight, need_bias = as_mask(output_mask, op)
    grad_output, input, weight = contiguous(grad_output), contiguous(input), contiguous(weight)
    shape = _C.linear_out_shape(op, input, weight)
    dinp = empty(input, input.shape) if need_input else None
    dweight, dbias = param_grads(need_weight, need_bias, weight.shape, (shape[-1],), input,
                                  grad_weight, grad_bias)
    _C.linear_backward(dinp, dweight, dbias, grad_output, input, weight)
    return dinp, dweight, dbias


def _conv_transpose2d_geometry(op, input, weight, stride, padding, output_padding, groups,
                               dilation):
    return _C.conv_transpose2d_geometry(
        op, input, weight, as_pair(stride, "stride", op), as_pair(padding, "padding", op),
        as_pair(output_padding, "output_padding", op), as_pair(dilation, "dilation", op),
        as_int(groups, "groups", op))


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """2-D transposed convolution, as torch.nn.functional.conv_transpose2d.

    input (N, C_in, H, W), weight (C_in, C_out/groups, R, S), bias (C_out,) or None ->
    (N, C_out, H_out, W_out) with H_out = (H - 1)*stride - 2*padding + dilation*(R - 1) +
    output_padding + 1 (W_out alike); float32 or float64 throughout. stride, padding,
    output_padding and dilation are an int or an (h, w) pair; output_padding adds rows/columns
    at the bottom/right and must be smaller than stride or dilation. Unlike torch, input must
    be 4-D (no unbatched 3-D input), as for conv2d.
    """
    op = "conv_transpose2d"
    input, weight, bias = contiguous(input), contiguous(weight), contiguous(bias)
    g = _conv_transpose2d_geometry(op, input, weight, stride, padding, output_padding, groups,
                                   dilation)
    out = empty(input, g.in_shape)
    _C.conv_transpose2d_forward(out, input, weight, bias, g)
    return out


def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, output_mask=(True, True, True), *,
                              grad_weight=None, grad_bias=None):
    """Gradients of conv_transpose2d with respect to its input, weight and bias.

    Takes grad_output (N, C_out, H_out, W_out) and the arguments conv_transpose2d took;
    returns (grad_input, grad_weight, grad_bias), None where output_mask is False. grad_input
    is always a new array. When grad_weight (C_in, C_out/groups, R, S) or grad_bias (C_out,)
    arrays are passed, the gradients are accumulated into them (+=) and they are returned.
    """
    op = "conv_transpose2d_backward"
    need_input, need_weight, need_bias = as_mask(output_mask, op)
    grad_output, input, weight = contiguous(grad_output), contiguous(input), contiguous(weight)
    g = _conv_transpose2d_geometry(op, input, weight, stride, padding, output_padding, groups,
                                   dilation)
    dinp = empty(input, g.out_shape) if need_input else None
    dweight, dbias = param_grads(need_weight, need_bias, g.weight_shape, (g.C,), input,
                                  grad_weight, grad_bias)
    _C.conv_transpose2d_backward(dinp, dweight, dbias, grad_output, input, weight, g)
    return dinp, dweight, dbias
