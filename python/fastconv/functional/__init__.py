"""One thin function per kernel, with torch.nn.functional's names, arguments and defaults.

Each function normalises its arguments, asks the extension for the geometry (which validates
shapes and computes output sizes), allocates the outputs and calls the kernel. Arrays that
are not C-contiguous are copied first; everything else is checked once, in the extension.
Backward functions are named <op>_backward and take grad_output first.
"""

from ._conv import conv2d, conv2d_backward, fold, unfold
from ._pool import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_max_pool2d,
                    adaptive_max_pool2d_backward, avg_pool2d, avg_pool2d_backward, lp_pool2d,
                    lp_pool2d_backward, max_pool2d, max_pool2d_backward, min_pool2d,
                    min_pool2d_backward, mixed_pool2d, mixed_pool2d_backward)

__all__ = ["conv2d", "conv2d_backward", "unfold", "fold",
           "max_pool2d", "max_pool2d_backward", "min_pool2d", "min_pool2d_backward",
           "avg_pool2d", "avg_pool2d_backward", "lp_pool2d", "lp_pool2d_backward",
           "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward",
           "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
           "mixed_pool2d", "mixed_pool2d_backward"]
