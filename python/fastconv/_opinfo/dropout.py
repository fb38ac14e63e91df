"""Op spec of dropout, with its float64 NumPy reference: a product with a given mask (the
draw itself is random; tests and the benchmark judge it by the mask it returns)."""

import numpy as np

from ._spec import OpSpec, Sample

__all__ = ["dropout_ref", "dropout_backward_ref", "dropout2d_ref", "dropout2d_backward_ref"]


def dropout_ref(x, mask, p):
    """x * mask / (1 - p); x * 0 everywhere when p = 1."""
    x = np.asarray(x, dtype=np.float64)
    keep = np.asarray(mask, dtype=bool)
    if p == 1:
        return x * 0.0
    return np.where(keep, x / (1 - p), x * 0.0)


def dropout_backward_ref(dout, mask, p):
    return dropout_ref(dout, mask, p)


def dropout2d_ref(x, mask, p):
    """dropout_ref with the (N, C, 1, ...) channel mask broadcast over each plane."""
    x = np.asarray(x, dtype=np.float64)
    return dropout_ref(x, np.broadcast_to(np.asarray(mask, dtype=bool), x.shape), p)


def dropout2d_backward_ref(dout, mask, p):
    return dropout2d_ref(dout, mask, p)


SPECS = (
    # the draw is random: PyTorch's dropout is no counterpart; the mask is an input here
    OpSpec("dropout", "dropout", dropout_ref, dropout_backward_ref, (
        Sample("p0.3_odd", {"x": (2, 3, 5, 7), "mask": lambda rng: rng.random((2, 3, 5, 7)) > 0.3},
               {"p": 0.3}),
    ), module="Dropout", grad_inputs=0),
    OpSpec("dropout2d", "dropout", dropout2d_ref, dropout2d_backward_ref, (
        Sample("p0.4_planes", {"x": (3, 5, 4, 6),
                               "mask": lambda rng: rng.random((3, 5, 1, 1)) > 0.4}, {"p": 0.4}),
    ), module="Dropout2d", grad_inputs=0),
)
