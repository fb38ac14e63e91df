"""Checks of the dense and transposed-convolution references themselves
(fastconv/_opinfo/dense.py and conv.py)."""

import numpy as np
import pytest

from fastconv._opinfo.conv import conv2d_ref, pair
from fastconv._opinfo.dense import linear_ref, linear_backward_ref
from fastconv._opinfo.conv import (conv_transpose2d_output_size, conv_transpose2d_ref,
                                   conv_transpose2d_backward_ref)
from _util import assert_close

# (N, C_in, H, W, C_out, R, S, stride, padding, output_padding, groups, dilation)
TINY = [
    (2, 3, 4, 5, 2, 3, 3, 1, 0, 0, 1, 1),
    (1, 2, 3, 4, 3, 3, 2, 2, 1, 1, 1, 1),
    (2, 4, 3, 3, 6, 2, 3, (3, 2), (1, 0), (2, 1), 2, 1),
    (1, 3, 4, 3, 3, 3, 3, 1, 1, 0, 3, (2, 1)),       # depthwise, dilation
    (2, 2, 3, 4, 2, 3, 2, 1, 0, (1, 2), 1, (2, 3)),  # output_padding < dilation, >= stride
    (1, 2, 2, 2, 4, 4, 4, 2, 2, 0, 2, 1),            # padding crops most of the scatter
]
TINY_IDS = [f"tiny{i}" for i in range(len(TINY))]


def _data(cfg, rng):
    N, Cin, H, W, Cout, R, S, st, pad, op, g, dil = cfg
    x = rng.standard_normal((N, Cin, H, W))
    w = rng.standard_normal((Cin, Cout // g, R, S))
    b = rng.standard_normal(Cout)
    return x, w, b, dict(stride=st, padding=pad, output_padding=op, groups=g, dilation=dil)


def naive_conv_transpose(x, w, b, stride, padding, output_padding, groups, dilation):
    """Scatter, one product at a time; only for tiny shapes."""
    N, Cin, H, W = x.shape
    _, Cog, R, S = w.shape
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    Ho, Wo = conv_transpose2d_output_size(H, W, (R, S), stride, padding, output_padding, dilation)
    Cig = Cin // groups
    out = np.zeros((N, Cog * groups, Ho, Wo))
    for n in range(N):
        for k in range(Cin):
            g = k // Cig
            for h in range(H):
                for v in range(W):
                    for c in range(Cog):
                        for r in range(R):
                            for s in range(S):
                                oh = h * sh - ph + r * dh
                                ow = v * sw - pw + s * dw
                                if 0 <= oh < Ho and 0 <= ow < Wo:
                                    out[n, g * Cog + c, oh, ow] += x[n, k, h, v] * w[k, c, r, s]
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def test_reference_conv_transpose2d_output_size_matches_torch_formula():
    # the shapes torch.nn.functional.conv_transpose2d returns for these arguments
    assert conv_transpose2d_output_size(5, 5, 3, 2, 1, 1, 1) == (10, 10)
    assert conv_transpose2d_output_size(28, 28, 4, 2, 1, 0, 1) == (56, 56)
    assert conv_transpose2d_output_size(4, 7, (3, 2), (3, 1), (0, 1), (2, 0), (1, 2)) == (14, 7)
    assert conv_transpose2d_output_size(1, 1, 1, 1, 0, 0, 1) == (1, 1)


@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("cfg", TINY, ids=TINY_IDS)
def test_reference_conv_transpose2d_matches_naive_loops(cfg, with_bias):
    x, w, b, args = _data(cfg, np.random.default_rng(3))
    b = b if with_bias else None
    assert_close(conv_transpose2d_ref(x, w, b, **args), naive_conv_transpose(x, w, b, **args),
                 1e-13)


@pytest.mark.parametrize("cfg", [c for c in TINY if pair(c[9]) == (0, 0) or
                                 all(o < s for o, s in zip(pair(c[9]), pair(c[7])))],
                         ids=lambda c: str(c))
def test_reference_conv_transpose2d_is_adjoint_of_conv2d(cfg):
    """<conv_transpose2d(x, w), y> == <x, conv2d(y, w)>: the same weight, read as conv2d's
    (K = C_in, C_out/groups, R, S), with the same stride, padding, dilation and groups."""
    x, w, _, args = _data(cfg, np.random.default_rng(4))
    out = conv_transpose2d_ref(x, w, None, **args)
    y = np.random.default_rng(5).standard_normal(out.shape)
    conv = conv2d_ref(y, w, None, args["stride"], args["padding"], args["dilation"],
                      args["groups"])
    assert conv.shape == x.shape
    lhs = float(np.sum(out * y))
    assert abs(lhs - float(np.sum(x * conv))) <= 1e-12 * float(np.sum(np.abs(out * y)))


def _fd_check(L, params, grads, rng):
    """Central differences of L along a random direction per parameter vs <grad, direction>."""
    eps = 1e-6
    for i, (p, grad) in enumerate(zip(params, grads)):
        V = rng.standard_normal(p.shape)
        plus = [q + eps * V if j == i else q for j, q in enumerate(params)]
        minus = [q - eps * V if j == i else q for j, q in enumerate(params)]
        fd = (L(*plus) - L(*minus)) / (2 * eps)
        an = float(np.sum(grad * V))
        scale = max(abs(an), float(np.sum(np.abs(grad * V))) / np.sqrt(grad.size), 1.0)
        assert abs(fd - an) <= 1e-7 * scale, (i, fd, an)


@pytest.mark.parametrize("cfg", TINY, ids=TINY_IDS)
def test_reference_conv_transpose2d_backward_matches_finite_differences(cfg):
    rng = np.random.default_rng(6)
    x, w, b, args = _data(cfg, rng)
    G = rng.standard_normal(conv_transpose2d_ref(x, w, b, **args).shape)
    dx, dw, db = conv_transpose2d_backward_ref(G, x, w, **args)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape

    def L(xx, ww, bb):
        return float(np.sum(conv_transpose2d_ref(xx, ww, bb, **args) * G))

    _fd_check(L, [x, w, b], [dx, dw, db], rng)


@pytest.mark.parametrize("x_shape", [(5,), (3, 5), (2, 3, 5), (2, 1, 3, 5)],
                         ids=["1d", "2d", "3d", "4d"])
def test_reference_linear_matches_loops_and_finite_differences(x_shape):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((4, 5))
    b = rng.standard_normal(4)
    out = linear_ref(x, w, b)
    assert out.shape == x_shape[:-1] + (4,)
    rows = x.reshape(-1, 5)
    loops = np.array([[sum(r[i] * w[o, i] for i in range(5)) + b[o] for o in range(4)]
                      for r in rows])
    assert_close(out.reshape(-1, 4), loops, 1e-14)

    G = rng.standard_normal(out.shape)
    dx, dw, db = linear_backward_ref(G, x, w)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape

    def L(xx, ww, bb):
        return float(np.sum(linear_ref(xx, ww, bb) * G))

    _fd_check(L, [x, w, b], [dx, dw, db], rng)


def test_reference_dense_float32_inputs_computed_in_float64():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    w = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    out = conv_transpose2d_ref(x, w, None, 2)
    assert out.dtype == np.float64
    assert np.array_equal(out, conv_transpose2d_ref(x.astype(np.float64), w.astype(np.float64),
                                                    None, 2))
    assert linear_ref(x[0, 0], w[0, :, 0, 0].reshape(1, 3)).dtype == np.float64
