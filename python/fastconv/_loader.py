"""Imports the compiled extension.

The extension finds libscipy_openblas through its RPATH when both live in one site-packages.
Where they do not (``pip install --target``, split user/system site dirs), the library is
loaded by path from the ``scipy_openblas32`` package first, so no environment variable is needed.
"""

import ctypes
import os

# libgomp reads this when the extension loads it. Its default spin count (300,000) keeps a
# thread spinning at a barrier for most of a time slice while its partner is descheduled, so a
# single other busy process made two-thread training steps ~15x slower here (fashion_cnn step
# 13.5 -> 222 ms); 10,000 spins cost ~4% on an idle machine and keep it at 32 ms under load.
# A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "10000"

try:
    from . import _C
except ImportError as err:
    if "scipy_openblas" not in str(err):
        raise
    import scipy_openblas32

    ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so"))
    from . import _C

__all__ = ["_C"]
