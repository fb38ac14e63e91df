"""Checks of the convolution references themselves (fastconv/_opinfo/conv.py)."""

import numpy as np
import pytest

from fastconv._opinfo.conv import (conv2d_ref, conv2d_backward_ref, unfold_ref, fold_ref,
                                   resolve_padding, pair)
from _util import assert_close, CASES, CASE_IDS, make_data, out_hw


def naive_conv(x, w, b, stride, pad4, dilation, groups):
    """7-nested-loop convolution; only for tiny shapes."""
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    pt, pb, pl, pr = pad4
    P = (H + pt + pb - dh * (R - 1) - 1) // sh + 1
    Q = (W + pl + pr - dw * (S - 1) - 1) // sw + 1
    Kg = K // groups
    out = np.zeros((N, K, P, Q))
    for n in range(N):
        for k in range(K):
            g = k // Kg
            for p in range(P):
                for q in range(Q):
                    acc = 0.0 if b is None else float(b[k])
                    for c in range(Cg):
                        for r in range(R):
                            for s in range(S):
                                ih = p * sh - pt + r * dh
                                iw = q * sw - pl + s * dw
                                if 0 <= ih < H and 0 <= iw < W:
                                    acc += float(x[n, g * Cg + c, ih, iw]) * float(w[k, c, r, s])
                    out[n, k, p, q] = acc
    return out


# (N, C, H, W, K, R, S, stride, pad4, dilation, groups)
TINY = [
    (2, 3, 6, 7, 4, 3, 3, 1, (1, 1, 1, 1), 1, 1),
    (1, 2, 5, 6, 3, 2, 3, (2, 1), (0, 1, 2, 0), 1, 1),         # asymmetric padding
    (2, 4, 7, 6, 6, 3, 2, 1, (1, 2, 0, 1), (2, 1), 2),         # groups + dilation + asym pad
    (2, 3, 8, 9, 6, 3, 3, (2, 3), (2, 0, 1, 3), (1, 2), 3),    # depthwise x2, strides
    (1, 2, 4, 4, 2, 5, 5, 1, (2, 2, 2, 2), 1, 1),              # kernel > input, rescued by pad
    (2, 2, 7, 8, 3, 1, 1, 2, (1, 0, 0, 1), 1, 1),              # 1x1 stride 2 + asym pad
]


@pytest.mark.parametrize("cfg", TINY, ids=[f"tiny{i}" for i in range(len(TINY))])
@pytest.mark.parametrize("with_bias", [False, True])
def test_reference_forward_matches_naive_loops(cfg, with_bias):
    N, C, H, W, K, R, S, stride, pad4, dil, g = cfg
    rng = np.random.default_rng(1234)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C // g, R, S))
    b = rng.standard_normal(K) if with_bias else None
    got = conv2d_ref(x, w, b, stride, pad4, dil, g)
    exp = naive_conv(x, w, b, stride, pad4, dil, g)
    assert_close(got, exp, 1e-13)


@pytest.mark.parametrize("cfg", TINY, ids=[f"tiny{i}" for i in range(len(TINY))])
def test_reference_backward_matches_finite_differences(cfg):
    N, C, H, W, K, R, S, stride, pad4, dil, g = cfg
    rng = np.random.default_rng(99)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C // g, R, S))
    b = rng.standard_normal(K)
    out = conv2d_ref(x, w, b, stride, pad4, dil, g)
    G = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward_ref(G, x, w, stride, pad4, dil, g)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (K,)

    def L(xx, ww, bb):
        return float(np.sum(conv2d_ref(xx, ww, bb, stride, pad4, dil, g) * G))

    eps = 1e-6
    Vx = rng.standard_normal(x.shape)
    Vw = rng.standard_normal(w.shape)
    Vb = rng.standard_normal(b.shape)
    fd_x = (L(x + eps * Vx, w, b) - L(x - eps * Vx, w, b)) / (2 * eps)
    fd_w = (L(x, w + eps * Vw, b) - L(x, w - eps * Vw, b)) / (2 * eps)
    fd_b = (L(x, w, b + eps * Vb) - L(x, w, b - eps * Vb)) / (2 * eps)
    for fd, grad, V, name in [(fd_x, dx, Vx, "x"), (fd_w, dw, Vw, "w"), (fd_b, db, Vb, "b")]:
        an = float(np.sum(grad * V))
        scale = max(abs(an), float(np.sum(np.abs(grad * V))) / np.sqrt(grad.size), 1.0)
        assert abs(fd - an) <= 1e-7 * scale, (name, fd, an)


@pytest.mark.parametrize("cfg", TINY[:4], ids=[f"tiny{i}" for i in range(4)])
def test_reference_backward_is_exact_adjoint(cfg):
    """<conv(x) - bias, G> == <x, dx(G)> and == <w, dw(G)> (bilinearity), to roundoff."""
    N, C, H, W, K, R, S, stride, pad4, dil, g = cfg
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C // g, R, S))
    out = conv2d_ref(x, w, None, stride, pad4, dil, g)
    G = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward_ref(G, x, w, stride, pad4, dil, g)
    lhs = float(np.sum(out * G))
    scale = float(np.sum(np.abs(out * G)))
    assert abs(lhs - float(np.sum(x * dx))) <= 1e-12 * scale
    assert abs(lhs - float(np.sum(w * dw))) <= 1e-12 * scale
    assert_close(db, G.sum(axis=(0, 2, 3)), 1e-14)


def test_reference_resolve_padding():
    assert resolve_padding("valid", (3, 4)) == (0, 0, 0, 0)
    assert resolve_padding(2, (3, 3)) == (2, 2, 2, 2)
    assert resolve_padding((1, 3), (3, 3)) == (1, 1, 3, 3)
    assert resolve_padding((0, 1, 2, 3), (3, 3)) == (0, 1, 2, 3)
    # odd kernel -> symmetric
    assert resolve_padding("same", (3, 5)) == (1, 1, 2, 2)
    # even kernel: extra on bottom/right, like torch
    assert resolve_padding("same", (4, 2)) == (1, 2, 0, 1)
    # dilation: total = d*(k-1)
    assert resolve_padding("same", (2, 3), dilation=(3, 2)) == (1, 2, 2, 2)
    with pytest.raises(ValueError):
        resolve_padding("same", (3, 3), stride=2)
    with pytest.raises(ValueError):
        resolve_padding("full", (3, 3))


@pytest.mark.parametrize("case", [c for c in CASES if c["padding"] == "same"],
                         ids=[c["id"] for c in CASES if c["padding"] == "same"])
def test_reference_same_keeps_size_and_is_torch_asymmetric(case):
    x, w, b, _ = make_data(case, np.float64, 3)
    out = conv2d_ref(x, w, b, **{k: case[k] for k in ("stride", "padding", "dilation", "groups")})
    assert out.shape[2:] == x.shape[2:]
    # explicit asymmetric padding gives the same thing
    pad4 = resolve_padding("same", (case["R"], case["S"]), case["dilation"])
    exp = naive_conv(x, w, b, 1, pad4, case["dilation"], case["groups"])
    assert_close(out, exp, 1e-13)


def test_reference_shape_table_output_sizes_positive():
    for c in CASES:
        P, Q = out_hw(c)
        assert P >= 1 and Q >= 1, c["id"]
        assert c["C"] % c["groups"] == 0 and c["K"] % c["groups"] == 0, c["id"]


UNFOLD_GEOMS = [
    # (N, C, H, W, kernel, dilation, padding, stride)
    (2, 3, 7, 9, (3, 2), 1, 0, 1),
    (1, 2, 10, 10, 3, 1, 0, 3),             # stride not dividing
    (2, 2, 6, 7, (2, 3), 1, (1, 2), (2, 1)),  # padding + stride
    (2, 3, 9, 8, 3, (2, 1), 1, 1),           # dilation
    (1, 2, 11, 9, (3, 2), (1, 2), (2, 0), (3, 2)),
]


def naive_unfold(x, ks, dil, pad, st):
    """Independent unfold: pad with np.pad, then plain loops over output pixels."""
    R, S = pair(ks)
    dh, dw = pair(dil)
    ph, pw = pair(pad)
    sh, sw = pair(st)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    N, C, Hp, Wp = xp.shape
    P = (Hp - dh * (R - 1) - 1) // sh + 1
    Q = (Wp - dw * (S - 1) - 1) // sw + 1
    cols = np.zeros((N, C * R * S, P * Q))
    for p in range(P):
        for q in range(Q):
            blk = xp[:, :, p * sh: p * sh + dh * (R - 1) + 1: dh,
                     q * sw: q * sw + dw * (S - 1) + 1: dw]  # (N,C,R,S)
            cols[:, :, p * Q + q] = blk.reshape(N, -1)
    return cols


@pytest.mark.parametrize("geom", UNFOLD_GEOMS, ids=[f"g{i}" for i in range(len(UNFOLD_GEOMS))])
def test_reference_unfold_fold(geom):
    N, C, H, W, ks, dil, pad, st = geom
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, C, H, W))
    cols = unfold_ref(x, ks, dil, pad, st)
    assert_close(cols, naive_unfold(x, ks, dil, pad, st), 0.0)
    y = rng.standard_normal(cols.shape)
    folded = fold_ref(y, (H, W), ks, dil, pad, st)
    assert folded.shape == x.shape
    lhs = float(np.sum(cols * y))
    rhs = float(np.sum(x * folded))
    assert abs(lhs - rhs) <= 1e-12 * float(np.sum(np.abs(cols * y)))


@pytest.mark.parametrize("cfg", TINY, ids=[f"tiny{i}" for i in range(len(TINY))])
def test_reference_conv_equals_unfold_matmul(cfg):
    """Cross-check of two independent references: conv == W @ unfold(x) (symmetric pads only)."""
    N, C, H, W, K, R, S, stride, pad4, dil, g = cfg
    pad = (pad4[0], pad4[2])
    pad4 = (pad4[0], pad4[0], pad4[2], pad4[2])
    rng = np.random.default_rng(11)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C // g, R, S))
    out = conv2d_ref(x, w, None, stride, pad4, dil, g)
    P, Q = out.shape[2:]
    Cg, Kg = C // g, K // g
    exp = np.zeros_like(out)
    for gi in range(g):
        cols = unfold_ref(x[:, gi * Cg:(gi + 1) * Cg], (R, S), dil, pad, stride)
        wm = w[gi * Kg:(gi + 1) * Kg].reshape(Kg, -1)
        exp[:, gi * Kg:(gi + 1) * Kg] = np.einsum("kj,njl->nkl", wm, cols).reshape(N, Kg, P, Q)
    assert_close(out, exp, 1e-13)


def test_reference_float32_inputs_computed_in_float64():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    out = conv2d_ref(x, w, None, 1, 1, 1, 1)
    assert out.dtype == np.float64
    exp = conv2d_ref(x.astype(np.float64), w.astype(np.float64), None, 1, 1, 1, 1)
    assert np.array_equal(out, exp)
    dx, dw, db = conv2d_backward_ref(out.astype(np.float32), x, w, 1, 1, 1, 1)
    assert dx.dtype == dw.dtype == db.dtype == np.float64


def test_assert_close_catches_errors():
    e = np.arange(12.0).reshape(3, 4)
    a = e.copy()
    assert_close(a, e, 1e-12)
    a[1, 2] += 1e-3
    with pytest.raises(AssertionError, match=r"\(1, 2\)"):
        assert_close(a, e, 1e-6)
    a = e.copy()
    a[2, 3] = np.nan
    with pytest.raises(AssertionError, match="non-finite"):
        assert_close(a, e, 1.0)
    with pytest.raises(AssertionError, match="shape"):
        assert_close(e[:2], e, 1.0)
