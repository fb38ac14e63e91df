"""One thin function per kernel, with torch.nn.functional's names, arguments and defaults.

Each function normalises its arguments, asks the extension for the geometry (which validates
shapes and computes output sizes), allocates the outputs and calls the kernel. Arrays that
are not C-contiguous are copied first; everything else is checked once, in the extension.
Backward functions are named <op>_backward and take grad_output first.
"""

from ._conv import conv2d, conv2d_backward, fold, unfold
from ._loss import (cross_entropy, cross_entropy_backward, mse_loss, mse_loss_backward,
                    multi_margin_loss, multi_margin_loss_backward)

__all__ = ["conv2d", "conv2d_backward", "unfold", "fold",
           "cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward",
           "multi_margin_loss", "multi_margin_loss_backward"]
