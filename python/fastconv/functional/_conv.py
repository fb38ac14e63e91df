"""Convolution: conv2d, conv_transpose2d and their backwards, unfold (im2col) and fold (col2im).

conv_transpose2d is computed on the equivalent conv2d, whose geometry the extension returns:
that geometry's in_shape is the transposed conv's output shape and its out_shape the
transposed conv's input shape.
"""

from .._arrays import empty
from .._loader import _C
from ._args import as_array, as_int, as_mask, as_pair, contiguous, conv_padding, param_grads

__all__ = ["conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward", "unfold",
           "fold"]


def _conv2d_geometry(op, input, weight, stride, padding, dilation, groups):
    mode, pad = conv_padding(padding, op)
    return _C.conv2d_geometry(op, input, weight, as_pair(stride, "stride", op), mode, pad,
                              as_pair(dilation, "dilation", op), as_int(groups, "groups", op))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation), as torch.nn.functional.conv2d.

    input (N, C, H, W), weight (K, C/groups, R, S), bias (K,) or None -> (N, K, P, Q), with
    float32 or float64 throughout. stride, padding and dilation are an int or an (h, w) pair;
    padding may also be "valid" (none) or "same" (stride 1 only; an even effective kernel pads
    one more row/column at the bottom/right, as PyTorch does).
    """
    input, weight, bias = contiguous(input), contiguous(weight), contiguous(bias)
    g = _conv2d_geometry("conv2d", input, weight, stride, padding, dilation, groups)
    out = empty(input, g.out_shape)
    _C.conv2d_forward(out, input, weight, bias, g)
    return out


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    output_mask=(True, True, True), *, grad_weight=None, grad_bias=None):
    """Gradients of conv2d with respect to its input, weight and bias.

    Takes the arguments conv2d took (every form of stride/padding/dilation) and
    grad_output (N, K, P, Q); returns (grad_input, grad_weight, grad_bias), None where
    output_mask is False. grad_input is always a new array. When grad_weight (K, C/groups, R, S)
    or grad_bias (K,) arrays are passed, the gradients are accumulated into them (+=) and they
    are returned: that is how a layer adds into its parameters' .grad without a temporary.
    """
    op = "conv2d_backward"
    need_input, need_weight, need_bias = as_mask(output_mask, op)
    grad_output, input, weight = contiguous(grad_output), contiguous(input), contiguous(weight)
    g = _conv2d_geometry(op, input, weight, stride, padding, dilation, groups)
    dinp = empty(input, g.in_shape) if need_input else None
    dweight, dbias = param_grads(need_weight, need_bias, g.weight_shape, (g.K,), input,
                                 grad_weight, grad_bias)
    _C.conv2d_backward(dinp, dweight, dbias, grad_output, input, weight, g)
    return dinp, dweight, dbias


def _window_geometry(op, input, shape, kernel_size, dilation, padding, stride):
    """Geometry of unfold/fold on images of `shape` (N, C, H, W); input is the op's input (its
    device sets the size limits, which are checked before anything is allocated)."""
    return _C.window_geometry(op, input, op == "fold", *shape,
                              as_pair(kernel_size, "kernel_size", op),
                              as_pair(stride, "stride", op), as_pair(padding, "padding", op),
                              as_pair(dilation, "dilation", op))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """im2col, as torch.nn.functional.unfold: (N, C, H, W) -> (N, C*R*S, P*Q)."""
    input = as_array(input, 4, "(N, C, H, W)", "input", "unfold")
    g = _window_geometry("unfold", input, input.shape, kernel_size, dilation, padding, stride)
    out = empty(input, (g.N, g.C * g.R * g.S, g.P * g.Q))
    _C.unfold(out, input, g)
    return out


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """col2im, as torch.nn.functional.fold: (N, C*R*S, L) -> (N, C, H, W), overlaps summed."""
    op = "fold"
    input = as_array(input, 3, "(N, C*R*S, L)", "input", op)
    R, S = as_pair(kernel_size, "kernel_size", op)
    H, W = as_pair(output_size, "output_size", op)
    if R < 1 or S < 1:
        raise ValueError(f"fold: kernel_size must be positive, got {(R, S)}")
    if input.shape[1] < R * S or input.shape[1] % (R * S) != 0:
        raise ValueError(f"fold: input.shape[1] = {input.shape[1]} must be a positive multiple "
                         f"of the kernel area {R}*{S}")
    g = _window_geometry(op, input, (input.shape[0], input.shape[1] // (R * S), H, W), (R, S),
                         dilation, padding, stride)
    if input.shape[2] != g.P * g.Q:
        raise ValueError(f"fold: input.shape[2] = {input.shape[2]} must equal the number of "
                         f"sliding blocks {g.P}*{g.Q} = {g.P * g.Q} for output_size {(H, W)}")
    out = empty(input, g.in_shape)
    _C.fold(out, input, g)
    return out


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
