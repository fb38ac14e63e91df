"""One thin function per kernel, with torch.nn.functional's names, arguments and defaults.

Each function normalises its Python arguments and crosses into the extension once: the binding
checks the arrays and scalars, computes the output shapes, allocates the outputs through the
allocator it is handed (fastconv._arrays.empty/zeros, which use the input's array module, so
NumPy in gives NumPy out and CuPy gives CuPy on the input's device), runs the kernel and returns
them. Elementwise ops (activations, dropout) allocate their input-shaped output here instead,
as the same array may be written in place. Arrays that are not C-contiguous are copied first;
everything else is checked once, in the extension. Backward functions are named <op>_backward
and take grad_output first.
"""

from . import _act, _conv, _dense, _dropout, _loss, _norm, _pool
from ._act import *  # noqa: F401,F403
from ._conv import *  # noqa: F401,F403
from ._conv import conv2d_algorithm  # noqa: F401  (a helper beside the ops, not in __all__)
from ._dense import *  # noqa: F401,F403
from ._dropout import *  # noqa: F401,F403
from ._loss import *  # noqa: F401,F403
from ._norm import *  # noqa: F401,F403
from ._pool import *  # noqa: F401,F403

__all__ = (_conv.__all__ + _dense.__all__ + _pool.__all__ + _act.__all__ + _norm.__all__
           + _dropout.__all__ + _loss.__all__)
