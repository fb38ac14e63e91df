"""Op specs of the dense family: linear, with its float64 NumPy reference (a plain einsum,
float64 whatever the input dtype). The transposed convolution is in conv.py."""

import numpy as np

from ._spec import OpSpec, Sample

__all__ = ["linear_ref", "linear_backward_ref"]


def linear_ref(x, w, b=None):
    """x (*, in) · w (out, in)^T + b (out,) -> (*, out), float64."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    out = np.einsum("...i,oi->...o", x, w)
    if b is not None:
        out = out + np.asarray(b, dtype=np.float64)
    return out


def linear_backward_ref(dout, x, w):
    """(dx, dw, db) of linear for grad_output dout (*, out), float64; dw and db sum over every
    leading dimension."""
    dout = np.asarray(dout, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    dx = np.einsum("...o,oi->...i", dout, w)
    d2 = dout.reshape(-1, w.shape[0])
    x2 = x.reshape(-1, w.shape[1])
    dw = np.einsum("mo,mi->oi", d2, x2)
    db = d2.sum(axis=0)
    return dx, dw, db


SPECS = (
    OpSpec("linear", "dense", linear_ref, linear_backward_ref, (
        Sample("batch1", {"x": (1, 7), "w": (5, 7), "b": (5,)}),
        Sample("leading_dims_no_bias", {"x": (2, 3, 6), "w": (4, 6)}),
    ), torch="torch.nn.functional.linear", module="Linear", grad_inputs=3, backward_args=2),
)
