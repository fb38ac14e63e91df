"""Convolution: conv2d, conv_transpose2d and their backwards, unfold (im2col) and fold (col2im).

Each op parses its Python scalars and crosses into the extension once, passing its allocators
(looked up at call time): the binding computes the geometry, allocates and returns the outputs.
"""

from .._arrays import empty, shared_view, zeros
from .._loader import _C
from ._args import as_array, as_int, as_mask, as_pair, contiguous, conv_padding

__all__ = ["conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward", "unfold",
           "fold"]


def _conv2d_scalars(op, stride, padding, dilation, groups):
    mode, pad = conv_padding(padding, op)
    return (as_pair(stride, "stride", op, single=True), mode, pad,
            as_pair(dilation, "dilation", op, single=True), as_int(groups, "groups", op))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation), as torch.nn.functional.conv2d.

    input (N, C, H, W), weight (K, C/groups, R, S), bias (K,) or None -> (N, K, P, Q), with
    float32 or float64 throughout. stride, padding and dilation are an int or an (h, w) pair;
    padding may also be "valid" (none) or "same" (stride 1 only; an even effective kernel pads
    one more row/column at the bottom/right, as PyTorch does).
    """
    input, weight, bias = contiguous(input), contiguous(weight), contiguous(bias)
    return _C.conv2d_forward(empty, input, weight, bias,
                             *_conv2d_scalars("conv2d", stride, padding, dilation, groups))


# Not in __all__: an introspection helper, not an op (no spec, no backward).
def conv2d_algorithm(input, weight, stride=1, padding=0, dilation=1, groups=1):
    """The algorithm conv2d and conv2d_backward run on these CPU arrays and arguments, under
    the CPU variant in force (fastconv.get_cpu_isa()), as a dict with keys "forward",
    "grad_input" and "grad_weight". Each value is "winograd" (F(2x2, 3x3) for a 3x3 kernel at
    stride 1 with 16 or more channels each side and 2x2 output blocks that fill the vector
    lanes: float32 under AVX-512 and AVX2),
    "direct" (register tiles, no
    im2col: float32 under AVX2 or AVX-512), "direct_rows" (the forward of a layer with few taps per output
    channel, such as a first layer, vectorised along output rows: float32 under AVX2 or
    AVX-512, unit stride), "linear" (a window over the whole unpadded input, one output
    pixel: one GEMM over the flattened batch, in any dtype), "batched_gemm" (planes of at most
    16 pixels: one GEMM over the batch's images side by side), "gemm" (a 1x1 layer, read in
    place) or "im2col_gemm". A strided 1x1 layer without padding reports (and runs) the
    unit-stride layer's algorithms on the pixels it reads. The choice depends on the shapes,
    dtype and variant alone (and, under AVX-512, on whether the BLAS runs AVX-512 kernels,
    `blas_core` in fastconv.info(): when it does not, 1x1 layers and the weight gradient of
    layers of 9 to 15 taps, such as a one-channel 3x3 first layer, or of up to 3 Mi weights
    take the direct tiles): it is what `cudnn.benchmark` would cache, decided by rule rather
    than by timing.
    """
    input, weight = contiguous(input), contiguous(weight)
    return _C.conv2d_algorithm(input, weight,
                               *_conv2d_scalars("conv2d_algorithm", stride, padding, dilation,
                                                groups))


def _backward(kernel, op, grad_output, input, weight, scalars, output_mask, grad_weight,
              grad_bias):
    """A conv-kind backward: (grad_input, grad_weight, grad_bias), None where output_mask is
    False; fresh parameter gradients are zeros for the kernel to accumulate into."""
    need_input, need_weight, need_bias = as_mask(output_mask, op)
    return kernel(empty, zeros, contiguous(grad_output), contiguous(input), contiguous(weight),
                  need_input, need_weight, need_bias, shared_view(grad_weight),
                  shared_view(grad_bias), *scalars(op))


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    output_mask=(True, True, True), *, grad_weight=None, grad_bias=None):
    """Gradients of conv2d with respect to its input, weight and bias.

    Takes the arguments conv2d took (every form of stride/padding/dilation) and
    grad_output (N, K, P, Q); returns (grad_input, grad_weight, grad_bias), None where
    output_mask is False. grad_input is always a new array. When grad_weight (K, C/groups, R, S)
    or grad_bias (K,) arrays are passed, the gradients are accumulated into them (+=) and they
    are returned: that is how a layer adds into its parameters' .grad without a temporary.
    """
    return _backward(_C.conv2d_backward, "conv2d_backward", grad_output, input, weight,
                     lambda op: _conv2d_scalars(op, stride, padding, dilation, groups),
                     output_mask, grad_weight, grad_bias)


def _window_scalars(op, kernel, dilation, padding, stride):
    """(kernel_size, dilation, padding, stride) as pairs, parsed in the order the messages of
    several bad arguments have always named them: stride, padding, then dilation."""
    stride, padding = as_pair(stride, "stride", op), as_pair(padding, "padding", op)
    return kernel, as_pair(dilation, "dilation", op), padding, stride


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """im2col, as torch.nn.functional.unfold: (N, C, H, W) -> (N, C*R*S, P*Q)."""
    op = "unfold"
    input = as_array(input, 4, "(N, C, H, W)", "input", op)
    return _C.unfold(empty, input, *_window_scalars(op, as_pair(kernel_size, "kernel_size", op),
                                                    dilation, padding, stride))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """col2im, as torch.nn.functional.fold: (N, C*R*S, L) -> (N, C, H, W), overlaps summed."""
    op = "fold"
    input = as_array(input, 3, "(N, C*R*S, L)", "input", op)
    kernel = as_pair(kernel_size, "kernel_size", op)
    return _C.fold(empty, input, as_pair(output_size, "output_size", op),
                   *_window_scalars(op, kernel, dilation, padding, stride))


def _conv_transpose2d_scalars(op, stride, padding, output_padding, groups, dilation):
    return (as_pair(stride, "stride", op, single=True),
            as_pair(padding, "padding", op, single=True),
            as_pair(output_padding, "output_padding", op, single=True),
            as_pair(dilation, "dilation", op, single=True), as_int(groups, "groups", op))


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
    input, weight, bias = contiguous(input), contiguous(weight), contiguous(bias)
    return _C.conv_transpose2d_forward(
        empty, input, weight, bias,
        *_conv_transpose2d_scalars("conv_transpose2d", stride, padding, output_padding, groups,
                                   dilation))


def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, output_mask=(True, True, True), *,
                              grad_weight=None, grad_bias=None):
    """Gradients of conv_transpose2d with respect to its input, weight and bias.

    Takes grad_output (N, C_out, H_out, W_out) and the arguments conv_transpose2d took;
    returns (grad_input, grad_weight, grad_bias), None where output_mask is False. grad_input
    is always a new array. When grad_weight (C_in, C_out/groups, R, S) or grad_bias (C_out,)
    arrays are passed, the gradients are accumulated into them (+=) and they are returned.
    """
    return _backward(_C.conv_transpose2d_backward, "conv_transpose2d_backward", grad_output,
                     input, weight,
                     lambda op: _conv_transpose2d_scalars(op, stride, padding, output_padding,
                                                          groups, dilation),
                     output_mask, grad_weight, grad_bias)
