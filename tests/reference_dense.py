"""Float64 NumPy references for the dense family: linear and conv_transpose2d.

linear is a plain einsum. conv_transpose2d is written as what it is, a scatter: every input
pixel adds weight-scaled copies of itself into the output window it spreads over (one strided
slice of an uncropped output per kernel tap (r, s) and group), and the result is cropped by
the padding. Its backward is the matching gather. Nothing here uses im2col or conv2d, and
everything is float64 whatever the input dtype.

This module must never import fastconv.
"""

import numpy as np

from reference import pair

__all__ = [
    "linear_ref",
    "linear_backward_ref",
    "conv_transpose2d_output_size",
    "conv_transpose2d_ref",
    "conv_transpose2d_backward_ref",
]


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


def conv_transpose2d_output_size(H, W, kernel_size, stride=1, padding=0, output_padding=0,
                                 dilation=1):
    R, S = pair(kernel_size)
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    oh, ow = pair(output_padding)
    dh, dw = pair(dilation)
    return ((H - 1) * sh - 2 * ph + dh * (R - 1) + oh + 1,
            (W - 1) * sw - 2 * pw + dw * (S - 1) + ow + 1)


def _setup(x, w, stride, padding, output_padding, groups, dilation):
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    N, Cin, H, W = x.shape
    Cin_w, Cog, R, S = w.shape
    if Cin != Cin_w or Cin % groups:
        raise ValueError("bad channel / groups configuration")
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    oh, ow = pair(output_padding)
    dh, dw = pair(dilation)
    Ho, Wo = conv_transpose2d_output_size(H, W, (R, S), stride, padding, output_padding,
                                          dilation)
    if Ho < 1 or Wo < 1:
        raise ValueError("empty output")
    # The uncropped output: every tap lands inside it, and it reaches the cropped output's end.
    Hf = max((H - 1) * sh + dh * (R - 1) + 1, ph + Ho)
    Wf = max((W - 1) * sw + dw * (S - 1) + 1, pw + Wo)
    geo = dict(N=N, Cin=Cin, H=H, W=W, Cog=Cog, R=R, S=S, sh=sh, sw=sw, ph=ph, pw=pw,
               dh=dh, dw=dw, Ho=Ho, Wo=Wo, Hf=Hf, Wf=Wf, Cig=Cin // groups)
    return x, w, geo


def _taps(geo):
    """For each tap (r, s): the slices of the uncropped output its input pixels land on."""
    for r in range(geo["R"]):
        for s in range(geo["S"]):
            rows = slice(r * geo["dh"], r * geo["dh"] + (geo["H"] - 1) * geo["sh"] + 1, geo["sh"])
            cols = slice(s * geo["dw"], s * geo["dw"] + (geo["W"] - 1) * geo["sw"] + 1, geo["sw"])
            yield r, s, rows, cols


def conv_transpose2d_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                         dilation=1):
    """torch.nn.functional.conv_transpose2d by tap scatter, float64."""
    x, w, geo = _setup(x, w, stride, padding, output_padding, groups, dilation)
    Cig, Cog = geo["Cig"], geo["Cog"]
    full = np.zeros((geo["N"], Cog * groups, geo["Hf"], geo["Wf"]))
    for g in range(groups):
        xg = x[:, g * Cig:(g + 1) * Cig]           # (N, Cig, H, W)
        outs = slice(g * Cog, (g + 1) * Cog)
        for r, s, rows, cols in _taps(geo):
            # (N, Cig, H, W) x (Cig, Cog) -> (N, H, W, Cog)
            contrib = np.tensordot(xg, w[g * Cig:(g + 1) * Cig, :, r, s], axes=([1], [0]))
            full[:, outs, rows, cols] += contrib.transpose(0, 3, 1, 2)
    out = full[:, :, geo["ph"]:geo["ph"] + geo["Ho"], geo["pw"]:geo["pw"] + geo["Wo"]].copy()
    if b is not None:
        out += np.asarray(b, dtype=np.float64).reshape(1, -1, 1, 1)
    return out


def conv_transpose2d_backward_ref(dout, x, w, stride=1, padding=0, output_padding=0, groups=1,
                                  dilation=1):
    """(dx, dw, db) of conv_transpose2d by tap gather, float64."""
    x, w, geo = _setup(x, w, stride, padding, output_padding, groups, dilation)
    dout = np.asarray(dout, dtype=np.float64)
    Cig, Cog = geo["Cig"], geo["Cog"]
    if dout.shape != (geo["N"], Cog * groups, geo["Ho"], geo["Wo"]):
        raise ValueError(f"dout shape {dout.shape} does not match the output")
    # Uncropped gradient: zero where the output was cropped away (padding).
    full = np.zeros((geo["N"], Cog * groups, geo["Hf"], geo["Wf"]))
    full[:, :, geo["ph"]:geo["ph"] + geo["Ho"], geo["pw"]:geo["pw"] + geo["Wo"]] = dout
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for g in range(groups):
        ins = slice(g * Cig, (g + 1) * Cig)
        outs = slice(g * Cog, (g + 1) * Cog)
        for r, s, rows, cols in _taps(geo):
            patch = full[:, outs, rows, cols]     # (N, Cog, H, W)
            # dx[n, k, h, w] += sum_c patch[n, c, h, w] * w[k, c, r, s]
            dx[:, ins] += np.einsum("nchw,kc->nkhw", patch, w[ins, :, r, s])
            # dw[k, c, r, s] = sum_{n, h, w} x[n, k, h, w] * patch[n, c, h, w]
            dw[ins, :, r, s] = np.einsum("nkhw,nchw->kc", x[:, ins], patch)
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db
