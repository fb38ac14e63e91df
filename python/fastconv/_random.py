"""fastconv's global random generator: dropout masks, random pooling weights, initialisation.

Ops that draw random numbers take `generator=None` (an np.random.Generator); None means this
module's generator, which `fastconv.manual_seed(seed)` resets for reproducible runs.

Threads: the global generator is one for the process. Swapping it (manual_seed) and reading it
(resolve) hold a lock, and each draw from a numpy Generator holds the generator's own lock, so
concurrent use never corrupts it; but draws by concurrent threads interleave in an order set
by timing, so for reproducible concurrent runs give each thread its own `generator=`.
"""

import threading

import numpy as np

_lock = threading.Lock()
_generator = np.random.default_rng()


def manual_seed(seed):
    """Reseed fastconv's global generator and return it."""
    global _generator
    generator = np.random.default_rng(seed)
    with _lock:
        _generator = generator
    return generator


def resolve(generator, op):
    """The generator an op should draw from: the one given, else the global one."""
    if generator is None:
        with _lock:
            return _generator
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{op}: generator must be a numpy.random.Generator or None, "
                        f"got {type(generator).__name__}")
    return generator


def draw_seed(generator, op):
    """A 64-bit seed for a C++ counter-based generator, drawn from `generator` (one draw,
    atomic under the generator's lock)."""
    return int(resolve(generator, op).integers(0, 2**63 - 1, dtype=np.int64))
