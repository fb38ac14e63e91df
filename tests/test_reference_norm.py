"""Checks of the NumPy references in fastconv/_opinfo/norm.py and dropout.py: their backward against central
finite differences of L = sum(out * G), and their forward against properties that hold by
definition."""

import numpy as np
import pytest

from fastconv._opinfo.norm import (batch_norm_ref, batch_norm_backward_ref, lrn_window,
                                   local_response_norm_ref, local_response_norm_backward_ref)
from fastconv._opinfo.dropout import dropout_ref, dropout_backward_ref
from _util import assert_close

H = 1e-6


def numeric_grad(f, a):
    """Central differences of the scalar f with respect to every element of a (in place)."""
    g = np.empty_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + H
        fp = f()
        a[i] = old - H
        fm = f()
        a[i] = old
        g[i] = (fp - fm) / (2 * H)
    return g


BN_SHAPES = [(5, 3), (3, 2, 4), (2, 3, 3, 2), (1, 2, 3, 4)]


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_reference_batch_norm_backward_matches_finite_differences(shape, training, affine):
    rng = np.random.default_rng(7)
    C = shape[1]
    x = rng.standard_normal(shape) * 2 + 0.5
    rm, rv = rng.standard_normal(C), rng.random(C) + 0.5
    w = rng.standard_normal(C) if affine else None
    b = rng.standard_normal(C) if affine else None
    G = rng.standard_normal(shape)

    def L():
        return float(np.sum(batch_norm_ref(x, rm, rv, w, b, training, 0.1, 1e-3)[0] * G))

    _, mean, invstd, _, _ = batch_norm_ref(x, rm, rv, w, b, training, 0.1, 1e-3)
    dx, dw, db = batch_norm_backward_ref(G, x, w, mean, invstd, training)
    assert_close(dx, numeric_grad(L, x), 1e-6, what="dx")
    if affine:
        assert_close(dw, numeric_grad(L, w), 1e-6, what="dweight")
        assert_close(db, numeric_grad(L, b), 1e-6, what="dbias")


def test_reference_batch_norm_normalises_and_updates():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 3, 5)) * 3 + 2
    rm, rv = np.zeros(3), np.ones(3)
    out, mean, invstd, rm2, rv2 = batch_norm_ref(x, rm, rv, training=True, momentum=0.25,
                                                 eps=0.0)
    assert_close(out.mean(axis=(0, 2)), np.zeros(3), 0, atol=1e-12)
    assert_close(out.var(axis=(0, 2)), np.ones(3), 1e-12)
    for c in range(3):
        v = x[:, c].ravel()
        assert_close(rm2[c], 0.75 * 0 + 0.25 * v.mean(), 1e-14)
        assert_close(rv2[c], 0.75 * 1 + 0.25 * v.var(ddof=1), 1e-14)
        assert_close(invstd[c], 1 / v.std(), 1e-12)


def test_reference_lrn_window_is_torch_padding():
    # size // 2 channels before, (size - 1) // 2 after: even sizes lean backwards.
    assert list(lrn_window(3, 10, 4)) == [1, 2, 3, 4]
    assert list(lrn_window(3, 10, 5)) == [1, 2, 3, 4, 5]
    assert list(lrn_window(0, 3, 5)) == [0, 1, 2]
    assert list(lrn_window(2, 3, 1)) == [2]


def test_reference_lrn_matches_scalar_loops():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 3))
    size, alpha, beta, k = 4, 0.7, 0.6, 1.5
    out = local_response_norm_ref(x, size, alpha, beta, k)
    for n in range(2):
        for c in range(5):
            for s in range(3):
                sq = sum(x[n, j, s] ** 2 for j in range(c - 2, c + 2) if 0 <= j < 5)
                assert abs(out[n, c, s] - x[n, c, s] / (k + alpha * sq / size) ** beta) < 1e-14


@pytest.mark.parametrize("beta", [0.75, 0.6])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_reference_lrn_backward_matches_finite_differences(size, beta):
    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, 6, 2, 3))
    G = rng.standard_normal(x.shape)
    alpha, k = 0.9, 1.2

    def L():
        return float(np.sum(local_response_norm_ref(x, size, alpha, beta, k) * G))

    dx = local_response_norm_backward_ref(G, x, size, alpha, beta, k)
    assert_close(dx, numeric_grad(L, x), 1e-6)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_reference_dropout_backward_matches_finite_differences(p):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4))
    mask = rng.random(x.shape) < 0.5
    G = rng.standard_normal(x.shape)

    def L():
        return float(np.sum(dropout_ref(x, mask, p) * G))

    assert_close(dropout_backward_ref(G, mask, p), numeric_grad(L, x), 1e-8, atol=1e-9)
