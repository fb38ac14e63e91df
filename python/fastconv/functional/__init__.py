"""One thin function per kernel, with torch.nn.functional's names, arguments and defaults.

Each function normalises its arguments, asks the extension for the geometry (which validates
shapes and computes output sizes), allocates the outputs and calls the kernel. Arrays that
are not C-contiguous are copied first; everything else is checked once, in the extension.
Backward functions are named <op>_backward and take grad_output first.
"""

from ._conv import conv2d, conv2d_backward, fold, unfold
from ._dense import conv_transpose2d, conv_transpose2d_backward, linear, linear_backward
from ._norm import (batch_norm, batch_norm_backward, dropout, dropout_backward,
                    local_response_norm, local_response_norm_backward)

__all__ = ["conv2d", "conv2d_backward", "unfold", "fold", "linear", "linear_backward",
           "conv_transpose2d", "conv_transpose2d_backward", "batch_norm", "batch_norm_backward",
           "local_response_norm", "local_response_norm_backward", "dropout", "dropout_backward"]
