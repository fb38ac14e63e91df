"""Float64 NumPy reference implementations for fastconv's tests.

Everything here is deliberately independent of im2col: the convolution and its
gradients are computed as *direct tap sums* (one strided slice of the
zero-padded input per kernel tap (r, s) and per group, contracted over the
channels), and unfold/fold are plain index loops.  All results are float64
whatever the input dtype.

This module must never import fastconv.
"""

import numpy as np

__all__ = [
    "pair",
    "resolve_padding",
    "conv_output_size",
    "conv2d_ref",
    "conv2d_backward_ref",
    "unfold_ref",
    "fold_ref",
]


def pair(v):
    """int -> (v, v); 2-sequence -> tuple."""
    if isinstance(v, (int, np.integer)):
        return (int(v), int(v))
    t = tuple(int(e) for e in v)
    if len(t) != 2:
        raise ValueError(f"expected an int or a pair, got {v!r}")
    return t


def resolve_padding(padding, kernel_size, dilation=1, stride=1):
    """Torch-style padding -> (top, bottom, left, right).

    padding: "valid", "same", an int, an (h, w) pair, or already a 4-tuple
    (top, bottom, left, right).  For "same" the total padding along an axis is
    dilation * (k - 1); top/left get total // 2 and bottom/right the rest
    (exactly like torch, which puts the extra element on the bottom/right).
    """
    R, S = pair(kernel_size)
    dh, dw = pair(dilation)
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if pair(stride) != (1, 1):
                raise ValueError("padding='same' requires stride 1")
            th = dh * (R - 1)
            tw = dw * (S - 1)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        raise ValueError(f"unknown padding string {padding!r}")
    if isinstance(padding, (int, np.integer)):
        p = int(padding)
        return (p, p, p, p)
    t = tuple(int(e) for e in padding)
    if len(t) == 2:
        return (t[0], t[0], t[1], t[1])
    if len(t) == 4:
        return t
    raise ValueError(f"bad padding {padding!r}")


def conv_output_size(H, W, kernel_size, stride, pad4, dilation):
    R, S = pair(kernel_size)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    pt, pb, pl, pr = pad4
    P = (H + pt + pb - dh * (R - 1) - 1) // sh + 1
    Q = (W + pl + pr - dw * (S - 1) - 1) // sw + 1
    return P, Q


def _tap(start, n, step):
    """Slice selecting n elements start, start+step, ..."""
    return slice(start, start + step * (n - 1) + 1, step)


def _prepare(x, w, stride, padding, dilation, groups):
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError("x and w must be 4-d")
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    if groups < 1 or C % groups or K % groups or Cg * groups != C:
        raise ValueError("bad groups / channel configuration")
    pad4 = resolve_padding(padding, (R, S), dilation, stride)
    if min(pad4) < 0:
        raise ValueError("negative padding")
    P, Q = conv_output_size(H, W, (R, S), stride, pad4, dilation)
    if P < 1 or Q < 1:
        raise ValueError("empty output")
    return x, w, pad4, (P, Q)


def _padded(x, pad4):
    N, C, H, W = x.shape
    pt, pb, pl, pr = pad4
    xp = np.zeros((N, C, H + pt + pb, W + pl + pr), dtype=np.float64)
    xp[:, :, pt:pt + H, pl:pl + W] = x
    return xp


def conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Direct tap-sum conv2d (cross-correlation, PyTorch semantics), float64."""
    x, w, pad4, (P, Q) = _prepare(x, w, stride, padding, dilation, groups)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    Kg = K // groups
    xp = _padded(x, pad4)
    out = np.zeros((N, K, P, Q), dtype=np.float64)
    for g in range(groups):
        xs = xp[:, g * Cg:(g + 1) * Cg]
        ks = slice(g * Kg, (g + 1) * Kg)
        for r in range(R):
            for s in range(S):
                patch = xs[:, :, _tap(r * dh, P, sh), _tap(s * dw, Q, sw)]  # (N,Cg,P,Q)
                # (N,Cg,P,Q) x (Kg,Cg) -> (N,P,Q,Kg)
                contrib = np.tensordot(patch, w[ks, :, r, s], axes=([1], [1]))
                out[:, ks] += contrib.transpose(0, 3, 1, 2)
    if b is not None:
        b = np.asarray(b, dtype=np.float64)
        out += b.reshape(1, K, 1, 1)
    return out


def conv2d_backward_ref(dout, x, w, stride=1, padding=0, dilation=1, groups=1):
    """Adjoint tap sums. Returns (dx, dw, db), all float64."""
    x, w, pad4, (P, Q) = _prepare(x, w, stride, padding, dilation, groups)
    dout = np.asarray(dout, dtype=np.float64)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    if dout.shape != (N, K, P, Q):
        raise ValueError(f"dout shape {dout.shape} != {(N, K, P, Q)}")
    sh, sw = pair(stride)
    dh, dw_ = pair(dilation)
    Kg = K // groups
    pt, pb, pl, pr = pad4
    xp = _padded(x, pad4)
    dxp = np.zeros_like(xp)
    dw = np.zeros((K, Cg, R, S), dtype=np.float64)
    for g in range(groups):
        cs = slice(g * Cg, (g + 1) * Cg)
        ks = slice(g * Kg, (g + 1) * Kg)
        dg = dout[:, ks]  # (N,Kg,P,Q)
        for r in range(R):
            for s in range(S):
                hs = _tap(r * dh, P, sh)
                ws = _tap(s * dw_, Q, sw)
                patch = xp[:, cs, hs, ws]  # (N,Cg,P,Q)
                dw[ks, :, r, s] = np.tensordot(dg, patch, axes=([0, 2, 3], [0, 2, 3]))
                # (N,Kg,P,Q) x (Kg,Cg) -> (N,P,Q,Cg)
                back = np.tensordot(dg, w[ks, :, r, s], axes=([1], [0]))
                dxp[:, cs, hs, ws] += back.transpose(0, 3, 1, 2)
    dx = dxp[:, :, pt:pt + H, pl:pl + W].copy()
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db


def unfold_ref(x, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.unfold by direct index loops, float64.

    Row index of the result is c*R*S + r*S + s, column index p*Q + q.
    """
    x = np.asarray(x, dtype=np.float64)
    N, C, H, W = x.shape
    R, S = pair(kernel_size)
    dh, dw = pair(dilation)
    ph, pw = pair(padding)
    sh, sw = pair(stride)
    P, Q = conv_output_size(H, W, (R, S), (sh, sw), (ph, ph, pw, pw), (dh, dw))
    cols = np.zeros((N, C * R * S, P * Q), dtype=np.float64)
    for c in range(C):
        for r in range(R):
            for s in range(S):
                row = (c * R + r) * S + s
                for p in range(P):
                    ih = p * sh - ph + r * dh
                    if ih < 0 or ih >= H:
                        continue
                    for q in range(Q):
                        iw = q * sw - pw + s * dw
                        if iw < 0 or iw >= W:
                            continue
                        cols[:, row, p * Q + q] = x[:, c, ih, iw]
    return cols


def fold_ref(cols, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.fold (col2im, overlaps summed) by direct loops, float64."""
    cols = np.asarray(cols, dtype=np.float64)
    N, CRS, L = cols.shape
    H, W = pair(output_size)
    R, S = pair(kernel_size)
    dh, dw = pair(dilation)
    ph, pw = pair(padding)
    sh, sw = pair(stride)
    if CRS % (R * S):
        raise ValueError("cols.shape[1] not divisible by R*S")
    C = CRS // (R * S)
    P, Q = conv_output_size(H, W, (R, S), (sh, sw), (ph, ph, pw, pw), (dh, dw))
    if P * Q != L:
        raise ValueError("cols.shape[2] does not match the geometry")
    out = np.zeros((N, C, H, W), dtype=np.float64)
    for c in range(C):
        for r in range(R):
            for s in range(S):
                row = (c * R + r) * S + s
                for p in range(P):
                    ih = p * sh - ph + r * dh
                    if ih < 0 or ih >= H:
                        continue
                    for q in range(Q):
                        iw = q * sw - pw + s * dw
                        if iw < 0 or iw >= W:
                            continue
                        out[:, c, ih, iw] += cols[:, row, p * Q + q]
    return out
