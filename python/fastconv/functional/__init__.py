"""One thin function per kernel, with torch.nn.functional's names, arguments and defaults.

Each function normalises its arguments, asks the extension for the geometry (which validates
shapes and computes output sizes), allocates the outputs and calls the kernel. Arrays that
are not C-contiguous are copied first; everything else is checked once, in the extension.
Backward functions are named <op>_backward and take grad_output first.
"""

from . import _act, _conv, _dense, _dropout, _loss, _norm, _pool
from ._act import *  # noqa: F401,F403
from ._conv import *  # noqa: F401,F403
from ._dense import *  # noqa: F401,F403
from ._dropout import *  # noqa: F401,F403
from ._loss import *  # noqa: F401,F403
from ._norm import *  # noqa: F401,F403
from ._pool import *  # noqa: F401,F403

__all__ = (_conv.__all__ + _dense.__all__ + _pool.__all__ + _act.__all__ + _norm.__all__
           + _dropout.__all__ + _loss.__all__)
