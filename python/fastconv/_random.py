"""fastconv's global random generator: dropout masks, random pooling weights, initialisation.

Ops that draw random numbers take `generator=None` (an np.random.Generator); None means this
module's generator, which `fastconv.manual_seed(seed)` resets for reproducible runs.
"""

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Reseed fastconv's global generator and return it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def resolve(generator, op):
    """The generator an op should draw from: the one given, else the global one."""
    if generator is None:
        return _generator
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{op}: generator must be a numpy.random.Generator or None, "
                        f"got {type(generator).__name__}")
    return generator


def draw_seed(generator, op):
    """A 64-bit seed for a C++ counter-based generator, drawn from `generator`."""
    return int(resolve(generator, op).integers(0, 2**63 - 1, dtype=np.int64))
