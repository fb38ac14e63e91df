"""Imports the compiled extension.

The extension finds libscipy_openblas through its RPATH when both live in one site-packages.
Where they do not (``pip install --target``, split user/system site dirs), the library is
loaded by path from the ``scipy_openblas32`` package first, so no environment variable is needed.
"""

import ctypes
import os

try:
    from . import _C
except ImportError as err:
    if "scipy_openblas" not in str(err):
        raise
    import scipy_openblas32

    ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so"))
    from . import _C

__all__ = ["_C"]
