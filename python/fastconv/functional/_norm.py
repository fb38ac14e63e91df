"""Normalisation: batch_norm, local_response_norm and their backwards."""

from .._arrays import empty, module_of, shared_view, writable, zeros
from .._loader import _C
from ._args import as_bool, as_float, as_int, as_mask, contiguous, ndarray

__all__ = ["batch_norm", "batch_norm_backward", "local_response_norm",
           "local_response_norm_backward"]


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, return_stats=False):
    """Batch normalisation over (N, *) per channel, as torch.nn.functional.batch_norm.

    input (N, C), (N, C, L), (N, C, H, W) or any (N, C, *); running_mean, running_var, weight
    and bias (C,) or None, of input's dtype. training=True normalises with the batch mean and
    biased variance and, when running_mean/running_var are given, updates them in place:
    running = (1 - momentum) * running + momentum * batch statistic (the variance unbiased,
    n / (n - 1)). training=False normalises with the running statistics, which are then
    required. momentum must be a float (None, the cumulative average of torch.nn.BatchNorm, is a
    TypeError as in torch.nn.functional); like torch, values outside [0, 1] are not rejected.

    return_stats=True (keyword-only, not in torch) returns (out, save_mean, save_invstd), the
    (C,) arrays batch_norm_backward takes: the batch mean and 1/sqrt(var + eps) when training,
    the running mean and 1/sqrt(running_var + eps) otherwise.
    """
    op = "batch_norm"
    input = ndarray(input, "input", op)
    weight, bias = contiguous(weight), contiguous(bias)
    momentum, eps = as_float(momentum, "momentum", op), as_float(eps, "eps", op)
    training = as_bool(training, "training", op)
    return_stats = as_bool(return_stats, "return_stats", op)
    running_mean, running_var = shared_view(running_mean), shared_view(running_var)
    rm, rv = contiguous(running_mean), contiguous(running_var)
    if training:
        # A strided statistic is updated in a contiguous copy and written back afterwards: one
        # that cannot take the write-back must be refused before either is updated.
        for name, stat, buf in (("running_mean", running_mean, rm),
                                ("running_var", running_var, rv)):
            if buf is not stat and not writable(stat):
                raise ValueError(f"{op}: {name} must be writable when training (it is updated "
                                 "in place), got a read-only array")
    out, save_mean, save_invstd = _C.batch_norm_forward(empty, rm, rv, input, weight, bias,
                                                        training, momentum, eps)
    if training:
        # A strided running statistic was updated in a contiguous copy: write it back.
        for stat, buf in ((running_mean, rm), (running_var, rv)):
            if buf is not stat:
                module_of(stat).copyto(stat, buf)
    return (out, save_mean, save_invstd) if return_stats else out


def batch_norm_backward(grad_output, input, weight, save_mean, save_invstd, training=False,
                        output_mask=(True, True, True), *, grad_weight=None, grad_bias=None):
    """Gradients of batch_norm with respect to input, weight and bias.

    save_mean and save_invstd are what batch_norm(..., return_stats=True) returned, and
    training must be what it was given: in training mode the batch statistics depend on the
    input (the batch mean is recomputed from input in double, save_mean serving as a shift),
    in evaluation mode the map is affine. Returns (grad_input, grad_weight, grad_bias), None
    where output_mask is False; grad_weight is also None when weight is None (there is no
    weight), while grad_bias is computed when asked, since a bias may exist without a weight.
    When grad_weight or grad_bias (C,) arrays are passed, the gradients are accumulated into
    them (+=) and they are returned.
    """
    op = "batch_norm_backward"
    need_input, need_weight, need_bias = as_mask(output_mask, op)
    input = ndarray(input, "input", op)
    grad_output, weight = contiguous(grad_output), contiguous(weight)
    save_mean, save_invstd = contiguous(save_mean), contiguous(save_invstd)
    return _C.batch_norm_backward(empty, zeros, grad_output, input, weight, save_mean,
                                  save_invstd, as_bool(training, "training", op), need_input,
                                  need_weight, need_bias, grad_weight, grad_bias)

def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across channels, as torch.nn.functional.local_response_norm.

    input (N, C, *) with at least 3 dimensions; out = input / (k + alpha / size * sum of
    input^2 over `size` neighbouring channels)^beta, the window running from size // 2 channels
    before to (size - 1) // 2 after, zero beyond the edges (and still divided by size).
    """
    op = "local_response_norm"
    input = ndarray(input, "input", op)
    size = as_int(size, "size", op)
    return _C.local_response_norm_forward(empty, input, size, as_float(alpha, "alpha", op),
                                          as_float(beta, "beta", op), as_float(k, "k", op))


def local_response_norm_backward(grad_output, input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Gradient of local_response_norm with respect to its input (the denominators are
    recomputed from input, so the forward saves nothing)."""
    op = "local_response_norm_backward"
    input = ndarray(input, "input", op)
    size = as_int(size, "size", op)
    return _C.local_response_norm_backward(empty, contiguous(grad_output), input, size,
                                           as_float(alpha, "alpha", op),
                                           as_float(beta, "beta", op), as_float(k, "k", op))
