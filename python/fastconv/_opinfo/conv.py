"""Op specs of the convolution family: conv2d, unfold, fold and conv_transpose2d (a
convolution's data gradient), with their float64 NumPy references.

The references are deliberately independent of im2col and of fastconv's kernels: the
convolution and its gradients are *direct tap sums* (one strided slice of the zero-padded
input per kernel tap (r, s) and per group, contracted over the channels), unfold/fold are
plain index loops, and conv_transpose2d is written as what it is, a scatter: every input pixel
adds weight-scaled copies of itself into the output window it spreads over (one strided slice
of an uncropped output per kernel tap and group), cropped by the padding; its backward is the
matching gather. All results are float64 whatever the input dtype.
"""

import numpy as np

from ._spec import OpSpec, Sample

__all__ = [
    "pair",
    "resolve_padding",
    "conv_output_size",
    "conv2d_ref",
    "conv2d_backward_ref",
    "unfold_ref",
    "fold_ref",
    "conv_transpose2d_output_size",
    "conv_transpose2d_ref",
    "conv_transpose2d_backward_ref",
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


def _patch_pairs(C, H, W, kernel_size, dilation, padding, stride):
    """(P, Q) and every (row, column, c, ih, iw) of unfold's matrix that reads an input pixel:
    row c*R*S + r*S + s, column p*Q + q, by direct index loops."""
    R, S = pair(kernel_size)
    dh, dw = pair(dilation)
    ph, pw = pair(padding)
    sh, sw = pair(stride)
    P, Q = conv_output_size(H, W, (R, S), (sh, sw), (ph, ph, pw, pw), (dh, dw))
    pairs = []
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
                        if 0 <= iw < W:
                            pairs.append((row, p * Q + q, c, ih, iw))
    return (P, Q), pairs


def unfold_ref(x, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.unfold by direct index loops, float64.

    Row index of the result is c*R*S + r*S + s, column index p*Q + q.
    """
    x = np.asarray(x, dtype=np.float64)
    N, C, H, W = x.shape
    R, S = pair(kernel_size)
    (P, Q), pairs = _patch_pairs(C, H, W, kernel_size, dilation, padding, stride)
    cols = np.zeros((N, C * R * S, P * Q), dtype=np.float64)
    for row, col, c, ih, iw in pairs:
        cols[:, row, col] = x[:, c, ih, iw]
    return cols


def fold_ref(cols, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.fold (col2im, overlaps summed) by direct loops, float64."""
    cols = np.asarray(cols, dtype=np.float64)
    N, CRS, L = cols.shape
    H, W = pair(output_size)
    R, S = pair(kernel_size)
    if CRS % (R * S):
        raise ValueError("cols.shape[1] not divisible by R*S")
    C = CRS // (R * S)
    (P, Q), pairs = _patch_pairs(C, H, W, kernel_size, dilation, padding, stride)
    if P * Q != L:
        raise ValueError("cols.shape[2] does not match the geometry")
    out = np.zeros((N, C, H, W), dtype=np.float64)
    for row, col, c, ih, iw in pairs:
        out[:, c, ih, iw] += cols[:, row, col]
    return out


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


SPECS = (
    OpSpec("conv2d", "conv", conv2d_ref, conv2d_backward_ref, (
        Sample("odd_stride2_pad1", {"x": (2, 3, 7, 9), "w": (4, 3, 3, 2), "b": (4,)},
               {"stride": 2, "padding": 1}),
        Sample("batch1_groups_nonsquare", {"x": (1, 4, 6, 5), "w": (6, 2, 3, 3), "b": (6,)},
               {"stride": (2, 3), "padding": (1, 0), "groups": 2}),
        Sample("dilated_same", {"x": (2, 2, 8, 7), "w": (3, 2, 3, 2)},
               {"padding": "same", "dilation": 2}),
    ), torch="torch.nn.functional.conv2d", module="Conv2d", grad_inputs=3, backward_args=2),
    OpSpec("conv_transpose2d", "conv", conv_transpose2d_ref, conv_transpose2d_backward_ref, (
        Sample("stride2_pad1_outpad1", {"x": (2, 3, 5, 4), "w": (3, 2, 3, 3), "b": (2,)},
               {"stride": 2, "padding": 1, "output_padding": 1}),
        Sample("batch1_groups_dilated", {"x": (1, 4, 3, 5), "w": (4, 3, 2, 3), "b": (6,)},
               {"stride": (1, 2), "groups": 2, "dilation": 2}),
    ), torch="torch.nn.functional.conv_transpose2d", module="ConvTranspose2d", grad_inputs=3,
        backward_args=2),
    OpSpec("unfold", "conv", unfold_ref, None, (
        Sample("k3_s2_p1_odd", {"x": (2, 3, 7, 6)},
               {"kernel_size": 3, "padding": 1, "stride": 2}),
        Sample("batch1_nonsquare_dilated", {"x": (1, 2, 9, 8)},
               {"kernel_size": (2, 3), "dilation": (2, 1), "stride": (3, 2)}),
    ), torch="torch.nn.functional.unfold", grad_inputs=0),
    OpSpec("fold", "conv", fold_ref, None, (
        Sample("k3_s2_p1_odd", {"cols": (2, 27, 12)},
               {"output_size": (7, 6), "kernel_size": 3, "padding": 1, "stride": 2}),
    ), torch="torch.nn.functional.fold", grad_inputs=0),
)
